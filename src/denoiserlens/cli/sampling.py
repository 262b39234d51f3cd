"""``sample`` and ``reconstruct``: parse, build the stage's config, call it, print (section 3)."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import _data_spec, _device, _warn, data_options, guidance_options, main
from denoiserlens.cli.options import config_options, user_errors
from denoiserlens.stages.sampling import DistanceConfig, ReconstructConfig, SampleConfig

MODEL = click.option("--model", "model_path", type=click.Path(path_type=Path), required=True)
OUT = click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
DEVICE = click.option("--device", default="auto", show_default=True)


class ProgressBar:
    """A tqdm bar drawn from its first update on: checks that fail before any work leave only
    their error line."""

    def __init__(self, total: int, unit: str) -> None:
        self.total, self.unit, self.bar = total, unit, None

    def update(self, k: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=self.unit, dynamic_ncols=True)
        self.bar.update(k)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if self.bar is not None and kind is None:  # an error's bar is wiped by its error line
            self.bar.close()


def report(result, out_dir: Path, model: str = "") -> None:
    """Save a stage's result into ``out_dir`` and print its summary and the files written."""
    written = result.save(out_dir, model)
    for line in result.summary():
        click.echo(line)
    click.echo(f"{', '.join(written)} in {out_dir}")


GUIDANCE = {"guidance": lambda g: guidance_options(g.max_iter, g.tol)}


@main.command()
@MODEL
@OUT
@config_options(SampleConfig)
@DEVICE
@user_errors
def sample(model_path: Path, out_dir: Path, cfg: SampleConfig, device: str) -> None:
    """Unconditional samples (Figure 19): the blind sampler of Kadkhodaie & Simoncelli (2021),
    the noise level read off the residual. Writes samples.png, samples.npy and sampling.json."""
    from denoiserlens.models import load_model
    from denoiserlens.stages.sampling import run_sample

    model = load_model(model_path, device=_device(device))
    with ProgressBar(cfg.n, "sample") as bar:
        result = run_sample(model, cfg, _device(device), model_path, None, bar.update, _warn)
    report(result, out_dir, str(model_path))


@main.command()
@MODEL
@data_options
@OUT
@config_options(ReconstructConfig, nested=GUIDANCE)
@DEVICE
@user_errors
def reconstruct(
    model_path: Path, out_dir: Path, cfg: ReconstructConfig, device: str, **data_kw
) -> None:
    """Self-guided stochastic reconstruction from phi (Algorithms 1, 2; Figures 7, 20): samples
    whose phi matches each target's. Targets are images (--rows), unions of two images' active
    channels (--union) or cluster centroids (--clusters-from). Writes fig7_reconstructions.png,
    fig20_noise_levels.png, samples.npy and reconstruct.json (the phi match of every sample)."""
    from denoiserlens.data import open_data
    from denoiserlens.models import load_model
    from denoiserlens.stages.sampling import run_reconstruct

    model = load_model(model_path, device=_device(device))
    result = run_reconstruct(model, open_data(_data_spec(data_kw)), cfg, _device(device))
    report(result, out_dir, str(model_path))


@main.command()
@MODEL
@data_options
@OUT
@config_options(DistanceConfig, nested=GUIDANCE)
@DEVICE
@user_errors
def distance(model_path: Path, out_dir: Path, cfg: DistanceConfig, device: str, **data_kw) -> None:
    """Distances between conditional densities (Eq. 4; Figure 8 right): for every pair of random
    images, d^2(p(x|phi_1), p(x|phi_2)) against ||phi_1 - phi_2||^2, and the constants A, B of
    inequality (3). Above --sigma-max the tilted estimator goes on with the Gaussian posterior
    of the data's mean and covariance (images of at most 4096 values; beyond, the sigma^-2 tail).
    Writes distance.json and fig8_distance.png."""
    from denoiserlens.data import open_data
    from denoiserlens.models import load_model
    from denoiserlens.stages.sampling import run_distance

    model = load_model(model_path, device=_device(device))
    images = open_data(_data_spec(data_kw))
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    result = run_distance(model, images, cfg, _device(device), log)
    report(result, out_dir, str(model_path))
