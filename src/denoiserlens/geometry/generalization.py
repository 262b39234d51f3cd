"""Memorization vs generalization (companion work, Kadkhodaie et al. 2024): train two denoisers
on disjoint training sets of N images each, sample from both with the same seeds, and compare.

With few images each network memorizes its own set: its samples are copies of training images,
and the two networks' samples differ. With enough images both learn the same density: their
samples from the same noise become nearly identical, and no longer copies of training images.
Similarities are cosines of the images centred on the data mean.

The sweep is resumable: every model is a run directory (``train`` resumes it from its last
checkpoint) and every size's samples are saved once computed, with a key (both models' weights,
the sampler, the seed) that says when they must be drawn again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoiserlens.data import ImageSet
from denoiserlens.fileio import atomic_path, read_json, write_json
from denoiserlens.models import build_model, load_model
from denoiserlens.models.checkpoint import CONFIG
from denoiserlens.represent.store import weights_hash
from denoiserlens.sampling import SamplerConfig, sample
from denoiserlens.train import TrainConfig, check_training_images, train
from denoiserlens.train.state import TRAIN_STATE, train_state_step


def disjoint_subsets(n_total: int, sizes: list[int], seed: int = 0) -> dict[int, tuple]:
    """For each size N, two disjoint sets of N rows; the sets of smaller sizes are prefixes of
    those of larger ones (nested), drawn from one seeded permutation split in two halves."""
    biggest = max(sizes)
    if 2 * biggest > n_total:
        raise ValueError(
            f"two disjoint sets of {biggest} images need {2 * biggest}; the data has {n_total}"
        )
    perm = np.random.default_rng(seed).permutation(n_total)
    first, second = perm[:biggest], perm[biggest : 2 * biggest]
    return {n: (np.sort(first[:n]), np.sort(second[:n])) for n in sizes}


def _centred(x: np.ndarray, mean: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    flat = x.reshape(len(x), int(np.prod(x.shape[1:]))) - mean  # also for no rows
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def paired_similarity(a: np.ndarray, b: np.ndarray, mean: float) -> np.ndarray:
    """Cosine similarity of a[i] and b[i] (centred on ``mean``), shape (n,)."""
    return (_centred(a, mean) * _centred(b, mean)).sum(1)


def nearest_training_similarity(samples: np.ndarray, train: np.ndarray, mean: float) -> np.ndarray:
    """For each sample, the cosine similarity (centred) of its nearest training image, (n,)."""
    return (_centred(samples, mean) @ _centred(train, mean).T).max(1)


def _repeat_to(images: ImageSet, rows: np.ndarray, at_least: int) -> ImageSet:
    reps = -(-at_least // len(rows))
    return images.subset(np.tile(rows, reps))


def run_sweep(
    images: ImageSet,
    sizes: list[int],
    out_dir: str | Path,
    arch: dict[str, Any],
    cfg: TrainConfig,
    sampler: SamplerConfig,
    n_samples: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the model pairs, sample, and measure; returns (and writes) results.json."""
    out = Path(out_dir)
    check_training_images(images, build_model(arch, seed=0))  # before any run is written
    subsets = disjoint_subsets(len(images), sizes, seed)
    x_all = np.asarray(images.as_array())  # the sizes of a sweep: in memory
    mean = float(x_all.mean() / 255)
    arch_json = json.loads(json.dumps(arch))  # as config.json holds it (lists, not tuples)
    results = {
        "sizes": sizes,
        "seed": seed,
        "n_samples": n_samples,
        "data": images.source,
        "train": {"steps": cfg.steps, "batch_size": cfg.batch_size},
        "per_size": {},
    }
    for n in sorted(sizes):
        runs = []
        for tag, rows in zip("ab", subsets[n], strict=True):
            run = out / f"N{n}" / tag
            runs.append(run)
            checkpointed = (run / TRAIN_STATE).exists()
            if checkpointed:
                if read_json(run / CONFIG)["model"] != arch_json:
                    raise ValueError(f"{run}: a model of another architecture; use another --out")
                if train_state_step(run / TRAIN_STATE) >= cfg.steps:
                    continue
            if run.exists() and not checkpointed:  # stopped before its first checkpoint
                shutil.rmtree(run)
            log(f"N = {n}, model {tag}: training on {n} images")
            data = _repeat_to(images, rows, cfg.batch_size)
            train(arch, data, cfg, run, resume=checkpointed, device=device, progress=False)
        path, key_path = out / f"N{n}" / "samples.npz", out / f"N{n}" / "samples.json"
        models = [load_model(run, device) for run in runs]
        key = {
            "models": [weights_hash(m) for m in models],
            "sampler": asdict(sampler),
            "n_samples": n_samples,
            "seed": seed,
            "mean": mean,
        }
        if not _samples_current(path, key_path, key):
            log(f"N = {n}: sampling {n_samples} images from each model, same seeds")
            shape = (n_samples, *x_all.shape[1:])
            drawn = [
                sample(m.denoise, shape, sampler, mean=mean, seed=seed, device=device)
                for m in models
            ]
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(
                    f,
                    a=drawn[0].images.cpu().numpy(),
                    b=drawn[1].images.cpu().numpy(),
                    finished_a=drawn[0].finished.cpu().numpy(),
                    finished_b=drawn[1].finished.cpu().numpy(),
                )
            write_json(key_path, key)
        with np.load(path) as pair:
            results["per_size"][str(n)] = _measure(pair, x_all, subsets[n], mean)
    results["generalizes_at"] = next(
        (n for n in sorted(sizes) if (results["per_size"][str(n)]["paired_median"] or 0) > 0.95),
        None,
    )
    write_json(out / "results.json", results)
    return results


def _samples_current(path: Path, key_path: Path, key: dict[str, Any]) -> bool:
    """Whether saved samples exist, were drawn with ``key``, and carry their finished flags."""
    if not path.exists() or not key_path.exists() or read_json(key_path) != key:
        return False
    with np.load(path) as saved:
        return "finished_a" in saved.files


def _measure(pair: Any, x_all: np.ndarray, rows: tuple, mean: float) -> dict[str, Any]:
    """Similarities of one size's samples, over the samples that reached sigma_L (the others are
    not samples of the model's density: its ascent did not converge); medians are None when none
    did."""
    a, b, fa, fb = pair["a"], pair["b"], pair["finished_a"], pair["finished_b"]
    both = fa & fb
    sims = paired_similarity(a[both], b[both], mean)
    near = np.concatenate(
        [
            nearest_training_similarity(a[fa], x_all[rows[0]] / 255.0, mean),
            nearest_training_similarity(b[fb], x_all[rows[1]] / 255.0, mean),
        ]
    )
    median = lambda v: float(np.median(v)) if len(v) else None  # noqa: E731
    return {
        "finished": [int(fa.sum()), int(fb.sum())],
        "paired_median": median(sims),
        "paired": sims.tolist(),
        "nearest_training_median": median(near),
        "nearest_training": near.tolist(),
    }
