"""Semantic similarity on representation stores: neighbours, clusters, label alignment
(paper section 2.5, Figures 5, 6 and 14). Each function reads stores written by ``represent`` and
writes its figures and a JSON file into an output folder; the CLI commands ``neighbours``,
``cluster`` and ``probe`` and the report's sections call them. The measures themselves are in
``analysis/`` (numbers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from denoiserlens.analysis.clusters import kmeans, separation, tsne_embedding
from denoiserlens.analysis.labels import (
    cluster_label_scores,
    knn_accuracy,
    linear_probe_accuracy,
    standardize,
)
from denoiserlens.analysis.neighbours import nearest_neighbours
from denoiserlens.data.open import split_indices
from denoiserlens.errors import UserError
from denoiserlens.figures.analysis import plot_members, plot_neighbours, plot_separation, plot_tsne
from denoiserlens.figures.common import save_figure
from denoiserlens.fileio import atomic_path, write_json
from denoiserlens.represent import Store
from denoiserlens.settings import setting


def pixels(images, rows: np.ndarray | None = None) -> np.ndarray:
    """Images as float32 rows in [0, 1] (N, C*H*W): the pixel baseline."""
    rows = np.arange(len(images)) if rows is None else rows
    return np.stack([images[int(r)] for r in rows]).reshape(len(rows), -1).astype(np.float32) / 255


def _phi(store: Store, sigma: float | None) -> tuple[np.ndarray, float]:
    k = 0 if sigma is None else store._sigma_index(sigma)
    return np.asarray(store.array()[k], np.float32), store.sigmas[k]


def _needs_labels(store: Store, what: str) -> np.ndarray:
    labels = store.labels
    if labels is None:
        raise UserError(f"{store.path}: {what} needs labels, and the store has none")
    return labels


STORE_SIGMA = "phi at this store noise level, of 255 (default: its first)."


@dataclass(frozen=True)
class NeighboursConfig:
    queries: tuple[int, ...] = setting((0,), "Comma list of query rows.", kind="rows", name="query")
    k: int = setting(8, "Neighbours per query.", kind="count")
    sigma: float | None = setting(None, STORE_SIGMA, kind="sigma", scale=255)


def neighbours_figure(
    store_path: str | Path, out_dir: str | Path, cfg: NeighboursConfig = NeighboursConfig()
) -> dict[str, Any]:
    """Figures 5 and 14: each query's k nearest images by cosine similarity in phi and in pixels."""
    queries, k, sigma = list(cfg.queries), cfg.k, cfg.sigma
    store = Store(store_path)
    n = store.meta["data"]["count"]
    bad = [q for q in queries if not 0 <= q < n]
    if bad:
        raise UserError(f"query rows {bad} are outside the store's {n} rows")
    if not 1 <= k < n:
        raise UserError(f"k = {k} needs 1 <= k < {n} (the store's rows)")
    phi, sig = _phi(store, sigma)
    images = store.images()
    x = pixels(images)
    exclude = np.asarray(queries)
    phi_nn, phi_sim = nearest_neighbours(phi[queries], phi, k, exclude=exclude)
    pix_nn, pix_sim = nearest_neighbours(x[queries], x, k, exclude=exclude)
    out = Path(out_dir)
    save_figure(
        out / "fig14_neighbours.png",
        lambda axes: plot_neighbours(axes, images, queries, phi_nn, pix_nn),
        figsize=(1.0 * (k + 1), 2.1 * len(queries)),
        nrows=2 * len(queries),
        ncols=k + 1,
    )
    names, labels = store.names, store.labels
    result = {"store": str(store_path), "sigma": sig, "k": k, "queries": []}
    for i, q in enumerate(queries):
        entry = {
            "row": q,
            "name": names[q],
            "phi": phi_nn[i].tolist(),
            "phi_cosine": phi_sim[i].tolist(),
            "pixels": pix_nn[i].tolist(),
            "pixel_cosine": pix_sim[i].tolist(),
        }
        if labels is not None:
            entry["label"] = int(labels[q])
            entry["same_label_phi"] = float(np.mean(labels[phi_nn[i]] == labels[q]))
            entry["same_label_pixels"] = float(np.mean(labels[pix_nn[i]] == labels[q]))
        result["queries"].append(entry)
    write_json(out / "neighbours.json", result)
    return result


@dataclass(frozen=True)
class ClusterConfig:
    k: int = setting(help="Number of clusters.", kind="count")
    sigma: float | None = setting(None, STORE_SIGMA, kind="sigma", scale=255)
    seed: int = setting(0, "Seed of k-means and of the pairs shown.", kind="int")
    n_init: int = setting(10, "K-means restarts.", kind="count")
    n_pairs: int = setting(200, "Random pairs for separation.", kind="count", name="pairs")
    show: int = 6  # clusters whose members are shown
    members: int = 10  # members shown per cluster
    tsne_clusters: int = 5

    def __post_init__(self) -> None:
        if self.n_init < 1 or self.n_pairs < 1:
            raise UserError("--n-init and --pairs must be >= 1")


def cluster_store(
    store_path: str | Path, out_dir: str | Path, cfg: ClusterConfig
) -> dict[str, Any]:
    """K-means on phi (Figure 6): assignments.npy, centroids.npy, clusters.json, the separation
    scatter for pairs of clusters (and of labelled classes), random members of ``show`` clusters,
    and a t-SNE of ``tsne_clusters`` clusters. NMI, ARI and purity when the store has labels."""
    k, sigma, seed, n_init, n_pairs = cfg.k, cfg.sigma, cfg.seed, cfg.n_init, cfg.n_pairs
    show, members, tsne_clusters = cfg.show, cfg.members, cfg.tsne_clusters
    store = Store(store_path)
    phi, sig = _phi(store, sigma)
    if not 2 <= k <= len(phi):
        raise UserError(f"k = {k} clusters needs 2 <= k <= {len(phi)} (the store's rows)")
    out = Path(out_dir)
    result: dict[str, Any] = {
        "store": str(store_path),
        "sigma": sig,
        "k": k,
        "seed": seed,
        "n_init": n_init,
    }
    km = kmeans(phi, k, seed=seed, n_init=n_init)
    for name, arr in (("assignments.npy", km.assignment), ("centroids.npy", km.centroids)):
        with atomic_path(out / name) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    sizes = np.bincount(km.assignment, minlength=k)
    result.update(method=km.method, inertia=km.inertia, sizes=sizes.tolist())
    sep_clusters = separation(phi, km.assignment, n_pairs, seed)
    result["cluster_separation"] = _brief(sep_clusters)
    sep_classes = None
    labels = store.labels
    if labels is not None:
        result["labels"] = cluster_label_scores(km.assignment, labels)
        sep_classes = separation(phi, labels, n_pairs, seed)
        result["class_separation"] = _brief(sep_classes)
    save_figure(
        out / "fig6_separation.png",
        lambda ax: plot_separation(ax, sep_clusters, sep_classes),
        figsize=(5, 4),
    )
    rng = np.random.default_rng(seed)
    big = np.flatnonzero(sizes >= 2)
    shown = np.sort(rng.choice(big, size=min(show, len(big)), replace=False))
    try:
        images = store.images()
    except UserError as e:
        result["skipped"] = {"members": str(e)}
    else:
        save_figure(
            out / "fig6_members.png",
            lambda axes: plot_members(axes, images, km.assignment, shown, members, seed),
            figsize=(0.9 * members, 1.0 * len(shown) + 0.3),
            nrows=len(shown),
            ncols=members,
        )
    few = shown[:tsne_clusters]
    rows = np.flatnonzero(np.isin(km.assignment, few))
    if len(rows) > 5:
        emb = tsne_embedding(phi[rows], seed)
        save_figure(
            out / "fig6_tsne.png",
            lambda ax: plot_tsne(ax, emb, km.assignment[rows]),
            figsize=(5, 4),
        )
    result["shown_clusters"] = shown.tolist()
    write_json(out / "clusters.json", result)
    return result


def _brief(sep: dict) -> dict[str, Any]:
    return {
        "pairs": len(sep["pairs"]),
        "fraction_separated": sep["fraction_separated"],
        "median_ratio": sep["median_ratio"],
    }


@dataclass(frozen=True)
class ProbeConfig:
    pixels: bool = setting(True, "Add raw pixels.")
    k: int = setting(10, "Neighbours of the kNN vote.", kind="count")
    query_fraction: float = setting(
        0.2, "Fraction of the rows held out as queries (seeded split).", kind="float"
    )
    linear: bool = setting(True, "Add a linear probe.")
    key: str | None = setting(
        None, "Stored array to probe, e.g. E1 or in:E2 (default: phi, the middle block)."
    )
    seed: int = setting(0, "Seed of the split.", kind="int")

    def __post_init__(self) -> None:
        if not 0 < self.query_fraction < 1:
            raise UserError(f"--query-fraction must be in (0, 1), got {self.query_fraction}")


def probe_stores(
    stores: dict[str, str | Path], out_dir: str | Path, cfg: ProbeConfig = ProbeConfig()
) -> dict[str, Any]:
    """kNN (cosine, ``k``) and linear-probe label accuracy of phi from each store, at each of its
    sigmas, and of raw pixels, on one seeded reference/query split of the rows. kNN also on
    standardized dimensions (``knn_standardized``, statistics of the reference rows). ``key``
    probes another stored array instead of phi (a block's spatial means, e.g. ``E1``).

    The stores must hold the same images in the same order (e.g. a trained model and the same
    architecture with random weights, ``represent --random-weights``): the control that shows
    what training adds.
    """
    with_pixels, k, query_fraction, seed = cfg.pixels, cfg.k, cfg.query_fraction, cfg.seed
    linear, key = cfg.linear, cfg.key
    opened = {name: Store(p) for name, p in stores.items()}
    if not opened:
        raise UserError("give at least one store")
    first = next(iter(opened.values()))
    labels = _needs_labels(first, "a label probe")
    for s in opened.values():
        if s.meta["data"]["fingerprint"] != first.meta["data"]["fingerprint"]:
            raise UserError(f"{s.path}: holds other images than {first.path}")
    ref, qry = split_indices(len(labels), query_fraction, seed)
    rows: list[dict[str, Any]] = []

    def score(name: str, sigma: float | None, x: np.ndarray) -> None:
        row = {
            "representation": name,
            "sigma_255": None if sigma is None else round(sigma * 255, 3),
            "dim": int(x.shape[1]),
            "knn": knn_accuracy(x[ref], labels[ref], x[qry], labels[qry], k),
        }
        zref, zqry = standardize(x[ref], x[qry])
        row["knn_standardized"] = knn_accuracy(zref, labels[ref], zqry, labels[qry], k)
        if linear:
            row["linear"] = linear_probe_accuracy(x[ref], labels[ref], x[qry], labels[qry], seed)
        rows.append(row)

    if with_pixels:
        score("pixels", None, pixels(first.images()))
    for name, s in opened.items():
        for i, sig in enumerate(s.sigmas):
            score(name, sig, np.asarray(s.array(key)[i], np.float32))
    result = {
        "k": k,
        "query_fraction": query_fraction,
        "seed": seed,
        "references": len(ref),
        "queries": len(qry),
        "classes": int(len(np.unique(labels))),
        "rows": rows,
        "key": key or first.phi_key,
        "stores": {n: str(p) for n, p in stores.items()},
    }
    write_json(Path(out_dir) / "probe.json", result)
    return result


def format_probe_table(result: dict[str, Any]) -> str:
    """The probe's rows as an aligned text table."""
    lines = [f"{'representation':<24}{'sigma':>8}{'dim':>7}{'kNN':>8}{'kNN z':>8}{'linear':>8}"]
    for r in result["rows"]:
        sigma = "-" if r["sigma_255"] is None else f"{r['sigma_255']:g}"
        linear = f"{r['linear']:.3f}" if "linear" in r else "-"
        lines.append(
            f"{r['representation']:<24}{sigma:>8}{r['dim']:>7}{r['knn']:>8.3f}"
            f"{r['knn_standardized']:>8.3f}{linear:>8}"
        )
    return "\n".join(lines)


def neighbours_summary(result: dict[str, Any]) -> list[str]:
    """One line per query of :func:`neighbours_figure`: its neighbours in phi and in pixels."""
    lines = []
    for q in result["queries"]:
        line = f"row {q['row']} ({q['name']}): phi {q['phi']}, pixels {q['pixels']}"
        if "label" in q:
            line += (
                f"; same label: phi {q['same_label_phi']:.0%}, pixels {q['same_label_pixels']:.0%}"
            )
        lines.append(line)
    return lines


def cluster_summary(r: dict[str, Any]) -> list[str]:
    """The sizes and separations of :func:`cluster_store`, and its alignment with labels."""
    cs, sizes = r["cluster_separation"], r["sizes"]
    lines = [
        f"{r['k']} clusters ({r['method']}), sizes {min(sizes)}-{max(sizes)}; "
        f"{cs['fraction_separated']:.0%} of {cs['pairs']} cluster pairs > 2 sd apart"
    ]
    if "labels" in r:
        lab, cl = r["labels"], r["class_separation"]
        lines.append(
            f"against labels: NMI {lab['nmi']:.3f}, ARI {lab['ari']:.3f}, purity {lab['purity']:.3f}"
            f"; {cl['fraction_separated']:.0%} of {cl['pairs']} class pairs > 2 sd apart"
        )
    return lines


def probe_summary(r: dict[str, Any]) -> list[str]:
    """The split of :func:`probe_stores` and its table."""
    return [
        f"{r['references']} references, {r['queries']} queries, {r['classes']} classes",
        format_probe_table(r),
    ]
