"""Run every measure that a store's contents allow, writing figures and metrics.json.

- Figure 1 (sparsity) needs the inputs and outputs of several blocks (``represent --blocks all
  --inputs``); - Figure 2 (stability) needs several sigmas including 0.5 (127.5 of 255);
- Figure 3 (selectivity) needs phi, and the images (reopened from the store) for its grid.
A measure whose inputs are missing is skipped with the reason in metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoiserlens.analysis.findings import paper_findings
from denoiserlens.analysis.selectivity import (
    most_selective_channels,
    selectivity_summary,
    specialized_channels,
)
from denoiserlens.analysis.sparsity import block_sparsity
from denoiserlens.analysis.stability import stability_curves
from denoiserlens.analysis.subspaces import active_dimension, subspace_channels
from denoiserlens.errors import UserError
from denoiserlens.figures.analysis import (
    plot_block_sparsity,
    plot_channel_pr,
    plot_specialized,
    plot_stability,
    plot_subspaces,
    plot_top_images,
)
from denoiserlens.figures.common import save_figure
from denoiserlens.fileio import write_json
from denoiserlens.represent import Store
from denoiserlens.settings import setting


@dataclass(frozen=True)
class AnalyzeConfig:
    """What ``analyze_store`` measures a store at; noise levels in [0, 1] units."""

    sigma: float | None = setting(
        None,
        "The store's noise level to analyse, of 255 (default: its first).",
        kind="sigma",
        scale=255,
    )
    reference: float = setting(
        0.5, "sigma_1 of the stability curves (Figure 2), of 255.", kind="sigma", scale=255
    )
    query: int = setting(
        0, "Row of the image whose specialized channels Figure 4 shows.", kind="int"
    )
    map_images: int = setting(256, "Images whose maps Figure 13 uses (with --model).", kind="count")
    groups: tuple[int, ...] | None = setting(
        None, "Two labels A,B for Figure 5 (default: the two most frequent labels).", kind="rows"
    )

    def __post_init__(self) -> None:
        if self.groups is not None and len(self.groups) != 2:
            raise UserError(f"--groups takes two integer labels A,B, got {self.groups}")


def analyze_store(
    store_path: str | Path, out_dir: str | Path, cfg: AnalyzeConfig = AnalyzeConfig(), model=None
) -> dict:
    """Measures of paper section 2 on a store; returns (and writes) the metrics. ``model``, the
    store's, adds Figure 13 (statistics of the activation maps)."""
    sigma, reference, query, map_images = cfg.sigma, cfg.reference, cfg.query, cfg.map_images
    groups = cfg.groups
    store, out = Store(store_path), Path(out_dir)
    k = 0 if sigma is None else store._sigma_index(sigma)
    if not 0 <= query < store.meta["data"]["count"]:
        raise UserError(
            f"query row {query} is outside the store's {store.meta['data']['count']} rows"
        )
    if model is not None:
        store.check_model(model)  # every check before the first figure is written
    sig = store.sigmas[k]
    metrics: dict = {
        "store": str(store_path),
        "sigma": sig,
        "sigma_255": round(sig * 255, 3),
        "skipped": {},
    }
    group_rows = _group_rows(store, groups, metrics["skipped"])
    order = [b for b in store.meta["blocks"]]
    at_sigma = {key: np.asarray(store.array(key)[k]) for key in store.keys}

    every = store.meta.get("model_blocks")  # the network's input and output are images
    images_keys = (f"{every[0]}.in", every[-1]) if every else ()
    if len(order) > 1 and store.meta["inputs"]:
        metrics["sparsity"] = block_sparsity(at_sigma, images_keys)
        save_figure(
            out / "fig1_sparsity.png",
            lambda ax: plot_block_sparsity(ax, at_sigma, order, images_keys),
            figsize=(7, 3.5),
        )
    else:
        metrics["skipped"]["sparsity"] = "needs several blocks with inputs (--blocks all --inputs)"

    sigmas = store.sigmas
    if len(sigmas) >= 3 and any(abs(s - reference) < 1e-6 for s in sigmas):
        arrays = {
            b: np.asarray(store.array(b))
            for b in order
            if b not in images_keys and store.meta["arrays"][b][2] > 1
        }  # the image: cos = 1
        curves = stability_curves(arrays, sigmas, reference)
        metrics["stability"] = {
            "reference": reference,
            "sigmas": sigmas,
            "cosine": {b: c.tolist() for b, c in curves.items()},
        }
        save_figure(
            out / "fig2_stability.png", lambda ax: plot_stability(ax, curves, sigmas, reference)
        )
    else:
        metrics["skipped"]["stability"] = f"needs >= 3 sigmas including {reference * 255:g}/255"

    phi = at_sigma[store.phi_key]
    metrics["selectivity"] = selectivity_summary(phi)
    dims = active_dimension(phi)
    metrics["active_dimension"] = {
        "fraction": 0.99,
        "median": float(np.median(dims)),
        "q1": float(np.percentile(dims, 25)),
        "q3": float(np.percentile(dims, 75)),
        "d": int(phi.shape[1]),
    }
    metrics["subspaces"] = _subspaces(phi, group_rows, out, metrics["skipped"])
    save_figure(out / "fig3_channel_pr.png", lambda ax: plot_channel_pr(ax, phi))
    try:
        images = store.images()
    except UserError as e:
        metrics["skipped"]["top_images"] = str(e)
    else:
        channels = most_selective_channels(phi, 6)
        metrics["selectivity"]["most_selective"] = channels.tolist()
        save_figure(
            out / "fig3_top_images.png",
            lambda axes: plot_top_images(axes, images, phi, channels, 8),
            figsize=(8, 1.1 * len(channels) + 0.3),
            nrows=len(channels),
            ncols=8,
        )
        special = specialized_channels(phi, query, n=4)
        metrics["selectivity"]["query"] = {
            "row": query,
            "name": store.names[query],
            "specialized_channels": special.tolist(),
        }
        if len(special):
            save_figure(
                out / "fig4_specialized.png",
                lambda axes: plot_specialized(axes, images, phi, query, special, 6),
                figsize=(7, 1.1 * len(special) + 0.4),
                nrows=len(special),
                ncols=7,
            )
        if model is None:
            metrics["skipped"]["channel_statistics"] = "needs the model (--model) for the maps"
        else:
            metrics["channel_statistics"] = _channel_statistics(
                store, model, images, phi, sig, map_images, out
            )
    metrics["findings"] = paper_findings(metrics, store.phi_key)
    write_json(out / "metrics.json", metrics)
    return metrics


def _group_rows(store, groups, skipped: dict):
    """The two labelled groups of Figure 5 (default: the two most frequent labels) and their rows."""
    labels = store.labels
    if labels is None:
        skipped["subspaces"] = "needs labels to form two groups"
        return None
    if groups is None:
        values, counts = np.unique(labels, return_counts=True)
        if len(values) < 2:
            skipped["subspaces"] = "needs two labels; the store has one"
            return None
        groups = tuple(int(v) for v in values[np.argsort(-counts, kind="stable")[:2]])
    rows = [np.flatnonzero(labels == g) for g in groups]
    if len(groups) != 2 or any(len(r) == 0 for r in rows):
        raise UserError(f"groups {groups}: need two labels present in the store")
    return groups, rows


def _subspaces(phi, group_rows, out: Path, skipped: dict) -> dict | None:
    """Figure 5: phi on one common and two selective channels for two groups of images."""
    if group_rows is None:
        return None
    groups, rows = group_rows
    try:
        channels = subspace_channels(phi, rows[0], rows[1])
    except ValueError as e:
        skipped["subspaces"] = str(e)
        return None

    def draw(fig_axes) -> None:
        fig = fig_axes.figure
        fig_axes.remove()
        plot_subspaces(fig.add_subplot(projection="3d"), phi, rows[0], rows[1], channels)

    save_figure(out / "fig5_subspaces.png", draw, figsize=(5, 4.5))
    return {"groups": list(groups), "channels": channels}


def _channel_statistics(store, model, images, phi, sigma, n_images, out: Path) -> dict:
    """Figure 13 from the middle block's maps of the first ``n_images`` images."""
    import torch

    from denoiserlens.analysis.channel_stats import channel_statistics
    from denoiserlens.data import to_float
    from denoiserlens.figures.analysis import plot_channel_statistics
    from denoiserlens.represent import noise_averaged_maps

    device = next(model.parameters()).device
    n = min(n_images, len(images))
    maps = []
    for b0 in range(0, n, 16):
        rows = list(range(b0, min(b0 + 16, n)))
        x = to_float(np.stack([images[r] for r in rows])).to(device)
        with torch.no_grad():
            maps.append(
                noise_averaged_maps(
                    model, x, sigma, store.phi_key, store.meta["n_noise"], store.meta["seed"], rows
                )
                .cpu()
                .numpy()
            )
    st = channel_statistics(phi, np.concatenate(maps))
    save_figure(
        out / "fig13_channel_stats.png",
        lambda axes: plot_channel_statistics(axes[0], st, phi),
        figsize=(12, 3),
        ncols=4,
    )
    return {
        "map_images": n,
        "spearman_with_channel_pr": st["spearman_with_channel_pr"],
        "median_kurtosis": float(np.nanmedian(st["kurtosis"])),
    }


def analysis_summary(metrics: dict) -> list[str]:
    """The metrics of :func:`analyze_store` (but the stability curves) as JSON, then each of
    the paper's findings with its verdict."""
    import json

    shown = {k: v for k, v in metrics.items() if k not in ("stability", "findings")}
    verdict = lambda f: "holds" if f["holds"] else "does not hold"  # noqa: E731
    findings = [f"[{verdict(f)}] {f['claim']}: {f['measured']}" for f in metrics["findings"]]
    return [json.dumps(shown, indent=1), *findings]
