"""Section 2.3 as a stage: phi and the block summaries of a data set, streamed to a store, for a
trained model or its random-weights control."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from denoiserlens.data import DataSpec, open_data
from denoiserlens.models import build_model, load_model
from denoiserlens.represent import RepresentConfig, Store, represent
from denoiserlens.represent.store import parse_blocks


def run_represent(
    model_path: str | Path,
    data: DataSpec,
    out_dir: str | Path,
    cfg: RepresentConfig,
    resume: bool = False,
    random_weights: bool = False,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Store:
    """The store ``out_dir`` of the model at ``model_path`` on ``data`` (``cfg.blocks`` may
    name "all"); ``random_weights``: the control, the same architecture with fresh weights
    seeded by ``cfg.seed``. Resumable; under torch.distributed the ranks share the work."""
    model = load_model(model_path, device=str(device))
    recorded = str(model_path)
    if random_weights:
        model = build_model(model.arch_config(), seed=cfg.seed).to(device)
        recorded = f"{model_path} (random weights, seed {cfg.seed})"
    cfg = dataclasses.replace(cfg, blocks=parse_blocks(",".join(cfg.blocks), model))
    return represent(
        model, open_data(data), out_dir, cfg, resume, recorded, progress, data.to_dict()
    )


def store_summary(store: Store, out_dir: str | Path) -> str:
    """One line: the store's size and its arrays' shapes."""
    arrays = ", ".join(f"{k} {tuple(v)}" for k, v in store.meta["arrays"].items())
    return f"{out_dir}: {len(store.names)} images x {len(store.sigmas)} sigma(s); arrays {arrays}"
