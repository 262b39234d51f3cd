"""Memorization vs generalization (companion work, Kadkhodaie et al. 2024): train two denoisers
on disjoint training sets of N images each, sample from both with the same seeds, and compare.

With few images each network memorizes its own set: its samples are copies of training images,
and the two networks' samples differ. With enough images both learn the same density: their
samples from the same noise become nearly identical, and no longer copies of training images.
Similarities are cosines of the images centred on the data mean.

This module measures; the sweep that trains and samples is ``stages.geometry.run_generalization``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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


def measure_pair(pair: Any, x_all: np.ndarray, rows: tuple, mean: float) -> dict[str, Any]:
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
