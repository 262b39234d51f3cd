"""``jacobian``, ``slope`` and ``generalization``: parse, build the stage's config, call it, print."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import _device, data_options, main
from denoiserlens.cli.common import DEVICE, MODEL, OUT, report
from denoiserlens.cli.options import config_options, user_errors
from denoiserlens.data import open_data
from denoiserlens.models import load_model
from denoiserlens.stages.evaluation import method_name
from denoiserlens.stages.geometry import (
    GeneralizationConfig,
    JacobianConfig,
    SlopeConfig,
    run_generalization,
    run_jacobian,
    run_slope,
)


@main.command()
@MODEL
@data_options
@OUT
@config_options(JacobianConfig)
@DEVICE
@user_errors
def jacobian(model_path: Path, out_dir: Path, cfg: JacobianConfig, device: str, data) -> None:
    """Jacobian of the denoiser at noisy images (geometry-adaptive harmonic bases): top-k
    eigenpairs of its symmetric part (matrix-free Lanczos), trace (effective dimension),
    asymmetry ||J - J^T|| / ||J||, and J y vs f(y). Writes eigenvalues.png, eigenvectors_*.png
    and jacobian.json."""
    model = load_model(model_path, device=_device(device)).eval()
    images = open_data(data)
    result = run_jacobian(model, images, cfg, _device(device), click.echo)
    click.echo(f"{', '.join(result.save(out_dir, str(model_path)))} in {out_dir}")


@main.command()
@click.option(
    "--model",
    "model_paths",
    type=click.Path(path_type=Path),
    multiple=True,
    required=True,
    help="Run directory (repeat to compare).",
)
@data_options
@OUT
@config_options(SlopeConfig)
@DEVICE
@user_errors
def slope(model_paths: tuple[Path, ...], out_dir: Path, cfg: SlopeConfig, device: str, data):
    """Output PSNR against input PSNR and its fitted slope (C-alpha experiment of the companion
    work): the optimal denoiser of C-alpha images has slope alpha / (alpha + 1). Writes
    psnr_slope.png and slope.json."""
    images = open_data(data)
    models: dict = {}
    for p in model_paths:
        models[method_name(p, models)] = load_model(p, device=_device(device))
    report(run_slope(models, images, cfg, _device(device)), out_dir)


@main.command()
@data_options
@OUT
@config_options(GeneralizationConfig)
@DEVICE
@user_errors
def generalization(out_dir: Path, cfg: GeneralizationConfig, device: str, data) -> None:
    """Memorization vs generalization: for each N, two bias-free models trained on disjoint sets
    of N images, sampled with the same seeds; cosine similarity of paired samples and of samples
    to their nearest training image, against N. Resumable (rerun the same command). Writes
    results.json and generalization.png."""
    images = open_data(data)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    report(run_generalization(images, cfg, out_dir, _device(device), log), out_dir)
