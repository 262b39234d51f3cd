"""Figures of the representation analyses (paper section 2): stability (Figure 2), sparsity
(Figure 1), channel statistics and selectivity (Figures 3, 4, 9-13), neighbours (Figure 5),
clusters and t-SNE (Figure 6), subspaces (Figure 15). The analysis modules compute the numbers;
these draw them on matplotlib axes."""

from __future__ import annotations

import numpy as np

from denoiserlens.analysis.selectivity import channel_participation, top_images
from denoiserlens.analysis.sparsity import participation_ratio
from denoiserlens.figures.common import show_image


def plot_subspaces(ax, phi: np.ndarray, group_a, group_b, channels: dict[str, int]) -> None:
    """Figure 5 (middle/right): the two groups in the 3D space of one common and two selective
    channels (``ax`` a 3D axes)."""
    c, sa, sb = channels["common"], channels["selective_a"], channels["selective_b"]
    for rows, colour, name in ((group_a, "tab:blue", "group A"), (group_b, "tab:red", "group B")):
        ax.scatter(phi[rows, sa], phi[rows, sb], phi[rows, c], s=8, c=colour, label=name)
    ax.set_xlabel(f"selective ch {sa}", fontsize=7)
    ax.set_ylabel(f"selective ch {sb}", fontsize=7)
    ax.set_zlabel(f"common ch {c}", fontsize=7)
    ax.legend(fontsize=7)


def plot_block_sparsity(
    ax, summaries: dict[str, np.ndarray], blocks: list[str], exclude: tuple[str, ...] = ()
) -> None:
    """Figure 1: PR distributions of each block's input (orange) and output (green) summaries."""
    positions, labels = [], []
    for i, b in enumerate(blocks):
        for key, offset, colour in ((f"{b}.in", -0.18, "tab:orange"), (b, 0.18, "tab:green")):
            a = summaries.get(key)
            if a is None or key in exclude or a.shape[-1] < 2:
                continue
            pr = participation_ratio(a)
            parts = ax.violinplot(pr[np.isfinite(pr)], [i + offset], widths=0.32, showmedians=True)
            for body in parts["bodies"]:
                body.set_facecolor(colour)
                body.set_alpha(0.6)
            for line in ("cmedians", "cmins", "cmaxes", "cbars"):
                parts[line].set_color(colour)
        positions.append(i)
        labels.append(b)
    ax.set_xticks(positions, labels)
    ax.set_ylabel("participation ratio")
    ax.set_ylim(0, 1)
    ax.set_title("channel sparsity: block inputs (orange), outputs (green)", fontsize=9)


def plot_channel_pr(ax, phi: np.ndarray, low: float = 0.3, high: float = 0.6) -> None:
    """Figure 3 (left): histogram of the channels' participation ratios across images."""
    pr = channel_participation(phi)
    ax.hist(pr[np.isfinite(pr)], bins=40, range=(0, 1), color="tab:blue", alpha=0.8)
    for t in (low, high):
        ax.axvline(t, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("channel participation ratio across images")
    ax.set_ylabel("channels")


def plot_specialized(axes, images, phi: np.ndarray, row: int, channels, k: int = 6) -> None:
    """Figure 4: the query image (first column) and, for each of its specialized channels (rows),
    the k images of the data set that most activate that channel."""
    query = np.asarray(images[row])
    for r, ch in enumerate(channels):
        show_image(axes[r][0], query)
        axes[r][0].set_title("query" if r == 0 else "", fontsize=7)
        axes[r][0].set_ylabel(f"ch {int(ch)}", fontsize=7)
        for j, other in enumerate(top_images(phi, int(ch), k)):
            show_image(axes[r][j + 1], np.asarray(images[other]))


def plot_top_images(axes, images: np.ndarray, phi: np.ndarray, channels, k: int = 6) -> None:
    """Figure 3 (right): for each channel (a row of ``axes``), its k most activating images.

    ``images`` is indexable by row and gives uint8 (C, H, W) arrays.
    """
    pr = channel_participation(phi)
    for r, ch in enumerate(channels):
        for j, row in enumerate(top_images(phi, int(ch), k)):
            ax = axes[r][j]
            show_image(ax, np.asarray(images[row]))
            if j == 0:
                ax.set_ylabel(f"ch {int(ch)}\nPR {pr[int(ch)]:.2f}", fontsize=7)


def plot_separation(ax, clusters: dict, classes: dict | None = None) -> None:
    """Figure 6 (top): centroid distance against spread for pairs of clusters (and classes)."""
    for tag, s, colour in (("clusters", clusters, "tab:blue"), ("classes", classes, "tab:red")):
        if s is None:
            continue
        ax.scatter(
            s["spread"],
            s["distance"],
            s=8,
            alpha=0.6,
            color=colour,
            label=f"{tag}: {s['fraction_separated']:.0%} > 2 sd",
        )
    top = max(np.nanmax(clusters["spread"]), np.nanmax(classes["spread"]) if classes else 0)
    ax.plot([0, top], [0, 2 * top], color="gray", ls=":", lw=1, label="distance = 2 sd")
    ax.set_xlabel("sqrt of mean variance along the centroid line")
    ax.set_ylabel("distance between centroids")
    ax.legend(fontsize=7)


def plot_members(axes, images, assignment: np.ndarray, clusters, n: int, seed: int = 0) -> None:
    """Figure 6 (bottom): ``n`` random members (columns) of each cluster (rows of ``axes``)."""

    rng = np.random.default_rng(seed)
    for r, c in enumerate(clusters):
        members = np.flatnonzero(assignment == c)
        pick = rng.choice(members, size=min(n, len(members)), replace=False)
        for j in range(n):
            ax = axes[r][j]
            if j < len(pick):
                show_image(ax, images[int(pick[j])])
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(f"cluster {int(c)}\n{len(members)} images", fontsize=7)


def plot_tsne(ax, embedding: np.ndarray, groups: np.ndarray) -> None:
    """t-SNE of a few clusters, coloured by cluster."""
    for g in np.unique(groups):
        m = groups == g
        ax.scatter(embedding[m, 0], embedding[m, 1], s=4, label=str(int(g)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, markerscale=2, title="cluster", title_fontsize=7)


def plot_channel_statistics(axes, st: dict, phi: np.ndarray, n_show: int = 4) -> None:
    """Figure 13, one row: marginals of the most selective and most common channels, spatial PR
    against channel PR, PCA dimension against channel PR (four axes)."""
    pr = st["channel_pr"]
    live = np.flatnonzero(np.isfinite(pr))
    order = live[np.argsort(pr[live])]
    for ax, channels, title in (
        (axes[0], order[:n_show], "selective"),
        (axes[1], order[-n_show:], "common"),
    ):
        for ch in channels:
            ax.hist(phi[:, ch], bins=40, histtype="step", density=True, label=f"ch {ch}")
        ax.set_yscale("log")
        ax.set_title(f"phi[i], {title} channels", fontsize=8)
        ax.legend(fontsize=6)
    for ax, key, label in (
        (axes[2], "spatial_pr", "spatial PR of the maps"),
        (axes[3], "pca_dim", "PCs for 90% of map variance"),
    ):
        ax.scatter(pr, st[key], s=6, alpha=0.6)
        rho = st["spearman_with_channel_pr"][key]
        ax.set_xlabel("channel PR across images")
        ax.set_ylabel(label)
        ax.set_title(f"Spearman rho = {rho:.2f}", fontsize=8)


def plot_neighbours(axes, images, queries: list[int], phi_nn: np.ndarray, pixel_nn: np.ndarray):
    """Figures 5 and 14: for each query, a row of its nearest images in phi and one in pixels.

    ``axes`` is (2 * len(queries), k + 1); ``images`` indexable by row, uint8 (C, H, W).
    """

    for i, q in enumerate(queries):
        for j, (tag, nn) in enumerate((("phi", phi_nn[i]), ("pixels", pixel_nn[i]))):
            row = axes[2 * i + j]
            show_image(row[0], images[q], f"query {q}" if j == 0 else "")
            row[0].set_ylabel(tag, fontsize=8)
            for a, r in zip(row[1:], nn, strict=False):
                show_image(a, images[int(r)], "")


def plot_stability(ax, curves: dict[str, np.ndarray], sigmas: list[float], reference: float):
    """Figure 2: cosine similarity to the summary at sigma_1 = reference, against sigma_2."""
    for key, c in curves.items():
        ax.plot(sigmas, c, marker="o", ms=3, label=key, lw=2.5 if key == "M" else 1.2)
    ax.axvline(reference, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("sigma_2 (pixel units)")
    ax.set_ylabel(f"cos(a(x_{reference:g}), a(x_sigma_2))")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, ncol=2)
