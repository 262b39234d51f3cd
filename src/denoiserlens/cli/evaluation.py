"""``denoise``, ``evaluate`` and ``demo``: parse, configure, call, print."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import _device, main
from denoiserlens.cli.common import DEVICE, OUT, report
from denoiserlens.cli.options import config_options, user_errors
from denoiserlens.demo import run_demo
from denoiserlens.models import load_model
from denoiserlens.stages.evaluation import (
    DenoiseConfig,
    EvaluateConfig,
    method_name,
    run_denoise,
    run_evaluate,
)

MODEL_HELP = "Run directory, .safetensors file or lab .pt checkpoint; repeat to compare several."
INPUT = "An image file or a folder of images (clean, unless --noisy)."


@main.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True)
@click.option("--input", "source", type=click.Path(path_type=Path), required=True, help=INPUT)
@OUT
@config_options(DenoiseConfig)
@DEVICE
@user_errors
def denoise(model_path: Path, source: Path, out_dir: Path, cfg: DenoiseConfig, device: str):
    """Denoise one image or a folder (--input; clean, unless --noisy): writes NAME_noisy.png and
    NAME_denoised.png (and PSNR)."""
    model = load_model(model_path, device=_device(device))
    report(run_denoise(model, source, cfg, _device(device)), out_dir, str(model_path))


@main.command()
@click.option(
    "--model", "model_paths", type=click.Path(path_type=Path), multiple=True, help=MODEL_HELP
)
@click.option("--data", "source", required=True, help="Test images (folder, file, array...).")
@OUT
@config_options(EvaluateConfig)
@DEVICE
@user_errors
def evaluate(
    model_paths: tuple[Path, ...], source: str, out_dir: Path, cfg: EvaluateConfig, device
):
    """PSNR and SSIM over noise levels on a test set (--model repeated to compare several): a
    table, psnr.png and results.json."""
    models: dict = {}
    for p in model_paths:
        models[method_name(p, models)] = load_model(p, device=_device(device))
    log = lambda s: click.echo(s, err=True)  # noqa: E731
    paths = [str(p) for p in model_paths]
    report(run_evaluate(models, source, cfg, _device(device), log, paths), out_dir)


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
)
@user_errors
def demo(out_dir: Path) -> None:
    """The main job on the bundled model and images (no download): PSNR/SSIM against BM3D at
    sigma 15, 25, 50 on ten images shipped with scikit-image, plus example denoisings."""
    result = run_demo(out_dir, progress=lambda s: click.echo(s, err=True))
    click.echo(result["table"])
    gains = result["gain_over_bm3d_db"].items()
    click.echo("gain over BM3D (dB): " + ", ".join(f"sigma {k}: {v:+.2f}" for k, v in gains))
    click.echo(f"results in {out_dir}/: table.txt, results.json, psnr.png, examples.png")
