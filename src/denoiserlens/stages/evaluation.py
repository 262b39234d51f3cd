"""Denoising as stages: one image or a folder denoised (``denoise``), and PSNR/SSIM over noise
levels against BM3D on a test set (``evaluate``, Figure 8 left's measure of denoising)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from denoiserlens.data import DataSpec, ImageSet, open_data, to_float
from denoiserlens.errors import UserError
from denoiserlens.evaluation import EvalResult
from denoiserlens.fileio import write_atomic, write_json
from denoiserlens.models import Denoiser
from denoiserlens.settings import setting
from denoiserlens.stages.common import SIGMA_HELP, check_images

PAD_HELP = "Reflect-pad to the model's size multiple, then crop."


def method_name(path: Path, taken: dict) -> str:
    """A model's name in a table: its run directory's (a lab .pt: its folder's), else its path."""
    name = path.parent.parent.name if path.suffix == ".pt" else path.name
    return name if name not in taken else str(path)


def load_models(paths: Sequence[str | Path], device: str | torch.device = "cpu") -> dict:
    """Models by their names in a table (``method_name``), loaded onto ``device``."""
    from denoiserlens.models import load_model

    models: dict = {}
    for p in map(Path, paths):
        models[method_name(p, models)] = load_model(p, device=device)
    return models


def output_stems(names: list[str]) -> list[str]:
    """The file stems ``denoise`` writes to, refused before anything is written when two inputs
    (img.png and img.jpg, or a/img.png and b/img.png) would overwrite each other's results."""
    stems = [Path(n).stem for n in names]
    first: dict[str, str] = {}
    for name, stem in zip(names, stems, strict=True):
        if stem in first:
            raise UserError(
                f"{first[stem]} and {name} would both write {stem}_denoised.png: "
                "rename one, or denoise them into separate --out folders"
            )
        first[stem] = name
    return stems


@dataclass(frozen=True)
class DenoiseConfig:
    """Noise of ``sigma`` added to clean images (one seeded draw per image), or ``noisy``
    images only denoised."""

    sigma: float | None = setting(None, f"Noise to add, {SIGMA_HELP}.", kind="sigma")
    noisy: bool = setting(False, "The input is already noisy: only denoise it.")
    channels: int | None = setting(
        None, "Convert to gray (1) or colour (3); default: as stored.", choices=(1, 3)
    )
    pad: bool = setting(False, PAD_HELP)
    seed: int = setting(0, "Seed of the noise.", kind="int")

    def __post_init__(self) -> None:
        if self.noisy == (self.sigma is not None):
            raise UserError("give either --sigma (noise is added to clean input) or --noisy")


@dataclass
class DenoiseResult:
    cfg: DenoiseConfig
    images: ImageSet
    noisy: list[torch.Tensor]
    denoised: list[torch.Tensor]
    scores: dict[str, dict[str, float]]  # per image: PSNR noisy and denoised (clean input)

    def summary(self) -> list[str]:
        return [
            f"{name}: PSNR {s['psnr_noisy']:.2f} -> {s['psnr_denoised']:.2f} dB"
            for name, s in self.scores.items()
        ]

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """NAME_noisy.png (clean input only), NAME_denoised.png, psnr.json (clean input only)."""
        from PIL import Image

        out = Path(out)
        stems = output_stems(self.images.names)
        for i, stem in enumerate(stems):
            pairs = [("denoised", self.denoised[i])]
            if not self.cfg.noisy:
                pairs.insert(0, ("noisy", self.noisy[i].clamp(0, 1)))
            for tag, t in pairs:
                a = np.round(t[0].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
                pil = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
                write_atomic(
                    out / f"{stem}_{tag}.png", lambda tmp, p=pil: p.save(tmp, format="PNG")
                )
        if self.scores:
            c = self.cfg
            record = {"sigma_255": c.sigma, "seed": c.seed, "model": model, "images": self.scores}
            write_json(out / "psnr.json", record)
        return [f"{len(stems)} result(s)"]


def run_denoise(
    model: Denoiser,
    source: str | Path,
    cfg: DenoiseConfig,
    device: str | torch.device = "cpu",
) -> DenoiseResult:
    """Denoise every image of ``source`` (a file or a folder); PSNR where the input is clean."""
    from denoiserlens.evaluation import model_method, noisy_image, psnr

    images = open_data(DataSpec((str(source),), channels=cfg.channels))
    check_images(model, images, cfg.pad)
    output_stems(images.names)  # refused before any work
    run = model_method(model, pad=cfg.pad, device=device)
    sig = 0.0 if cfg.noisy else cfg.sigma / 255
    result = DenoiseResult(cfg, images, [], [], {})
    for i in range(len(images)):
        x = to_float(images[i])[None]
        y = x if cfg.noisy else noisy_image(x, sig, cfg.seed, i)
        est = run(y, sig).clamp(0, 1)
        result.noisy.append(y)
        result.denoised.append(est)
        if not cfg.noisy:
            result.scores[images.names[i]] = {
                "psnr_noisy": float(psnr(y, x)[0]),
                "psnr_denoised": float(psnr(est, x)[0]),
            }
    return result


@dataclass(frozen=True)
class EvaluateConfig:
    """PSNR and SSIM of each model (and BM3D, given the true sigma) at ``sigmas``."""

    sigmas: tuple[float, ...] = setting(
        (15.0, 25.0, 50.0), f"Comma list, {SIGMA_HELP}.", kind="sigmas"
    )
    bm3d: bool = setting(False, "Add BM3D (given the true sigma).")
    channels: int | None = setting(
        None, "Convert to gray (1) or colour (3); default: as stored.", choices=(1, 3)
    )
    limit: int | None = setting(None, "Only the first N images.", kind="count")
    pad: bool = setting(False, PAD_HELP)
    seed: int = setting(0, "Seed of the noise (one draw per image and sigma).", kind="int")


def write_results(res: EvalResult, out_dir: str | Path, meta: dict) -> None:
    """results.json (table, per-image scores, provenance) and psnr.png (PSNR vs sigma)."""
    from denoiserlens.figures.common import save_figure
    from denoiserlens.figures.evaluation import plot_psnr_over_sigma

    out = Path(out_dir)
    write_json(
        out / "results.json",
        {
            **meta,
            "table": res.table(),
            "seconds": res.seconds,
            "images": res.names,
            "per_image_psnr": {m: [v.tolist() for v in vals] for m, vals in res.psnr.items()},
        },
    )
    write_atomic(out / "table.txt", lambda tmp: tmp.write_text(res.format_table() + "\n"))
    draw = lambda ax: plot_psnr_over_sigma(ax, res.sigmas, res.psnr)  # noqa: E731
    save_figure(out / "psnr.png", draw, figsize=(5, 3.5))


@dataclass
class EvaluateResult:
    cfg: EvaluateConfig
    scores: object  # evaluation.EvalResult
    meta: dict

    def summary(self) -> list[str]:
        return [self.scores.format_table()]

    def save(self, out: str | Path, model: str = "") -> list[str]:
        write_results(self.scores, out, self.meta)
        return ["results.json", "table.txt", "psnr.png"]


def run_evaluate(
    models: dict[str, Denoiser],
    source: str,
    cfg: EvaluateConfig,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
    paths: list[str] | None = None,
) -> EvaluateResult:
    """Every named model (and BM3D with ``cfg.bm3d``) on the images of ``source``."""
    from denoiserlens.evaluation import bm3d_method, evaluate, model_method

    if not models and not cfg.bm3d:
        raise UserError("nothing to evaluate: give --model and/or --bm3d")
    images = open_data(DataSpec((source,), channels=cfg.channels))
    if cfg.limit:
        images = images.subset(list(range(min(cfg.limit, len(images)))))
    methods = {}
    for name, model in models.items():
        check_images(model, images, cfg.pad)
        methods[name] = model_method(model, pad=cfg.pad, device=device)
    if cfg.bm3d:
        methods["BM3D"] = bm3d_method
    res = evaluate(methods, images, [s / 255 for s in cfg.sigmas], cfg.seed, progress=progress)
    meta = {
        "data": source,
        "data_fingerprint": images.fingerprint,
        "seed": cfg.seed,
        "models": paths or list(models),
    }
    return EvaluateResult(cfg, res, meta)
