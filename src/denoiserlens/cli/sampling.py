"""What the denoiser's prior says: ``sample``, ``reconstruct`` and ``distance`` (paper section
3), and its geometry: ``jacobian``, ``slope`` and ``generalization``."""

from __future__ import annotations

import click

from denoiserlens.cli import command
from denoiserlens.cli import options as o
from denoiserlens.data import open_data
from denoiserlens.errors import UserError
from denoiserlens.models import load_model
from denoiserlens.settings import config_options
from denoiserlens.stages import geometry, sampling
from denoiserlens.stages.evaluation import load_models


@command(o.MODEL, o.OUT, config_options(sampling.SampleConfig), o.DEVICE)
def sample(model_path, out_dir, cfg: sampling.SampleConfig, device) -> None:
    """Unconditional samples (Figure 19): the blind sampler of Kadkhodaie & Simoncelli (2021),
    the noise level read off the residual. Writes samples.png, samples.npy and sampling.json."""
    model = load_model(model_path, device)
    bar = o.ProgressBar(cfg.n, "sample")
    result = sampling.run_sample(model, cfg, device, model_path, None, bar.update, o.warn)
    bar.close()
    o.report(result, out_dir, str(model_path))


@command(o.MODEL, o.data, o.OUT, config_options(sampling.ReconstructConfig), o.DEVICE)
def reconstruct(model_path, data, out_dir, cfg: sampling.ReconstructConfig, device) -> None:
    """Self-guided stochastic reconstruction from phi (Algorithms 1, 2; Figures 7, 20): samples
    whose phi matches each target's. Targets are images (--rows), unions of two images' active
    channels (--union) or cluster centroids (--clusters-from). Writes fig7_reconstructions.png,
    fig20_noise_levels.png, samples.npy and reconstruct.json (the phi match of every sample)."""
    result = sampling.run_reconstruct(load_model(model_path, device), open_data(data), cfg, device)
    o.report(result, out_dir, str(model_path))


@command(o.MODEL, o.data, o.OUT, config_options(sampling.DistanceConfig), o.DEVICE)
def distance(model_path, data, out_dir, cfg: sampling.DistanceConfig, device) -> None:
    """Distances between conditional densities (Eq. 4; Figure 8 right): for every pair of random
    images, d^2(p(x|phi_1), p(x|phi_2)) against ||phi_1 - phi_2||^2, and the constants A, B of
    inequality (3). Above --sigma-max the tilted estimator goes on with the Gaussian posterior
    of the data's mean and covariance (images of at most 4096 values; beyond, the sigma^-2 tail).
    Writes distance.json and fig8_distance.png."""
    model, images = load_model(model_path, device), open_data(data)
    result = sampling.run_distance(model, images, cfg, device, o.to_stderr)
    o.report(result, out_dir, str(model_path))


@command(o.MODEL, o.data, o.OUT, config_options(geometry.JacobianConfig), o.DEVICE)
def jacobian(model_path, data, out_dir, cfg: geometry.JacobianConfig, device) -> None:
    """Jacobian of the denoiser at noisy images (geometry-adaptive harmonic bases): top-k
    eigenpairs of its symmetric part (matrix-free Lanczos), trace (effective dimension),
    asymmetry ||J - J^T|| / ||J||, and J y vs f(y). Writes eigenvalues.png, eigenvectors_*.png
    and jacobian.json."""
    model = load_model(model_path, device).eval()
    result = geometry.run_jacobian(model, open_data(data), cfg, device, click.echo)
    click.echo(f"{', '.join(result.save(out_dir, str(model_path)))} in {out_dir}")


@command(o.MODELS, o.data, o.OUT, config_options(geometry.SlopeConfig), o.DEVICE)
def slope(model_paths, data, out_dir, cfg: geometry.SlopeConfig, device) -> None:
    """Output PSNR against input PSNR and its fitted slope (C-alpha experiment of the companion
    work): the optimal denoiser of C-alpha images has slope alpha / (alpha + 1). Writes
    psnr_slope.png and slope.json."""
    if not model_paths:
        raise UserError("Missing option '--model' (repeat it to compare models)")
    models = load_models(model_paths, device)
    o.report(geometry.run_slope(models, open_data(data), cfg, device), out_dir)


@command(o.data, o.OUT, config_options(geometry.GeneralizationConfig), o.DEVICE)
def generalization(data, out_dir, cfg: geometry.GeneralizationConfig, device) -> None:
    """Memorization vs generalization: for each N, two bias-free models trained on disjoint sets
    of N images, sampled with the same seeds; cosine similarity of paired samples and of samples
    to their nearest training image, against N. Resumable (rerun the same command). Writes
    results.json and generalization.png."""
    result = geometry.run_generalization(open_data(data), cfg, out_dir, device, o.to_stderr)
    o.report(result, out_dir)
