"""The main job on what ships with the package: the bundled grayscale model denoises images bundled
with scikit-image at three noise levels, next to BM3D, and writes a table, a plot and examples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from denoiserlens.data import DataSpec, ImageSet, open_data, to_float
from denoiserlens.data.open import SKIMAGE_DEMO
from denoiserlens.errors import UserError
from denoiserlens.evaluation import bm3d_method, evaluate, model_method, noisy_image
from denoiserlens.models import Denoiser, load_model
from denoiserlens.stages.evaluation import write_results

ASSETS = Path(__file__).parent / "assets"
BUNDLED_GRAY = ASSETS / "gray-photos"


def demo_images(size: int = 256) -> ImageSet:
    """Ten grayscale test images shipped with scikit-image, centre-cropped to size x size."""
    return open_data(DataSpec(("skimage:" + ",".join(SKIMAGE_DEMO),), channels=1, size=size))


def bundled_model() -> Denoiser:
    """The grayscale denoiser trained here and shipped in the package (see assets/README.md)."""
    if not (BUNDLED_GRAY / "weights.safetensors").exists():
        raise UserError(f"the bundled model is missing from {BUNDLED_GRAY}")
    return load_model(BUNDLED_GRAY)


def example_figure(model: Denoiser, images: ImageSet, sigma: float, path: Path, seed: int = 0):
    """Rows: clean, noisy, ours, BM3D for the first three images at one noise level."""
    from denoiserlens.evaluation import psnr
    from denoiserlens.figures.common import save_figure
    from denoiserlens.figures.evaluation import plot_denoising_examples

    ours = model_method(model)
    rows = []
    for i in range(min(3, len(images))):
        x = to_float(images[i])[None]
        y = noisy_image(x, sigma, seed, i)
        panels = [
            ("noisy", y.clamp(0, 1)),
            ("denoiserlens", ours(y, sigma).clamp(0, 1)),
            ("BM3D", bm3d_method(y, sigma).clamp(0, 1)),
        ]
        scored = [(f"{t} {float(psnr(im, x)[0]):.2f} dB", im[0, 0].numpy()) for t, im in panels]
        rows.append([("clean", x[0, 0].numpy()), *scored])
    draw = lambda axes: plot_denoising_examples(axes, rows, sigma)  # noqa: E731
    save_figure(path, draw, figsize=(10, 2.6 * len(rows)), nrows=len(rows), ncols=4)


def run_demo(
    out_dir: str | Path,
    model: Denoiser | None = None,
    images: ImageSet | None = None,
    sigmas: tuple[float, ...] = (15 / 255, 25 / 255, 50 / 255),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate ``model`` (default: the bundled one) and BM3D; write results into ``out_dir``."""
    torch.manual_seed(0)
    model = model or bundled_model()
    images = images if images is not None else demo_images()
    res = evaluate(
        {"denoiserlens": model_method(model), "BM3D": bm3d_method},
        images,
        list(sigmas),
        seed=0,
        progress=progress,
    )
    out = Path(out_dir)
    write_results(
        res,
        out,
        {
            "data": images.source,
            "data_fingerprint": images.fingerprint,
            "seed": 0,
            "models": ["bundled:gray-photos"],
        },
    )
    example_figure(model, images, sigmas[len(sigmas) // 2], out / "examples.png")
    gain = {
        f"{s * 255:g}": float(np.mean(res.psnr["denoiserlens"][k] - res.psnr["BM3D"][k]))
        for k, s in enumerate(sigmas)
    }
    return {"table": res.format_table(), "gain_over_bm3d_db": gain}
