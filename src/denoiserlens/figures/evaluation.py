"""Figures of denoising: PSNR over noise levels, and example denoisings side by side."""

from __future__ import annotations

import numpy as np


def plot_psnr_over_sigma(ax, sigmas: list[float], psnr: dict[str, list[np.ndarray]]) -> None:
    """Mean PSNR of each method (its per-image scores at each sigma, in [0, 1] units)."""
    xs = [s * 255 for s in sigmas]
    for method, vals in psnr.items():
        ax.plot(xs, [v.mean() for v in vals], marker="o", label=method)
    ax.set_xlabel("noise sigma (of 255)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_denoising_examples(axes, rows: list[list[tuple[str, np.ndarray]]], sigma: float) -> None:
    """One row of panels per image: (title, gray (H, W) image in [0, 1]) each."""
    for row_axes, panels in zip(axes, rows, strict=True):
        for ax, (title, im) in zip(row_axes, panels, strict=True):
            ax.imshow(im, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    axes[0][0].figure.suptitle(f"sigma = {sigma * 255:g}/255", fontsize=10)
