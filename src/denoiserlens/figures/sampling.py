"""Figures of section 3: reconstructions around their target (Figure 7), the noise level before
and after each matching step (Figure 20), and Eq. 4's distances against ||dphi||^2 (Figure 8,
right)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from denoiserlens.figures.common import save_figure, show_image


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def plot_reconstructions(
    path: str | Path,
    targets: Sequence[np.ndarray | list[np.ndarray]],
    samples: np.ndarray,
    n: int,
    title: str = "target",
) -> None:
    """Figure 7: per target, a 3x3 panel with the target in the centre and up to 8 samples
    around it; panels side by side. ``targets``: K (C, H, W) images, or per target a list of
    images shown side by side in the centre (the two images of a union); ``samples``
    (K * n, C, H, W); ``title`` labels the centre."""
    k = len(targets)

    def draw(axes):
        for t in range(k):
            others = iter(range(t * n, t * n + min(n, 8)))
            for cell in range(9):
                ax = axes[cell // 3][3 * t + cell % 3]
                if cell == 4:
                    centre = targets[t]
                    if not isinstance(centre, np.ndarray):  # side by side, a white gap between
                        c, h, w = centre[0].shape
                        gap = np.ones((c, h, max(1, w // 16)), centre[0].dtype)
                        centre = np.concatenate([x for im in centre for x in (im, gap)][:-1], 2)
                    show_image(ax, _uint8(centre), title)
                    for side in ax.spines.values():
                        side.set_color("tab:red")
                        side.set_linewidth(2)
                    continue
                i = next(others, None)
                if i is None:
                    ax.axis("off")
                else:
                    show_image(ax, _uint8(samples[i]))

    save_figure(path, draw, figsize=(3.0 * k, 3.1), nrows=3, ncols=3 * k)


def plot_noise_levels(path: str | Path, before: np.ndarray, after: np.ndarray) -> None:
    """Figure 20: the effective noise level ||s(x)|| / sqrt(N) before against after each matching
    step, every sample and step; the diagonal means the matching leaves the noise level alone."""

    def draw(ax):
        ok = np.isfinite(before) & np.isfinite(after)
        ax.scatter(before[ok], after[ok], s=3, alpha=0.4)
        top = float(max(before[ok].max(), after[ok].max())) if ok.any() else 1.0
        ax.plot([0, top], [0, top], color="gray", ls=":", lw=1)
        ax.set_xlabel("effective sigma before matching")
        ax.set_ylabel("effective sigma after matching")
        ax.set_xscale("log")
        ax.set_yscale("log")

    save_figure(path, draw, figsize=(4, 4))


def plot_distance_study(ax, study: dict) -> None:
    """Figure 8 (right): d^2 of the conditional densities against ||phi_1 - phi_2||^2."""
    x, y = np.array(study["phi_sq"]), np.array(study["d_sq"])
    ax.scatter(x, y, s=12)
    c = study.get("constants")
    if c:
        grid = np.array([0, x.max()])
        ax.plot(grid, c["A"] * grid, color="gray", ls=":", lw=1, label=f"A = {c['A']:.3g}")
        ax.plot(
            grid,
            c["B"] * grid,
            color="gray",
            ls="--",
            lw=1,
            label=f"B = {c['B']:.3g} (B/A = {c['B_over_A']:.2f})",
        )
        ax.legend(fontsize=7)
    ax.set_xlabel("||phi_1 - phi_2||^2")
    ax.set_ylabel("d^2(p_1, p_2) (Eq. 4)")
