"""Figure plumbing shared by the analyses: atomic PNG files and image panels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from denoiserlens.fileio import write_atomic


def save_figure(
    path: str | Path, draw: Callable, figsize=(6, 3.5), nrows: int = 1, ncols: int = 1
) -> None:
    """Draw on a grid of axes (one axis when 1x1) and write the PNG atomically (headless Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    draw(axes if nrows * ncols > 1 else axes[0][0])
    fig.tight_layout()
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def show_image(ax, im: np.ndarray, title: str = "") -> None:
    """A uint8 (C, H, W) image on ``ax``, gray or colour, without ticks."""
    im = np.asarray(im)
    ax.imshow(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def save_image_grid(path: str | Path, images: np.ndarray, ncols: int = 8, pad: int = 2) -> None:
    """Float (N, C, H, W) images in [0, 1] tiled on a white grid, written atomically as PNG."""
    from PIL import Image

    ims = np.clip(np.round(np.asarray(images, np.float32) * 255), 0, 255).astype(np.uint8)
    n, c, h, w = ims.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), 255, np.uint8)
    for i, im in enumerate(ims):
        r, k = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top : top + h, left : left + w] = im
    pil = Image.fromarray(grid[0] if c == 1 else grid.transpose(1, 2, 0))
    write_atomic(Path(path), lambda tmp: pil.save(tmp, format="PNG"))
