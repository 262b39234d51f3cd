"""Representation stores: phi and block summaries of a whole data set, streamed to disk.

A store is a directory:
  meta.json          model (path, architecture, weights hash), data (source, fingerprint, count),
                     sigmas, n_noise, seed, blocks, arrays and their shapes, ``complete``
  rows.json          row order: the name of each image
  labels.npy         the labels, if the data has them
  {key}.npy          float32 (n_sigmas, N, d) memmaps; key "M" = outputs of block M (phi),
                     "E2.in" = inputs of E2
  progress.npy       uint8 (n_sigmas, n_chunks): 1 once a chunk's rows are on disk

Rows are computed in chunks; a chunk is marked done only after its rows are flushed, so a run
killed at any moment resumes (``resume=True``) without recomputing finished chunks, and a store reads
as complete only once every chunk is done (``complete`` is written last, atomically). Under
torchrun, rank r computes the chunks c with c % world == r, writing disjoint rows of the same files
through shared memory maps: the ranks must see one page cache (one node, or a filesystem with
coherent shared mappings); several nodes on a network filesystem are not supported.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

import denoiserlens
from denoiserlens.data import ImageSet, to_float
from denoiserlens.data.imageset import as_image_set
from denoiserlens.data.open import recorded_spec
from denoiserlens.errors import UserError
from denoiserlens.fileio import (
    LOCK,
    disk_full_is_user_error,
    folder_lock,
    read_json,
    reserve_space,
    write_json,
)
from denoiserlens.models import Denoiser
from denoiserlens.represent.summaries import _check_sigma, noise_averaged_means
from denoiserlens.settings import setting

META, PROGRESS, ROWS, LABELS = "meta.json", "progress.npy", "rows.json", "labels.npy"


def weights_hash(model: Denoiser) -> str:
    """BLAKE2b of the architecture and every tensor of the state dict (16 hex digits)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(sorted(model.arch_config().items())).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class RepresentConfig:
    """What to compute. Noise levels in [0, 1] pixel units."""

    sigmas: tuple[float, ...] = setting(
        (25 / 255,), "Comma list of noise levels, in [0, 255] units.", kind="sigmas", scale=255
    )
    n_noise: int = setting(20, "Noise draws averaged per image (one at sigma 0).", kind="count")
    blocks: tuple[str, ...] = setting(
        ("M",),
        "Comma list of block names, or 'all'. Only blocks up to the last are computed.",
        kind="names",
    )
    inputs: bool = setting(False, "Also store the spatial means of the blocks' inputs.")
    seed: int = setting(0, "Seed of the noise draws (per image and draw).", kind="int")
    batch_size: int = setting(16, "Images per pass.", kind="count")
    chunk_size: int = setting(256, "Rows per checkpointed chunk.", kind="count")
    bf16: bool = setting(False, "bf16 autocast for the network (results in float32).")
    channels_last: bool = setting(False, "channels_last memory format (with --bf16 on CPUs).")
    compile: bool = setting(
        False, "torch.compile the blocks (a warm-up of 5-20 s first; pays on large sets)."
    )


class Store:
    """A representation store opened for reading: arrays are memory-mapped, read only."""

    def __init__(self, path: str | Path, allow_incomplete: bool = False) -> None:
        self.path = Path(path)
        if not (self.path / META).is_file():
            raise UserError(f"{self.path}: not a representation store (no {META})")
        self.meta: dict[str, Any] = read_json(self.path / META)
        if not self.meta.get("complete") and not allow_incomplete:
            raise UserError(f"{self.path}: incomplete store (rerun represent with --resume)")

    @property
    def sigmas(self) -> list[float]:
        return list(self.meta["sigmas"])

    @property
    def keys(self) -> list[str]:
        return list(self.meta["arrays"])

    @property
    def names(self) -> list[str]:
        return read_json(self.path / ROWS)

    @property
    def labels(self) -> np.ndarray | None:
        p = self.path / LABELS
        return _load_npy(p, "an integer", None) if p.exists() else None

    @property
    def phi_key(self) -> str:
        """The middle block, whose noise-averaged means are phi; an error if it was not stored
        (stores written before 2026-12 named another block when the middle one was left out)."""
        blocks = self.meta.get("model_blocks")
        key = self.meta.get("middle_block")  # recorded since 2026-12-03 (a tapped model's choice)
        if key is None:
            key = blocks[len(blocks) // 2] if blocks else self.meta["phi_key"]
        if key not in self.meta["arrays"]:
            why = f"the middle block {key} was not stored (it has {self.keys})"
            raise UserError(f"{self.path}: no phi here: {why}; represent --blocks must include it")
        return key

    def array(self, key: str | None = None) -> np.ndarray:
        """The (n_sigmas, N, d) memmap of ``key`` (default: phi, the middle block's outputs)."""
        key = key or self.phi_key
        if key not in self.meta["arrays"]:
            raise UserError(f"{self.path}: no array {key!r}; it has {self.keys}")
        return _load_npy(self.path / f"{key}.npy", "a float", "r")

    def phi(self, sigma: float | None = None) -> np.ndarray:
        """phi at one noise level (default: the first), (N, d)."""
        k = 0 if sigma is None else self._sigma_index(sigma)
        return self.array()[k]

    def _sigma_index(self, sigma: float) -> int:
        for k, s in enumerate(self.sigmas):
            if abs(s - sigma) < 1e-9:
                return k
        raise UserError(
            f"{self.path}: no sigma {sigma * 255:g}/255; it has "
            f"{[round(s * 255, 3) for s in self.sigmas]}"
        )

    def images(self) -> ImageSet:
        """Reopen the images the store was computed from (their fingerprint is checked)."""
        from denoiserlens.data import DataSpec, open_data

        spec = self.meta["data"].get("spec")
        if not spec:
            raise UserError(f"{self.path}: the store does not record how its images were read")
        images = open_data(DataSpec(**{**spec, "sources": tuple(spec["sources"])}))
        if images.fingerprint != self.meta["data"]["fingerprint"]:
            raise UserError(f"{self.path}: the images at {spec['sources']} changed since the store")
        return images

    def check_model(self, model: Denoiser) -> None:
        """Refuse a model other than the one the store was computed with."""
        if weights_hash(model) != self.meta["model"]["weights_hash"]:
            raise UserError(
                f"{self.path}: the store was computed with another model "
                f"({self.meta['model']['path']})"
            )


def _load_npy(file: Path, kind: str, mmap_mode: str | None) -> np.ndarray:
    """A store's array file, or one line naming it: truncated, or of the wrong kind (an object
    array is refused unread: no pickle is ever loaded)."""
    try:
        a = np.load(file, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{file}: truncated or not {kind} array ({e})") from None
    want = np.integer if kind == "an integer" else np.floating
    if not np.issubdtype(a.dtype, want):
        raise UserError(f"{file}: not {kind} array (dtype {a.dtype})")
    return a


def _plan(
    model: Denoiser, images: ImageSet, cfg: RepresentConfig, model_path: str, data_spec: dict | None
) -> dict:
    if images.fixed_size is None:
        raise UserError(f"{images.source}: images differ in size; use --size or patches")
    for s in cfg.sigmas:
        _check_sigma(s)
    unknown = [b for b in cfg.blocks if b not in model.block_names]
    if unknown:
        raise UserError(f"unknown block(s) {unknown}; this model has {model.block_names}")
    if images.channels != model.image_channels:
        raise UserError(
            f"the data has {images.channels} channels, the model takes {model.image_channels}"
        )
    if cfg.n_noise < 1 or cfg.batch_size < 1 or cfg.chunk_size < 1:
        raise UserError("n_noise, batch size and chunk size must be >= 1")
    x = to_float(images[0])[None].to(next(model.parameters()).device)
    dims = {
        k: v.shape[1]
        for k, v in noise_averaged_means(model, x, 0.0, cfg.blocks, 1, inputs=cfg.inputs).items()
    }
    n = len(images)
    return {
        "format": "denoiserlens-represent",
        "version": denoiserlens.__version__,
        "model": {
            "path": model_path,
            "arch": model.arch_config(),
            "weights_hash": weights_hash(model),
        },
        "data": {
            "source": images.source,
            "fingerprint": images.fingerprint,
            "count": n,
            "spec": data_spec,
        },
        "sigmas": list(cfg.sigmas),
        "sigmas_255": [round(s * 255, 4) for s in cfg.sigmas],
        "n_noise": cfg.n_noise,
        "seed": cfg.seed,
        "blocks": list(cfg.blocks),
        "model_blocks": list(model.block_names),  # all of them: the first input and last output
        "inputs": cfg.inputs,  # are images, left out of Figure 1
        "bf16": cfg.bf16,
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "phi_key": model.middle_block,  # phi is its noise-averaged means, if it was stored
        "middle_block": model.middle_block,
        "arrays": {k: [len(cfg.sigmas), n, d] for k, d in dims.items()},
        "chunk_size": cfg.chunk_size,
        "n_chunks": -(-n // cfg.chunk_size),
        "complete": False,
    }


def _same_job(old: dict, new: dict) -> str | None:
    """The first setting in which two store plans differ (compared as JSON), or None."""
    new = json.loads(json.dumps(new))
    if old["model"]["weights_hash"] != new["model"]["weights_hash"]:  # not its path
        return "model"
    for key in ("data", "sigmas", "n_noise", "seed", "blocks", "inputs", "chunk_size", "bf16"):
        a, b = old.get(key), new.get(key)
        if key == "data" and a and b and a.get("spec") and b.get("spec"):  # older stores
            a, b = ({**d, "spec": recorded_spec(d["spec"])} for d in (a, b))
        if a != b:
            return key
    return None


def _create(path: Path, plan: dict, images: ImageSet) -> None:
    """Write the store's files, their space reserved on disk (a full disk is one error line here,
    not a SIGBUS in the middle of the job); on failure remove what was written."""
    path.mkdir(parents=True, exist_ok=True)
    files = [path / f"{key}.npy" for key in plan["arrays"]] + [path / PROGRESS, path / LABELS]
    try:
        with disk_full_is_user_error(path):
            for key, shape in plan["arrays"].items():
                file = path / f"{key}.npy"
                np.lib.format.open_memmap(file, "w+", np.float32, tuple(shape)).flush()
                reserve_space(file)
            np.save(path / PROGRESS, np.zeros((len(plan["sigmas"]), plan["n_chunks"]), np.uint8))
            write_json(path / ROWS, list(images.names))
            if images.labels is not None:
                np.save(path / LABELS, np.asarray(images.labels))
    except BaseException:
        for f in files + [path / ROWS]:
            f.unlink(missing_ok=True)
        raise
    write_json(path / META, plan)  # last: a store without meta.json is an unfinished creation


def represent(
    model: Denoiser,
    images: ImageSet | torch.Tensor | np.ndarray | Dataset | DataLoader,
    out: str | Path,
    cfg: RepresentConfig,
    resume: bool = False,
    model_path: str = "",
    progress: Callable[[int, int], None] | None = None,
    data_spec: dict | None = None,
) -> Store:
    """Compute the block summaries of every image at every sigma into the store ``out``.

    ``images``: an :class:`ImageSet`, or a tensor (N, C, H, W) (uint8, or float in [0, 1], taken
    unquantized), a torch ``Dataset`` or a ``DataLoader`` (items or batches an image or
    (image, label)): see :func:`~denoiserlens.data.imageset.as_image_set`.

    ``data_spec`` (a :class:`~denoiserlens.data.DataSpec` as a dict) is recorded so that the
    analyses can reopen the images.
    """
    images = as_image_set(images)
    out = Path(out)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    model.eval()
    plan = _plan(model, images, cfg, model_path, data_spec)
    with folder_lock(out, holder=rank == 0):  # one job writes a store at a time
        return _represent_in(model, images, out, cfg, resume, plan, progress, rank, world)


def _represent_in(
    model: Denoiser,
    images: ImageSet,
    out: Path,
    cfg: RepresentConfig,
    resume: bool,
    plan: dict,
    progress: Callable[[int, int], None] | None,
    rank: int,
    world: int,
) -> Store:
    """The body of :func:`represent`, in a store this process has locked."""
    create = not (out / META).exists()  # every rank decides before rank 0 writes anything
    if not create:
        old = read_json(out / META)
        if not resume:
            raise UserError(f"{out}: store exists; use --resume to finish it or another --out")
        diff = _same_job(old, plan)
        if diff:
            raise UserError(f"{out}: the store was made with a different {diff}; cannot resume")
        if old.get("complete"):
            return Store(out)
    elif any(p.name != LOCK for p in out.iterdir()) and not resume:
        raise UserError(f"{out}: folder exists and is not empty")
    if world > 1:
        dist.barrier()
    if create and rank == 0:
        _create(out, plan, images)
    if world > 1:
        dist.barrier()

    arrays = {k: np.load(out / f"{k}.npy", mmap_mode="r+") for k in plan["arrays"]}
    done = np.load(out / PROGRESS, mmap_mode="r+")
    todo = [
        (s, c)
        for s in range(len(cfg.sigmas))
        for c in range(plan["n_chunks"])
        if not done[s, c] and c % world == rank
    ]
    device = next(model.parameters()).device
    for i, (s, c) in enumerate(todo):
        lo, hi = c * cfg.chunk_size, min((c + 1) * cfg.chunk_size, len(images))
        for b0 in range(lo, hi, cfg.batch_size):
            rows = list(range(b0, min(b0 + cfg.batch_size, hi)))
            x = to_float(np.stack([images[r] for r in rows])).to(device)
            means = noise_averaged_means(
                model,
                x,
                cfg.sigmas[s],
                cfg.blocks,
                cfg.n_noise,
                cfg.seed,
                rows,
                inputs=cfg.inputs,
                bf16=cfg.bf16,
                channels_last=cfg.channels_last,
                compile=cfg.compile,
            )
            for k, v in means.items():
                arrays[k][s, rows[0] : rows[-1] + 1] = v.cpu().numpy()
        for a in arrays.values():
            a.flush()
        done[s, c] = 1  # only after the rows are on disk
        done.flush()
        if progress:
            progress(i + 1, len(todo))
    if world > 1:
        dist.barrier()
    complete = bool(np.load(out / PROGRESS).all())  # every rank reads it: all raise, none hangs
    if not complete:
        raise UserError(f"{out}: some chunks are missing; rerun with --resume")
    if rank == 0:
        write_json(out / META, {**plan, "complete": True, "finished": time.time()})
    if world > 1:
        dist.barrier()
    return Store(out)


def parse_blocks(text: str, model: Denoiser) -> tuple[str, ...]:
    """'M' / 'E3,M' / 'all' -> block names, in the model's order."""
    names: Sequence[str] = model.block_names if text == "all" else text.split(",")
    return tuple(
        sorted(
            set(names), key=lambda b: model.block_names.index(b) if b in model.block_names else -1
        )
    )
