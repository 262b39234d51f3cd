"""Training as stages: a blind denoiser trained on a data set, re-estimating a run's normalization
statistics from its own recorded settings, and importing a lab checkpoint."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from denoiserlens.data import DataSpec, open_data
from denoiserlens.errors import UserError
from denoiserlens.fileio import read_json
from denoiserlens.models import ArchChoice, Denoiser, load_model, save_model
from denoiserlens.train import TrainConfig, train


def run_train(
    data: DataSpec,
    run_dir: str | Path,
    arch: ArchChoice,
    cfg: TrainConfig,
    resume: bool = False,
    device: str | torch.device = "cpu",
    max_minutes: float | None = None,
) -> dict:
    """Train a blind denoiser of architecture ``arch`` on ``data`` into ``run_dir`` (Eq. 1,
    Appendix A.3): :func:`denoiserlens.train.train`, the model's channels the data's."""
    images = open_data(data)
    model = arch.config(images.channels).to_dict()
    return train(model, images, cfg, run_dir, resume, device, max_minutes, data_spec=data)


def train_summary(result: dict, run_dir: str | Path) -> list[str]:
    """Where the run stands, and its held-out PSNR at each noise level."""
    state = "finished" if result["finished"] else "stopped (resume with --resume)"
    lines = [f"{run_dir}: {state} at step {result['step']}"]
    scores = {k: v for k, v in (result["eval_psnr"] or {}).items() if isinstance(v, float)}
    if scores:
        psnr = ", ".join(f"sigma {k}: {v:.2f} dB" for k, v in scores.items())
        lines.append(f"test PSNR: {psnr}")
    return lines


def recorded_training(run_dir: str | Path) -> tuple[TrainConfig, DataSpec, dict]:
    """The training settings and data specification a run directory's config.json records (the
    settings of today's TrainConfig and DataSpec; others are dropped), and the whole record."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no config.json)")
    config = read_json(path)
    if "train" not in config or "sources" not in config.get("data", {}):
        raise UserError(f"{run_dir}: its config.json does not say how it was trained")
    known = {f.name for f in fields(TrainConfig)}
    train_kw = {k: v for k, v in config["train"].items() if k in known}
    train_kw["eval_sigmas"] = tuple(train_kw.get("eval_sigmas", ()))
    keys = {f.name for f in fields(DataSpec)}
    data = {k: (tuple(v) if k == "sources" else v) for k, v in config["data"].items() if k in keys}
    return TrainConfig(**train_kw), DataSpec(**data), config


def recalibrate(
    model_path: str | Path,
    out_dir: str | Path,
    batches: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> int:
    """Re-estimate a trained model's batch-normalization statistics as an exact average over
    ``batches`` noisy training batches (the run's own data and noise settings) and save it as a
    new run directory; the number of layers re-estimated."""
    from denoiserlens.train.loop import recalibrate_norms

    if Path(out_dir).exists():
        raise UserError(f"{out_dir}: exists; give a new directory")
    if batches < 1:
        raise UserError("--batches must be >= 1")
    cfg, spec, config = recorded_training(model_path)
    images = open_data(spec)
    if images.fingerprint != config["data"].get("fingerprint", images.fingerprint):
        raise UserError(f"{spec.sources}: the training images changed since the run")
    model = load_model(model_path, device=device)
    n = recalibrate_norms(model, images, cfg, batches, seed)
    if n == 0:
        raise UserError(f"{model_path}: the model has no batch normalization to recalibrate")
    meta = {k: v for k, v in config.items() if k not in ("model", "recalibrated")}
    meta["recalibrated"] = {"from": str(model_path), "batches": batches, "seed": seed}
    if "recalibrated" in config:  # recalibrating a recalibrated run: keep the history
        meta["recalibrated"]["previous"] = config["recalibrated"]
    save_model(model, out_dir, **meta)
    return n


def convert(checkpoint: str | Path, out_dir: str | Path, norm: str | None = None) -> Denoiser:
    """Import a lab checkpoint once into a run directory (safetensors + config.json); its
    forward pass is the authors' (biases, normalization)."""
    if Path(out_dir).exists():
        raise UserError(f"{out_dir}: exists; give a new directory")
    model = load_model(checkpoint, norm=norm)
    save_model(model, out_dir, imported={"from": str(checkpoint), "norm": norm})
    return model
