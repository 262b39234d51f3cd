"""Figures of the companion work: Jacobian eigenvalues and eigenvectors, PSNR curves on C-alpha
images, the memorization-to-generalization sweep."""

from __future__ import annotations

from typing import Any

import numpy as np


def plot_psnr_curves(ax, curves: dict[str, dict]) -> None:
    """Output vs input PSNR with the fitted lines, and the optimal slope where alpha is known."""
    for label, c in curves.items():
        best = f" (optimal {c['optimal_slope']:.2f})" if "optimal_slope" in c else ""
        line = ax.plot(
            c["psnr_in"],
            c["psnr_out"],
            marker="o",
            ms=3,
            label=f"{label}: slope {c['slope']:.2f}{best}",
        )
        if "optimal_slope" in c:
            x = np.asarray(c["psnr_in"])
            mid = len(x) // 2
            ax.plot(
                x,
                c["psnr_out"][mid] + c["optimal_slope"] * (x - x[mid]),
                ls=":",
                color=line[0].get_color(),
                lw=1,
            )
    ax.set_xlabel("input PSNR (dB)")
    ax.set_ylabel("output PSNR (dB)")
    ax.legend(fontsize=7)


def plot_sweep(ax, results: dict[str, Any]) -> None:
    """Cosine similarity vs N: between the two models' samples, and of samples to their
    nearest training image (medians, with quartile bands)."""
    for key, label, colour in (
        ("paired", "model A vs model B samples", "tab:blue"),
        ("nearest_training", "sample vs nearest training image", "tab:orange"),
    ):
        sizes = sorted(int(n) for n, r in results["per_size"].items() if r[key])
        vals = [np.asarray(results["per_size"][str(n)][key]) for n in sizes]
        ax.plot(sizes, [np.median(v) for v in vals], marker="o", color=colour, label=label)
        ax.fill_between(
            sizes,
            [np.percentile(v, 25) for v in vals],
            [np.percentile(v, 75) for v in vals],
            color=colour,
            alpha=0.2,
        )
    ax.axhline(0.95, color="gray", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training images per model (N)")
    ax.set_ylabel("cosine similarity")
    ax.set_ylim(-0.05, 1.02)
    ax.legend(fontsize=7)


def plot_eigenvalues(ax, curves: dict[str, np.ndarray]) -> None:
    """Eigenvalue decay of (J + J^T)/2, one curve per image / noise level."""
    for label, vals in curves.items():
        ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", ms=2, label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue")
    ax.set_xscale("log")
    ax.legend(fontsize=7)


def plot_eigenvectors(axes, vecs: np.ndarray, shape: tuple[int, ...], vals: np.ndarray) -> None:
    """An image grid of eigenvectors (columns of ``vecs``), each scaled to its own range."""
    c = shape[0]
    for i, ax in enumerate(np.ravel(axes)):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= vecs.shape[1]:
            ax.axis("off")
            continue
        v = vecs[:, i].reshape(shape)
        v = v / (np.abs(v).max() + 1e-12)
        ax.imshow(
            v[0] if c == 1 else (0.5 + 0.5 * v).transpose(1, 2, 0), cmap="gray", vmin=-1, vmax=1
        )
        ax.set_title(f"{vals[i]:.3f}", fontsize=6)
