"""``sample`` and ``reconstruct``: parse, build the stage's config, call it, print (section 3)."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import _device, _warn, data_options, main
from denoiserlens.cli.common import DEVICE, MODEL, OUT, ProgressBar, report
from denoiserlens.cli.options import config_options, user_errors
from denoiserlens.data import open_data
from denoiserlens.models import load_model
from denoiserlens.stages.sampling import (
    DistanceConfig,
    ReconstructConfig,
    SampleConfig,
    run_distance,
    run_reconstruct,
    run_sample,
)


@main.command()
@MODEL
@OUT
@config_options(SampleConfig)
@DEVICE
@user_errors
def sample(model_path: Path, out_dir: Path, cfg: SampleConfig, device: str) -> None:
    """Unconditional samples (Figure 19): the blind sampler of Kadkhodaie & Simoncelli (2021),
    the noise level read off the residual. Writes samples.png, samples.npy and sampling.json."""
    model = load_model(model_path, device=_device(device))
    with ProgressBar(cfg.n, "sample") as bar:
        result = run_sample(model, cfg, _device(device), model_path, None, bar.update, _warn)
    report(result, out_dir, str(model_path))


@main.command()
@MODEL
@data_options
@OUT
@config_options(ReconstructConfig)
@DEVICE
@user_errors
def reconstruct(model_path: Path, out_dir: Path, cfg: ReconstructConfig, device: str, data) -> None:
    """Self-guided stochastic reconstruction from phi (Algorithms 1, 2; Figures 7, 20): samples
    whose phi matches each target's. Targets are images (--rows), unions of two images' active
    channels (--union) or cluster centroids (--clusters-from). Writes fig7_reconstructions.png,
    fig20_noise_levels.png, samples.npy and reconstruct.json (the phi match of every sample)."""
    model = load_model(model_path, device=_device(device))
    result = run_reconstruct(model, open_data(data), cfg, _device(device))
    report(result, out_dir, str(model_path))


@main.command()
@MODEL
@data_options
@OUT
@config_options(DistanceConfig)
@DEVICE
@user_errors
def distance(model_path: Path, out_dir: Path, cfg: DistanceConfig, device: str, data) -> None:
    """Distances between conditional densities (Eq. 4; Figure 8 right): for every pair of random
    images, d^2(p(x|phi_1), p(x|phi_2)) against ||phi_1 - phi_2||^2, and the constants A, B of
    inequality (3). Above --sigma-max the tilted estimator goes on with the Gaussian posterior
    of the data's mean and covariance (images of at most 4096 values; beyond, the sigma^-2 tail).
    Writes distance.json and fig8_distance.png."""
    model = load_model(model_path, device=_device(device))
    images = open_data(data)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    result = run_distance(model, images, cfg, _device(device), log)
    report(result, out_dir, str(model_path))
