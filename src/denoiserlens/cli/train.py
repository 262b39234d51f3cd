"""``train``, ``recalibrate``, ``convert`` and ``classifier``: parse, configure, call, print."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import _device, data_options, main
from denoiserlens.cli.common import DEVICE, MODEL, OUT
from denoiserlens.cli.options import POSITIVE, config_options, user_errors
from denoiserlens.data import DataSpec, open_data
from denoiserlens.models import ArchChoice
from denoiserlens.quality import ClassifierConfig, train_and_save_classifier
from denoiserlens.stages.train import convert as run_convert
from denoiserlens.stages.train import recalibrate as run_recalibrate
from denoiserlens.train import TrainConfig, init_distributed
from denoiserlens.train import train as run_training

RUN_DIR = click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory (created; refused if it exists, unless --resume).",
)


@main.command()
@data_options
@RUN_DIR
@config_options(ArchChoice, into="arch")
@config_options(TrainConfig, skip=("eval_images", "eval_sigmas", "extra"))
@click.option(
    "--max-minutes",
    type=POSITIVE,
    default=None,
    help="Checkpoint and stop after this wall time (then --resume).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir where it stopped.")
@DEVICE
@user_errors
def train(
    data: DataSpec,
    run_dir: Path,
    arch: ArchChoice,
    cfg: TrainConfig,
    max_minutes: float | None,
    resume: bool,
    device: str,
) -> None:
    """Train a blind denoiser (no noise level input) on images: Eq. 1, Appendix A.3.

    Runs on one process, or on many under torchrun (DistributedDataParallel).
    """
    dev = init_distributed()  # under torchrun, always
    dev = dev if device == "auto" else _device(device)
    images = open_data(data)
    model = arch.config(images.channels).to_dict()
    result = run_training(model, images, cfg, run_dir, resume, dev, max_minutes, data_spec=data)
    state = "finished" if result["finished"] else "stopped (resume with --resume)"
    click.echo(f"{run_dir}: {state} at step {result['step']}")
    scores = {k: v for k, v in (result["eval_psnr"] or {}).items() if isinstance(v, float)}
    if scores:
        click.echo("test PSNR: " + ", ".join(f"sigma {k}: {v:.2f} dB" for k, v in scores.items()))


@main.command()
@MODEL
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="New run.")
@click.option("--batches", type=int, default=100, show_default=True, help="Batches averaged.")
@click.option("--seed", type=int, default=0, show_default=True)
@DEVICE
@user_errors
def recalibrate(model_path: Path, out_dir: Path, batches: int, seed: int, device: str) -> None:
    """Re-estimate a trained model's batch-normalization statistics as an exact average over
    noisy training batches (the run's own data and noise settings) and save the result as a new
    run directory. Training leaves a short exponential average (the last ~10 batches)."""
    n = run_recalibrate(model_path, out_dir, batches, seed, _device(device))
    click.echo(f"{out_dir}: {n} normalization layers re-estimated over {batches} batches")


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True, help="A lab .pt.")
@click.option(
    "--norm",
    type=click.Choice(["layer", "instance", "batch"]),
    default=None,
    help="The authors' normalization, where the file cannot tell (layer and instance "
    "norms hold the same tensors).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="New run.")
@user_errors
def convert(checkpoint: Path, norm: str | None, out_dir: Path) -> None:
    """Import a lab checkpoint (BF-CNN or the authors' UNet_flex) once into a run directory
    (safetensors + config.json) that every command reads with --model; its forward pass is the
    authors' (biases, normalization)."""
    model = run_convert(checkpoint, out_dir, norm)
    n = sum(p.numel() for p in model.parameters())
    click.echo(f"{out_dir}: {model.arch} with {n:,} parameters from {checkpoint}")


@main.command()
@data_options
@OUT
@config_options(ClassifierConfig, skip=("widths", "features", "weight_decay"))
@click.option("--half", is_flag=True, help="Store the weights as float16 (to ship them).")
@DEVICE
@user_errors
def classifier(data: DataSpec, out_dir: Path, cfg: ClassifierConfig, half: bool, device: str):
    """Train the small classifier whose features and predictions judge generated images (the
    Frechet distance and class agreement of `sample --reference` and `reconstruct`), on labelled
    images: e.g. --data fashion-mnist --pad-to 32 (the bundled one)."""
    clf = train_and_save_classifier(data, cfg, out_dir, half, _device(device), click.echo)
    acc = "no held-out images" if clf.accuracy is None else f"held-out accuracy {clf.accuracy:.3f}"
    click.echo(f"{len(clf.class_names)} classes, {acc}; weights.safetensors in {out_dir}")
