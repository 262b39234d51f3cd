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
from denoiserlens.evaluation import bm3d_method, evaluate, model_method, noisy_image, write_results
from denoiserlens.fileio import write_atomic
from denoiserlens.models import Denoiser, load_model

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from denoiserlens.evaluation import psnr

    ours = model_method(model)
    n = min(3, len(images))
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for i in range(n):
        x = to_float(images[i])[None]
        y = noisy_image(x, sigma, seed, i)
        panels = [
            ("clean", x),
            ("noisy", y.clamp(0, 1)),
            ("denoiserlens", ours(y, sigma).clamp(0, 1)),
            ("BM3D", bm3d_method(y, sigma).clamp(0, 1)),
        ]
        for ax, (title, t) in zip(axes[i], panels, strict=True):
            ax.imshow(t[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            label = title if title == "clean" else f"{title} {float(psnr(t, x)[0]):.2f} dB"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"sigma = {sigma * 255:g}/255", fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


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
