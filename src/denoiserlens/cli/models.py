"""Commands about the denoiser itself: ``train``, ``recalibrate``, ``convert``, ``classifier``,
``denoise``, ``evaluate`` and ``demo``."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import command
from denoiserlens.cli import options as o
from denoiserlens.models import ArchChoice, load_model
from denoiserlens.quality import ClassifierConfig, train_and_save_classifier
from denoiserlens.settings import config_options
from denoiserlens.stages import evaluation
from denoiserlens.stages import train as training
from denoiserlens.train import TrainConfig, init_distributed

RUN_DIR = o.path("--run-dir", "Run directory (created; refused if it exists, unless --resume).")
MINUTES = o.value("--max-minutes", "Checkpoint and stop after this wall time.", "positive")
RESUME = o.flag("--resume", "Continue the run in --run-dir where it stopped.")
ARCH = config_options(ArchChoice, into="arch")
TRAIN = config_options(TrainConfig, skip=("eval_images", "eval_sigmas", "extra"))


@command(o.data, RUN_DIR, ARCH, TRAIN, MINUTES, RESUME, o.DEVICE)
def train(data, run_dir, arch: ArchChoice, cfg: TrainConfig, max_minutes, resume, device) -> None:
    """Train a blind denoiser (no noise level input) on images: Eq. 1, Appendix A.3.

    Runs on one process, or on many under torchrun (DistributedDataParallel).
    """
    init_distributed()  # under torchrun, always
    result = training.run_train(data, run_dir, arch, cfg, resume, device, max_minutes)
    click.echo("\n".join(training.train_summary(result, run_dir)))


NEW_RUN = o.path("--out", "The new run directory.", "out_dir")
BATCHES = o.value("--batches", "Batches averaged.", "count", default=100)
SEED = o.value("--seed", "Seed of the batches.", "int", default=0)


@command(o.MODEL, NEW_RUN, BATCHES, SEED, o.DEVICE)
def recalibrate(model_path, out_dir, batches: int, seed: int, device) -> None:
    """Re-estimate a trained model's batch-normalization statistics as an exact average over
    noisy training batches (the run's own data and noise settings) and save the result as a new
    run directory. Training leaves a short exponential average (the last ~10 batches)."""
    n = training.recalibrate(model_path, out_dir, batches, seed, device)
    click.echo(f"{out_dir}: {n} normalization layers re-estimated over {batches} batches")


NORM = click.option(
    "--norm",
    type=click.Choice(["layer", "instance", "batch"]),
    help="The authors' normalization, where the file cannot tell (layer and instance norms "
    "hold the same tensors).",
)


@command(o.path("--checkpoint", "A lab .pt."), NORM, NEW_RUN)
def convert(checkpoint, norm: str | None, out_dir) -> None:
    """Import a lab checkpoint (BF-CNN or the authors' UNet_flex) once into a run directory
    (safetensors + config.json) that every command reads with --model; its forward pass is the
    authors' (biases, normalization)."""
    model = training.convert(checkpoint, out_dir, norm)
    n = sum(p.numel() for p in model.parameters())
    click.echo(f"{out_dir}: {model.arch} with {n:,} parameters from {checkpoint}")


CLASSIFIER = config_options(ClassifierConfig, skip=("widths", "features", "weight_decay"))
HALF = o.flag("--half", "Store the weights as float16 (to ship them).")


@command(o.data, o.OUT, CLASSIFIER, HALF, o.DEVICE)
def classifier(data, out_dir, cfg: ClassifierConfig, half: bool, device) -> None:
    """Train the small classifier whose features and predictions judge generated images (the
    Frechet distance and class agreement of `sample --reference` and `reconstruct`), on labelled
    images: e.g. --data fashion-mnist --pad-to 32 (the bundled one)."""
    clf = train_and_save_classifier(data, cfg, out_dir, half, device, click.echo)
    acc = "no held-out images" if clf.accuracy is None else f"held-out accuracy {clf.accuracy:.3f}"
    click.echo(f"{len(clf.class_names)} classes, {acc}; weights.safetensors in {out_dir}")


INPUT = o.path("--input", "An image file or a folder of images (clean, unless --noisy).", "source")


@command(o.MODEL, INPUT, o.OUT, config_options(evaluation.DenoiseConfig), o.DEVICE)
def denoise(model_path, source, out_dir, cfg: evaluation.DenoiseConfig, device) -> None:
    """Denoise one image or a folder (--input; clean, unless --noisy): writes NAME_noisy.png and
    NAME_denoised.png (and PSNR)."""
    result = evaluation.run_denoise(load_model(model_path, device), source, cfg, device)
    o.report(result, out_dir, str(model_path))


TEST = click.option("--data", "source", required=True, help="Test images (folder, file, array...).")


@command(o.MODELS, TEST, o.OUT, config_options(evaluation.EvaluateConfig), o.DEVICE)
def evaluate(model_paths, source, out_dir, cfg: evaluation.EvaluateConfig, device) -> None:
    """PSNR and SSIM over noise levels on a test set (--model repeated to compare several): a
    table, psnr.png and results.json."""
    models, paths = evaluation.load_models(model_paths, device), [str(p) for p in model_paths]
    o.report(evaluation.run_evaluate(models, source, cfg, device, o.to_stderr, paths), out_dir)


@command(o.path("--out", o.OUT_HELP, "out_dir", default=Path("demo-output")))
def demo(out_dir: Path) -> None:
    """The main job on the bundled model and images (no download): PSNR/SSIM against BM3D at
    sigma 15, 25, 50 on ten images shipped with scikit-image, plus example denoisings."""
    from denoiserlens.demo import run_demo

    result = run_demo(out_dir, progress=o.to_stderr)
    gains = ", ".join(f"sigma {k}: {v:+.2f}" for k, v in result["gain_over_bm3d_db"].items())
    click.echo(f"{result['table']}\ngain over BM3D (dB): {gains}")
    click.echo(f"results in {out_dir}/: table.txt, results.json, psnr.png, examples.png")
