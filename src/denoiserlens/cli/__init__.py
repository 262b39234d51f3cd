"""The ``denoiserlens`` command: one subcommand per pipeline stage, each a thin layer over a library
function. A user's mistake prints one line on stderr and exits with status 2."""

from __future__ import annotations

import functools
import math
import sys
import warnings
from pathlib import Path

import click

from denoiserlens.cli.options import (
    COUNT,
    POSITIVE,
    SIGMA,
    _fail,
    user_errors,
)
from denoiserlens.errors import UserError
from denoiserlens.stages.sampling import SIGMA_HELP, check_images


class OneLineGroup(click.Group):
    """click's usage errors (a non-number, an unknown option) as one line and status 2, like
    every other user error, instead of a usage block."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Abort:  # Ctrl-C: not a user's mistake, the shell's status
            click.echo("Aborted!", err=True)
            sys.exit(130)
        except click.ClickException as e:
            hint = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            _fail(e.format_message() + hint)
        sys.exit(rv if isinstance(rv, int) else 0)


def _warn(message: object) -> None:
    """A warning line; a progress bar on screen is lifted for it and redrawn below."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):
        click.echo(f"denoiserlens: warning: {message}", err=True)


def _warn_line(message, category, filename, lineno, file=None, line=None):
    _warn(message)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _int_list(text: str, option: str) -> list[int]:
    """'3,1,4' -> [3, 1, 4]; anything else is one error line naming ``option``."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{option} takes comma-separated rows, got {text!r}") from None


def _sigmas(text: str) -> list[float]:
    """'15,25,50' (of 255) -> [15/255, 25/255, 50/255]; refuses negative, NaN and inf values."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"noise levels must be numbers, got {text!r}") from None
    if not values or any(not 0 <= v < math.inf for v in values):  # "not" also catches NaN
        raise UserError(f"noise levels must be finite and >= 0 (of 255), got {text!r}")
    return [v / 255.0 for v in values]


def data_options(fn, required: bool = True):
    """The options that describe a data set (see denoiserlens.data.open)."""
    opts = [
        click.option(
            "--data",
            "sources",
            multiple=True,
            required=required,
            help="Folder, image, .npy/.npz, IDX file, fashion-mnist[:test], "
            "disks:N:SIZE, c-alpha:N:SIZE:ALPHA, or @LIST (a file naming "
            "sources, one per line). Repeat to concatenate.",
        ),
        click.option(
            "--channels",
            type=click.Choice(["1", "3"]),
            default=None,
            help="Convert to gray (1) or colour (3).",
        ),
        click.option("--size", type=int, default=None, help="Centre-crop and resize to SIZE."),
        click.option(
            "--max-side",
            type=int,
            default=None,
            help="Shrink images so the longer side is at most this.",
        ),
        click.option("--patch-size", type=int, default=None, help="Cut patches of this size."),
        click.option("--patch-mode", type=click.Choice(["grid", "random"]), default="grid"),
        click.option("--patches-per-image", type=int, default=None),
        click.option("--labels-from-dirs", is_flag=True, help="Label images by their folder."),
        click.option("--data-seed", type=int, default=0, help="Seed of random patches."),
        click.option(
            "--pad-to",
            type=int,
            default=None,
            help="Centre images on a black SIZE x SIZE canvas (Fashion-MNIST: 32).",
        ),
        click.option(
            "--limit",
            type=COUNT,
            default=None,
            help="Keep only the first N images (after patches).",
        ),
        click.option(
            "--resample",
            type=click.Choice(["lanczos", "bicubic"]),
            default="lanczos",
            show_default=True,
            help="Of --size (bicubic: the authors' 80x80 sets).",
        ),
        click.option(
            "--gray-files",
            type=click.Choice(["convert", "skip"]),
            default="convert",
            show_default=True,
            help="Gray files of a folder read as colour.",
        ),
        click.option(
            "--decode-workers",
            type=int,
            default=0,
            show_default=True,
            help="Processes decoding a folder with --size (prepared once, cached).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def guidance_options(max_iter: int, tol: float):
    """Algorithm 2's options (the phi-matching steps), shared by reconstruct and distance; the
    command receives them as one ``guidance`` (a GuidanceConfig)."""

    def wrap(fn):
        opts = [
            click.option(
                "--matcher",
                type=click.Choice(["adam", "descent"]),
                default="adam",
                show_default=True,
                help="adam: the authors' (Adam on the pixels, lr 0.01; on the small "
                "preset a third of descent's phi error at less CPU time: "
                "BENCHMARKS.md); descent: each sample stops on its own, "
                "overshooting steps undone (--patience, --momentum).",
            ),
            click.option(
                "--lr",
                type=POSITIVE,
                default=None,
                help="Guidance step size [default: 1.0 for descent, 0.01 for adam].",
            ),
            click.option(
                "--max-iter",
                type=COUNT,
                default=max_iter,
                show_default=True,
                help="Guidance steps cap.",
            ),
            click.option(
                "--tol",
                type=float,
                default=tol,
                show_default=True,
                help="Stop guiding a sample below this fraction of its initial loss.",
            ),
            click.option(
                "--patience",
                type=int,
                default=0,
                show_default=True,
                help="Also stop guiding a sample whose loss fell by less than 1% over "
                "this many iterations (0: never; on the small preset 10 made a "
                "whole run 1.7x faster, 6x with --bf16, at the same final phi "
                "cosine: BENCHMARKS.md).",
            ),
            click.option(
                "--bf16", is_flag=True, help="bf16 autocast for the matching (guidance) passes."
            ),
            click.option(
                "--momentum",
                type=float,
                default=0.0,
                show_default=True,
                help="Heavy-ball momentum of the guidance steps (the paper: 0).",
            ),
        ]

        @functools.wraps(fn)
        def run(*args, matcher, lr, max_iter, tol, patience, bf16, momentum, **kw):
            from denoiserlens.sampling.reconstruct import GuidanceConfig

            try:
                guide = GuidanceConfig(lr, max_iter, tol, patience, bf16, momentum, matcher)
            except ValueError as e:  # (outside the command's user_errors)
                _fail(str(e))
            return fn(*args, guidance=guide, **kw)

        for opt in reversed(opts):
            run = opt(run)
        return run

    return wrap


def classifier_option(what: str):
    """``--classifier DIR``: the classifier that judges generated images (issue 19)."""
    return click.option(
        "--classifier",
        "classifier_path",
        type=click.Path(path_type=Path),
        default=None,
        help=f"{what} `denoiserlens classifier` folder [default: the "
        "bundled Fashion-MNIST one, for 32x32 gray images].",
    )


def _data_spec(kw: dict):
    from denoiserlens.data import DataSpec

    return DataSpec(
        sources=tuple(kw.pop("sources")),
        channels=None if kw.get("channels") is None else int(kw.pop("channels")),
        size=kw.pop("size"),
        max_side=kw.pop("max_side"),
        patch_size=kw.pop("patch_size"),
        patch_mode=kw.pop("patch_mode"),
        patches_per_image=kw.pop("patches_per_image"),
        labels_from_dirs=kw.pop("labels_from_dirs"),
        seed=kw.pop("data_seed"),
        pad_to=kw.pop("pad_to"),
        limit=kw.pop("limit"),
        resample=kw.pop("resample"),
        gray_files=kw.pop("gray_files"),
        workers=kw.pop("decode_workers"),
    )


@click.group(
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="denoiserlens")
def main() -> None:
    """denoiserlens: train blind UNet denoisers and open them up.

    Kadkhodaie, Mallat & Simoncelli, "Unconditional CNN denoisers contain sparse semantic
    representations of images". Images are in [0, 1]; noise levels on the command line are given
    in [0, 255] units.
    """
    warnings.showwarning = _warn_line


@main.command()
@data_options
@click.option(
    "--run-dir",
    "run_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory (created; refused if it exists, unless --resume).",
)
@click.option(
    "--preset",
    default="small",
    show_default=True,
    help="Architecture: paper, paper-567, small, compact, tiny.",
)
@click.option(
    "--bias/--no-bias",
    default=True,
    show_default=True,
    help="Convolution biases (bias-free needs --norm batch or none).",
)
@click.option(
    "--norm",
    type=click.Choice(["layer", "instance", "batch", "none"]),
    default="layer",
    show_default=True,
)
@click.option(
    "--residual",
    is_flag=True,
    help="Parametrize x_hat = y + net(y) (identity at init; trains faster). Paper: off.",
)
@click.option("--steps", type=COUNT, default=10000, show_default=True)
@click.option(
    "--epochs",
    type=COUNT,
    default=None,
    help="The schedule in passes over the training images instead of --steps (the paper: "
    "1000); each epoch ends with a checkpoint.",
)
@click.option("--batch-size", type=COUNT, default=64, show_default=True, help="Per process.")
@click.option(
    "--global-batch",
    type=COUNT,
    default=None,
    help="Batch across all processes, split evenly (the paper: 1024); replaces --batch-size.",
)
@click.option("--lr", type=POSITIVE, default=1e-3, show_default=True)
@click.option(
    "--lr-halve-every", type=COUNT, default=None, help="Halve the learning rate every N steps."
)
@click.option(
    "--lr-halve-every-epochs",
    type=COUNT,
    default=None,
    help="Halve the learning rate every N epochs (with --epochs; the paper: 100).",
)
@click.option(
    "--sigma-dist",
    type=click.Choice(["sqrt", "uniform", "log-uniform"]),
    default="sqrt",
    show_default=True,
    help="sqrt: density proportional to 1/sqrt(sigma).",
)
@click.option("--sigma-min", type=SIGMA, default=0.0, show_default=True, help=SIGMA_HELP)
@click.option("--sigma-max", type=SIGMA, default=255.0, show_default=True, help=SIGMA_HELP)
@click.option("--bf16", is_flag=True, help="bf16 autocast (weights and loss stay float32).")
@click.option("--channels-last", is_flag=True)
@click.option(
    "--compile",
    "compile_net",
    is_flag=True,
    help="torch.compile the network (a warm-up of minutes first; pays on long runs).",
)
@click.option(
    "--augment", is_flag=True, help="Random flips and quarter turns of each training image."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-fraction", type=float, default=0.05, show_default=True)
@click.option("--eval-every", type=int, default=500, show_default=True)
@click.option("--checkpoint-every", type=int, default=1000, show_default=True)
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader workers.")
@click.option(
    "--max-minutes",
    type=POSITIVE,
    default=None,
    help="Checkpoint and stop after this wall time (resume later with --resume).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --run-dir exactly where it stopped."
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Fine-tune: start from this model's weights (run dir or .safetensors; same architecture).",
)
@click.option("--device", default="auto", show_default=True)
@user_errors
def train(
    run_dir,
    preset,
    bias,
    norm,
    residual,
    steps,
    epochs,
    batch_size,
    global_batch,
    lr,
    lr_halve_every,
    lr_halve_every_epochs,
    sigma_dist,
    sigma_min,
    sigma_max,
    bf16,
    channels_last,
    compile_net,
    augment,
    seed,
    test_fraction,
    eval_every,
    checkpoint_every,
    workers,
    max_minutes,
    resume,
    init_from,
    device,
    **data_kw,
):
    """Train a blind denoiser (no noise level input) on images: Eq. 1, Appendix A.3.

    Runs on one process, or on many under torchrun (DistributedDataParallel).
    """
    from denoiserlens.models import preset_config
    from denoiserlens.train import init_distributed
    from denoiserlens.train import train as run_training

    spec = _data_spec(data_kw)
    for v in (sigma_min, sigma_max):
        if not v >= 0:
            raise UserError(f"noise levels must be >= 0, got {v}")
    if sigma_min > sigma_max:
        raise UserError("--sigma-min exceeds --sigma-max")
    dev = init_distributed()  # under torchrun, always
    dev = dev if device == "auto" else _device(device)
    from denoiserlens.data import open_data

    images = open_data(spec)
    try:
        arch = preset_config(
            preset, image_channels=images.channels, bias=bias, norm=norm, residual=residual
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    cfg = _train_config(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        lr_halve_every=lr_halve_every,
        sigma_dist=sigma_dist,
        sigma_min=sigma_min / 255,
        sigma_max=sigma_max / 255,
        bf16=bf16,
        channels_last=channels_last,
        augment=augment,
        seed=seed,
        test_fraction=test_fraction,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        num_workers=workers,
        init_from=None if init_from is None else str(init_from),
        epochs=epochs,
        lr_halve_every_epochs=lr_halve_every_epochs,
        global_batch=global_batch,
        compile=compile_net,
    )
    result = run_training(
        arch.to_dict(),
        images,
        cfg,
        run_dir,
        resume=resume,
        device=dev,
        max_minutes=max_minutes,
        data_spec=spec,
    )
    state = "finished" if result["finished"] else "stopped (resume with --resume)"
    click.echo(f"{run_dir}: {state} at step {result['step']}")
    if result["eval_psnr"]:
        click.echo(
            "test PSNR: "
            + ", ".join(
                f"sigma {k}: {v:.2f} dB"
                for k, v in result["eval_psnr"].items()
                if isinstance(v, float)
            )
        )


def _train_config(**kw):
    from denoiserlens.train import TrainConfig

    try:
        return TrainConfig(**kw)
    except ValueError as e:
        raise UserError(str(e)) from None


def _load_model_cli(path: Path, device: str):
    from denoiserlens.models import load_model

    return load_model(path, device=_device(device))


def _channel_means(images, device):
    """The images' per-channel means as a (C, 1, 1) tensor: where Algorithm 1 starts."""
    import torch

    return torch.tensor(images.channel_means(), device=device).view(-1, 1, 1)


_check_images = check_images


def _output_stems(names: list[str]) -> list[str]:
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


@main.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory, .safetensors file, or a lab .pt checkpoint.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="An image file or a folder of images (clean, unless --noisy).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--sigma", type=SIGMA, default=None, help=f"Noise to add, {SIGMA_HELP}.")
@click.option("--noisy", is_flag=True, help="The input is already noisy: only denoise it.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None)
@click.option("--pad", is_flag=True, help="Reflect-pad to the model's size multiple, then crop.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@user_errors
def denoise(model_path, input_path, out_dir, sigma, noisy, channels, pad, seed, device):
    """Denoise one image or a folder: writes NAME_noisy.png and NAME_denoised.png (and PSNR)."""
    import numpy as np
    from PIL import Image

    from denoiserlens.data import DataSpec, open_data, to_float
    from denoiserlens.evaluation import model_method, noisy_image, psnr
    from denoiserlens.fileio import write_atomic, write_json

    if noisy == (sigma is not None):
        raise UserError("give either --sigma (noise is added to clean input) or --noisy")
    sig = 0.0 if noisy else _sigmas(str(sigma))[0]
    model = _load_model_cli(model_path, device)
    images = open_data(
        DataSpec((str(input_path),), channels=None if channels is None else int(channels))
    )
    _check_images(model, images, pad)
    stems = _output_stems(images.names)
    run = model_method(model, pad=pad, device=_device(device))
    scores = {}
    for i in range(len(images)):
        x = to_float(images[i])[None]
        y = x if noisy else noisy_image(x, sig, seed, i)
        est = run(y, sig).clamp(0, 1)
        stem = stems[i]
        for tag, t in (("noisy", y.clamp(0, 1)), ("denoised", est)):
            if tag == "noisy" and noisy:
                continue
            a = np.round(t[0].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            pil = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
            write_atomic(
                Path(out_dir) / f"{stem}_{tag}.png",
                lambda tmp, pil=pil: pil.save(tmp, format="PNG"),
            )
        if not noisy:
            scores[images.names[i]] = {
                "psnr_noisy": float(psnr(y, x)[0]),
                "psnr_denoised": float(psnr(est, x)[0]),
            }
            click.echo(
                f"{images.names[i]}: PSNR {scores[images.names[i]]['psnr_noisy']:.2f} -> "
                f"{scores[images.names[i]]['psnr_denoised']:.2f} dB"
            )
    if scores:
        write_json(
            Path(out_dir) / "psnr.json",
            {"sigma_255": sigma, "seed": seed, "model": str(model_path), "images": scores},
        )
    click.echo(f"wrote {len(images)} result(s) to {out_dir}")


@main.command()
@click.option(
    "--model",
    "model_paths",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Run directory, .safetensors or lab .pt; repeat to compare several.",
)
@click.option("--data", "data_path", required=True, help="Test images (folder, file, array...).")
@click.option("--sigmas", default="15,25,50", show_default=True, help=f"Comma list, {SIGMA_HELP}.")
@click.option("--bm3d", "with_bm3d", is_flag=True, help="Add BM3D (given the true sigma).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default=None)
@click.option("--limit", type=COUNT, default=None, help="Only the first N images.")
@click.option("--pad", is_flag=True, help="Reflect-pad to the model's size multiple, then crop.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@user_errors
def evaluate(
    model_paths, data_path, sigmas, with_bm3d, out_dir, channels, limit, pad, seed, device
):
    """PSNR and SSIM over noise levels on a test set: a table, psnr.png and results.json."""
    from denoiserlens.data import DataSpec, open_data
    from denoiserlens.evaluation import bm3d_method, model_method, write_results
    from denoiserlens.evaluation import evaluate as run_eval

    sig = _sigmas(sigmas)
    if not model_paths and not with_bm3d:
        raise UserError("nothing to evaluate: give --model and/or --bm3d")
    images = open_data(DataSpec((data_path,), channels=None if channels is None else int(channels)))
    if limit:
        images = images.subset(list(range(min(limit, len(images)))))
    methods = {}
    for p in model_paths:
        model = _load_model_cli(p, device)
        _check_images(model, images, pad)
        methods[_method_name(p, methods)] = model_method(model, pad=pad, device=_device(device))
    if with_bm3d:
        methods["BM3D"] = bm3d_method
    res = run_eval(methods, images, sig, seed, progress=lambda s: click.echo(s, err=True))
    click.echo(res.format_table())
    write_results(
        res,
        out_dir,
        {
            "data": data_path,
            "data_fingerprint": images.fingerprint,
            "seed": seed,
            "models": [str(p) for p in model_paths],
        },
    )
    click.echo(f"wrote {out_dir}/results.json, table.txt, psnr.png")


def _method_name(path: Path, taken: dict) -> str:
    name = path.parent.parent.name if path.suffix == ".pt" else path.name
    return name if name not in taken else str(path)


@main.command()
@data_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--epochs", type=COUNT, default=4, show_default=True, help="Passes over the images.")
@click.option("--batch-size", type=COUNT, default=128, show_default=True, help="Images per step.")
@click.option("--lr", type=POSITIVE, default=2e-3, show_default=True, help="Peak (one-cycle) rate.")
@click.option(
    "--test-fraction",
    type=float,
    default=0.05,
    show_default=True,
    help="Held out for the accuracy.",
)
@click.option("--half", is_flag=True, help="Store the weights as float16 (to ship them).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@user_errors
def classifier(out_dir, epochs, batch_size, lr, test_fraction, half, seed, device, **data_kw):
    """Train the small classifier whose features and predictions judge generated images (the
    Frechet distance and class agreement of `sample --reference` and `reconstruct`), on labelled
    images: e.g. --data fashion-mnist --pad-to 32 (the bundled one)."""
    from denoiserlens.data import open_data
    from denoiserlens.quality import (
        READ_TRANSFORMS,
        ClassifierConfig,
        save_classifier,
        train_classifier,
    )

    spec = _data_spec(data_kw)
    try:
        cfg = ClassifierConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, test_fraction=test_fraction, seed=seed
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    if Path(out_dir, "weights.safetensors").exists():
        raise UserError(f"{out_dir} already holds a classifier; choose another --out")
    images = open_data(spec)
    transforms = {k: getattr(spec, k) for k in READ_TRANSFORMS}
    clf = train_classifier(
        images,
        cfg,
        {k: v for k, v in transforms.items() if v is not None},
        _device(device),
        progress=click.echo,
    )
    save_classifier(clf, out_dir, half=half)
    acc = "no held-out images" if clf.accuracy is None else f"held-out accuracy {clf.accuracy:.3f}"
    click.echo(f"{len(clf.class_names)} classes, {acc}; weights.safetensors in {out_dir}")


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
)
@user_errors
def demo(out_dir):
    """The main job on the bundled model and images (no download): PSNR/SSIM against BM3D at
    sigma 15, 25, 50 on ten images shipped with scikit-image, plus example denoisings."""
    from denoiserlens.demo import run_demo

    result = run_demo(out_dir, progress=lambda s: click.echo(s, err=True))
    click.echo(result["table"])
    click.echo(
        "gain over BM3D (dB): "
        + ", ".join(f"sigma {k}: {v:+.2f}" for k, v in result["gain_over_bm3d_db"].items())
    )
    click.echo(f"results in {out_dir}/: table.txt, results.json, psnr.png, examples.png")


@main.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True)
@data_options
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="The store directory."
)
@click.option("--sigmas", default="25", show_default=True, help=f"Comma list, {SIGMA_HELP}.")
@click.option(
    "--n-noise",
    type=COUNT,
    default=20,
    show_default=True,
    help="Noise draws averaged per image (one at sigma 0).",
)
@click.option(
    "--blocks",
    default="M",
    show_default=True,
    help="Comma list of block names, or 'all'. Only blocks up to the last are computed.",
)
@click.option("--inputs", is_flag=True, help="Also store the spatial means of the blocks' inputs.")
@click.option("--batch-size", type=COUNT, default=16, show_default=True, help="Images per pass.")
@click.option(
    "--chunk-size", type=int, default=256, show_default=True, help="Rows per checkpointed chunk."
)
@click.option("--bf16", is_flag=True)
@click.option("--channels-last", is_flag=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Finish an interrupted store.")
@click.option(
    "--random-weights",
    is_flag=True,
    help="The control: the architecture of --model with fresh weights seeded by --seed.",
)
@click.option("--device", default="auto", show_default=True)
@user_errors
def represent(
    model_path,
    out_dir,
    sigmas,
    n_noise,
    blocks,
    inputs,
    batch_size,
    chunk_size,
    bf16,
    channels_last,
    seed,
    resume,
    random_weights,
    device,
    **data_kw,
):
    """phi (section 2.3) and block summaries a_bar_j of a data set, streamed to a store.

    phi(x, sigma) is the mean over --n-noise draws of the spatial means of the middle block's
    output channels for x + sigma z. Resumable; under torchrun the ranks share the work.
    """
    from tqdm import tqdm

    from denoiserlens.data import open_data
    from denoiserlens.represent import RepresentConfig
    from denoiserlens.represent import represent as run_represent
    from denoiserlens.represent.store import parse_blocks
    from denoiserlens.train import init_distributed

    dev = init_distributed()  # under torchrun, always
    dev = dev if device == "auto" else _device(device)
    model = _load_model_cli(model_path, str(dev))
    if random_weights:
        from denoiserlens.models import build_model

        model = build_model(model.arch_config(), seed=seed).to(dev)
        model_path = f"{model_path} (random weights, seed {seed})"
    spec = _data_spec(data_kw)
    images = open_data(spec)
    cfg = RepresentConfig(
        sigmas=tuple(_sigmas(sigmas)),
        n_noise=n_noise,
        blocks=parse_blocks(blocks, model),
        inputs=inputs,
        seed=seed,
        batch_size=batch_size,
        chunk_size=chunk_size,
        bf16=bf16,
        channels_last=channels_last,
    )
    bar = tqdm(total=None, unit="chunk", dynamic_ncols=True)

    def progress(i: int, n: int) -> None:
        bar.total = n
        bar.update(1)

    store = run_represent(
        model,
        images,
        out_dir,
        cfg,
        resume=resume,
        model_path=str(model_path),
        progress=progress,
        data_spec=spec.to_dict(),
    )
    bar.close()
    click.echo(
        f"{out_dir}: {len(store.names)} images x {len(cfg.sigmas)} sigma(s); arrays "
        + ", ".join(f"{k} {tuple(v)}" for k, v in store.meta["arrays"].items())
    )


@main.command()
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A store written by `denoiserlens represent`.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--sigma",
    type=SIGMA,
    default=None,
    help=f"The store's noise level to analyse, {SIGMA_HELP} (default: its first).",
)
@click.option(
    "--reference",
    type=SIGMA,
    default=127.5,
    show_default=True,
    help=f"sigma_1 of the stability curves (Figure 2), {SIGMA_HELP}.",
)
@click.option(
    "--query",
    type=int,
    default=0,
    show_default=True,
    help="Row of the image whose specialized channels Figure 4 shows.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The store's model: adds Figure 13 (statistics of the activation maps).",
)
@click.option(
    "--map-images",
    type=COUNT,
    default=256,
    show_default=True,
    help="Images whose maps Figure 13 uses.",
)
@click.option(
    "--groups",
    default=None,
    help="Two labels A,B for Figure 5 (default: the two most frequent labels).",
)
@click.option("--device", default="auto", show_default=True)
@user_errors
def analyze(store_path, out_dir, sigma, reference, query, model_path, map_images, groups, device):
    """Sparsity (Figure 1), stability (Figure 2), channel selectivity (Figures 3, 4) of a store,
    union of subspaces for two labelled groups (Figure 5), and with --model the statistics of the
    channels' activation maps (Figure 13)."""
    import json

    from denoiserlens.analysis.run import analyze_store

    sig = None if sigma is None else _sigmas(str(sigma))[0]
    model = None if model_path is None else _load_model_cli(model_path, device)
    try:
        pair = None if groups is None else tuple(int(g) for g in groups.split(","))
    except ValueError:
        raise UserError(f"--groups takes two integer labels A,B, got {groups!r}") from None
    metrics = analyze_store(
        store_path, out_dir, sig, _sigmas(str(reference))[0], query, model, map_images, pair
    )
    click.echo(
        json.dumps(
            {k: v for k, v in metrics.items() if k not in ("stability", "findings")}, indent=1
        )
    )
    for f in metrics["findings"]:
        click.echo(f"[{'holds' if f['holds'] else 'does not hold'}] {f['claim']}: {f['measured']}")
    click.echo(f"figures and metrics.json in {out_dir}")


def _store_sigma(sigma: float | None) -> float | None:
    return None if sigma is None else _sigmas(str(sigma))[0]


@main.command()
@click.option("--store", "store_path", type=click.Path(path_type=Path), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--query", "queries", default="0", show_default=True, help="Comma list of query rows."
)
@click.option("--k", type=COUNT, default=8, show_default=True, help="Neighbours per query.")
@click.option("--sigma", type=SIGMA, default=None, help=f"phi at this store sigma, {SIGMA_HELP}.")
@user_errors
def neighbours(store_path, out_dir, queries, k, sigma):
    """Nearest images by cosine similarity in phi and, side by side, in pixels (Figures 5, 14)."""
    from denoiserlens.analysis.semantics import neighbours_figure

    rows = _int_list(queries, "--query")
    result = neighbours_figure(store_path, out_dir, rows, k, _store_sigma(sigma))
    for q in result["queries"]:
        line = f"row {q['row']} ({q['name']}): phi {q['phi']}, pixels {q['pixels']}"
        if "label" in q:
            line += (
                f"; same label: phi {q['same_label_phi']:.0%}, pixels {q['same_label_pixels']:.0%}"
            )
        click.echo(line)
    click.echo(f"fig14_neighbours.png and neighbours.json in {out_dir}")


@main.command()
@click.option("--store", "store_path", type=click.Path(path_type=Path), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--k", type=COUNT, required=True, help="Number of clusters.")
@click.option("--sigma", type=SIGMA, default=None, help=f"phi at this store sigma, {SIGMA_HELP}.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-init", type=COUNT, default=10, show_default=True, help="K-means restarts.")
@click.option(
    "--pairs", type=int, default=200, show_default=True, help="Random pairs for separation."
)
@user_errors
def cluster(store_path, out_dir, k, sigma, seed, n_init, pairs):
    """K-means on phi (Figure 6): assignments, centroids, separation of cluster pairs (and class
    pairs), members and t-SNE of a few clusters, NMI/ARI/purity against labels if any."""
    from denoiserlens.analysis.semantics import cluster_store

    if n_init < 1 or pairs < 1:
        raise UserError("--n-init and --pairs must be >= 1")
    try:
        r = cluster_store(store_path, out_dir, k, _store_sigma(sigma), seed, n_init, pairs)
    except ValueError as e:  # k out of range, a single label class: the data cannot answer
        raise UserError(str(e)) from None
    cs = r["cluster_separation"]
    click.echo(
        f"{k} clusters ({r['method']}), sizes {min(r['sizes'])}-{max(r['sizes'])}; "
        f"{cs['fraction_separated']:.0%} of {cs['pairs']} cluster pairs > 2 sd apart"
    )
    if "labels" in r:
        lab, cl = r["labels"], r["class_separation"]
        click.echo(
            f"against labels: NMI {lab['nmi']:.3f}, ARI {lab['ari']:.3f}, purity "
            f"{lab['purity']:.3f}; {cl['fraction_separated']:.0%} of {cl['pairs']} "
            f"class pairs > 2 sd apart"
        )
    click.echo(f"clusters.json, assignments.npy, centroids.npy and figures in {out_dir}")


@main.command()
@click.option(
    "--store",
    "stores",
    multiple=True,
    required=True,
    help="NAME=STORE (or STORE); repeat, e.g. trained=... random=... (same images).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--pixels/--no-pixels", default=True, show_default=True, help="Add raw pixels.")
@click.option("--k", type=COUNT, default=10, show_default=True, help="Neighbours of the kNN vote.")
@click.option("--query-fraction", type=float, default=0.2, show_default=True)
@click.option("--linear/--no-linear", default=True, show_default=True, help="Add a linear probe.")
@click.option(
    "--key",
    default=None,
    help="Stored array to probe, e.g. E1 or in:E2 (default: phi, the middle block).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def probe(stores, out_dir, pixels, k, query_fraction, linear, key, seed):
    """Label accuracy of phi (every store, every sigma) and of pixels: kNN vote and linear probe
    on one seeded split of the rows. Needs labels."""
    from denoiserlens.analysis.semantics import format_probe_table, probe_stores

    named = {}
    for i, entry in enumerate(stores):
        name, _, path = entry.partition("=") if "=" in entry else (f"store{i}", "", entry)
        named[name or f"store{i}"] = path
    if not 0 < query_fraction < 1:
        raise UserError(f"--query-fraction must be in (0, 1), got {query_fraction}")
    if k < 1:
        raise UserError(f"--k must be >= 1, got {k}")
    try:
        result = probe_stores(named, out_dir, pixels, k, query_fraction, seed, linear, key)
    except ValueError as e:  # more neighbours than references, one class only
        raise UserError(str(e)) from None
    click.echo(
        f"{result['references']} references, {result['queries']} queries, "
        f"{result['classes']} classes"
    )
    click.echo(format_probe_table(result))
    click.echo(f"probe.json in {out_dir}")


@main.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory (default: the bundled Fashion-MNIST model).",
)
@functools.partial(data_options, required=False)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("report"), show_default=True
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML file of report settings (see denoiserlens.report.config).",
)
@click.option("--images", "n_images", type=COUNT, default=None, help="Rows of the data used.")
@click.option("--skip", default=None, help="Comma list of sections not to compute.")
@click.option("--device", default="auto", show_default=True)
@user_errors
def report(model_path, out_dir, config_path, n_images, skip, device, **data_kw):
    """Every analysis on one model and data set, as a static web page (index.html with the
    paper's figures in its order, explorer.html, metrics.json). With no --model and --data, the
    bundled model and images (offline). An interrupted report reruns only what it had not
    finished. Sections: denoising, representation, neighbours, clusters, probe, samples,
    reconstructions, distance, jacobian, explorer."""
    from tqdm import tqdm

    from denoiserlens.report import bundled_defaults, load_config, run_report

    if (model_path is None) != (not data_kw["sources"]):
        raise UserError("give both --model and --data, or neither (the bundled defaults)")
    if model_path is None:
        model_path, spec = bundled_defaults()
    else:
        spec = _data_spec(data_kw)
    if not Path(model_path).exists():
        raise UserError(f"{model_path}: no such model")
    cfg = load_config(
        config_path,
        images=n_images,
        skip=None if skip is None else tuple(s for s in skip.split(",") if s),
    )
    if cfg.bf16:
        _warn_if_bf16_emulated("bf16 (report setting)")
    bar = tqdm(
        total=100, unit="%", dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed}<{remaining}"
    )

    def progress(stage: str, done: float) -> None:
        bar.set_description(stage)
        bar.update(round(100 * done) - bar.n)

    metrics = run_report(model_path, spec, out_dir, cfg, _device(device), progress)
    bar.close()
    n_skipped = sum(1 for s in metrics["sections"].values() if s["skipped"])
    click.echo(
        f"report: {out_dir}/index.html ({len(metrics['sections']) - n_skipped} sections, "
        f"{n_skipped} omitted; explorer.html, metrics.json)"
    )


@main.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A run directory written by train.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="The new run directory (refused if it exists).",
)
@click.option("--batches", type=COUNT, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@user_errors
def recalibrate(model_path, out_dir, batches, seed, device):
    """Re-estimate a trained model's batch-normalization statistics as an exact average over
    noisy training batches (the run's own data and noise settings) and save the result as a new
    run directory. Training leaves a short exponential average (the last ~10 batches)."""
    from dataclasses import fields

    from denoiserlens.data import DataSpec, open_data
    from denoiserlens.fileio import read_json
    from denoiserlens.models import save_model
    from denoiserlens.train import TrainConfig
    from denoiserlens.train.loop import recalibrate_norms

    if Path(out_dir).exists():
        raise UserError(f"{out_dir}: exists; give a new directory")
    if batches < 1:
        raise UserError("--batches must be >= 1")
    if not (Path(model_path) / "config.json").is_file():
        raise UserError(f"{model_path}: not a run directory (no config.json)")
    config = read_json(Path(model_path) / "config.json")
    if "train" not in config or "sources" not in config.get("data", {}):
        raise UserError(f"{model_path}: its config.json does not say how it was trained")
    known = {f.name for f in fields(TrainConfig)}
    train_kw = {k: v for k, v in config["train"].items() if k in known}
    train_kw["eval_sigmas"] = tuple(train_kw.get("eval_sigmas", ()))
    cfg = TrainConfig(**train_kw)
    spec_keys = {f.name for f in fields(DataSpec)}
    spec = DataSpec(
        **{
            k: (tuple(v) if k == "sources" else v)
            for k, v in config["data"].items()
            if k in spec_keys
        }
    )
    images = open_data(spec)
    if images.fingerprint != config["data"].get("fingerprint", images.fingerprint):
        raise UserError(f"{spec.sources}: the training images changed since the run")
    model = _load_model_cli(model_path, device)
    n = recalibrate_norms(model, images, cfg, batches, seed)
    if n == 0:
        raise UserError(f"{model_path}: the model has no batch normalization to recalibrate")
    meta = {k: v for k, v in config.items() if k not in ("model", "recalibrated")}
    meta["recalibrated"] = {"from": str(model_path), "batches": batches, "seed": seed}
    if "recalibrated" in config:  # recalibrating a recalibrated run: keep the history
        meta["recalibrated"]["previous"] = config["recalibrated"]
    save_model(model, out_dir, **meta)
    click.echo(f"{out_dir}: {n} normalization layers re-estimated over {batches} batches")


@main.command()
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    required=True,
    help="A lab .pt file: BF-CNN or the authors' UNet_flex.",
)
@click.option(
    "--norm",
    type=click.Choice(["layer", "instance", "batch"]),
    default=None,
    help="The authors' normalization, where the file cannot tell (layer and instance "
    "norms hold the same tensors).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="The new run directory (refused if it exists).",
)
@user_errors
def convert(checkpoint, norm, out_dir):
    """Import a lab checkpoint once into a run directory (safetensors + config.json) that every
    command reads with --model; its forward pass is the authors' (biases, normalization)."""
    from denoiserlens.models import load_model, save_model

    if Path(out_dir).exists():
        raise UserError(f"{out_dir}: exists; give a new directory")
    model = load_model(checkpoint, norm=norm)
    save_model(model, out_dir, imported={"from": str(checkpoint), "norm": norm})
    n = sum(p.numel() for p in model.parameters())
    click.echo(f"{out_dir}: {model.arch} with {n:,} parameters from {checkpoint}")


# Help of the options that mean the same in every command, and (command, option) entries for
# the others; filled in below wherever an option's own decorator gives none.
OPTION_HELP: dict[str | tuple[str, str], str] = {
    "seed": "Seed of every random draw: the same seed gives the same result.",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N.",
    "out_dir": "Output folder (created).",
    "model_path": "A run directory, a .safetensors file or one of the lab's .pt checkpoints.",
    "store_path": "A representation store (written by `represent`).",
    "patch_mode": "grid: non-overlapping patches; random: seeded random positions.",
    "patches_per_image": "Patches cut from each image with --patch-mode random.",
    "channels": "Convert to gray (1) or colour (3); default: as stored.",
    "channels_last": "channels_last memory format (pays off together with --bf16 on CPUs).",
    "bf16": "bf16 autocast for the network (results in float32).",
    "n_noise": "Noise draws averaged per image (the paper: 20).",
    "max_iter": "Guidance (Algorithm 2) gradient steps at most, per noise level.",
    ("train", "norm"): "layer (the paper's, with biases), batch (BF-CNN's, bias-free), none.",
    ("train", "steps"): "Optimizer steps in all (a resumed run may extend them).",
    ("train", "lr"): "Adam learning rate.",
    ("train", "test_fraction"): "Held-out fraction of the images (deterministic split).",
    ("train", "eval_every"): "Steps between evaluations on the held-out split.",
    ("train", "checkpoint_every"): "Steps between checkpoints (written atomically).",
    ("probe", "query_fraction"): "Fraction of the rows held out as queries (seeded split).",
    ("sample", "max_steps"): "Steps at most per sample.",
    ("sample", "batch_size"): "Samples drawn together.",
    ("generalization", "preset"): "Architecture of every model of the sweep.",
    ("generalization", "batch_size"): "Training batch size.",
    ("generalization", "lr"): "Adam learning rate.",
    ("generalization", "n_samples"): "Samples drawn from each model (the same seeds for both).",
    ("recalibrate", "batches"): "Noisy training batches averaged.",
}


def _warn_emulated_bf16(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """--bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) and no GPU: autocast then
    emulates bf16 and is slower than float32 (a training step 12x slower on AMD Zen 3)."""
    if value:
        _warn_if_bf16_emulated("--bf16")
    return value


def _warn_if_bf16_emulated(what: str) -> None:
    from denoiserlens.hardware import native_bf16

    if not native_bf16():
        _warn(
            f"this CPU has no native bf16 (AVX512-BF16 or AMX): {what} is emulated and "
            "slower than float32 here"
        )


def _fill_option_help() -> None:
    """Help from OPTION_HELP for options whose decorator gives none; every --bf16 warns where it
    would be emulated."""
    for name, command in main.commands.items():
        for p in command.params:
            if isinstance(p, click.Option) and not p.help:
                p.help = OPTION_HELP.get((name, p.name), OPTION_HELP.get(p.name))
            if p.name == "bf16" and p.callback is None:
                p.callback = _warn_emulated_bf16


from denoiserlens.cli import geometry as _geometry  # noqa: E402, F401 (registers its commands)
from denoiserlens.cli import sampling as _sampling  # noqa: E402, F401

_fill_option_help()


if __name__ == "__main__":
    main()
