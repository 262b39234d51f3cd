"""Emergent clusters of phi and their separation (paper section 2.5, Figure 6).

K-means on phi (scikit-learn's KMeans with explicit ``n_init`` and seed, as the authors used; faiss
past ``FAISS_THRESHOLD`` rows * clusters). Separation of two groups a, b (Figure 6 top): the distance
between their centroids, ||c_a - c_b||, against the square root of the average of the two groups'
variances along the line joining the centroids; a pair is "separated" when the ratio exceeds 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAISS_THRESHOLD = 20_000_000  # rows * clusters: above, faiss.Kmeans (multi-threaded, sampled)


@dataclass
class Clustering:
    """K-means result: ``assignment`` (N,), ``centroids`` (k, d), ``inertia`` (sum of squares)."""

    assignment: np.ndarray
    centroids: np.ndarray
    inertia: float
    method: str


def kmeans(
    x: np.ndarray,
    k: int,
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
    method: str = "auto",
) -> Clustering:
    """K-means with ``k`` clusters. ``method``: "sklearn" (KMeans, k-means++, ``n_init`` runs),
    "faiss" (faiss.Kmeans, ``n_init`` runs, at most 256 sampled points per centroid to train,
    then every row assigned), or "auto" (sklearn below ``FAISS_THRESHOLD`` rows * k)."""
    x = np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))
    if not 2 <= k <= len(x):
        raise ValueError(f"k = {k} clusters needs 2 <= k <= {len(x)} (the rows)")
    if method == "auto":
        method = "sklearn" if len(x) * k <= FAISS_THRESHOLD else "faiss"
    if method == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(x)
        return Clustering(
            km.labels_.astype(np.int64),
            km.cluster_centers_.astype(np.float32),
            float(km.inertia_),
            "sklearn",
        )
    if method == "faiss":
        import faiss

        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=min(max_iter, 25),
            nredo=n_init,
            seed=seed,
            max_points_per_centroid=256,
            verbose=False,
        )
        km.train(x)
        dist, assignment = km.index.search(x, 1)
        return Clustering(
            assignment[:, 0].astype(np.int64), km.centroids.copy(), float(dist.sum()), "faiss"
        )
    raise ValueError(f"unknown method {method!r}; use auto, sklearn or faiss")


def pair_separation(x: np.ndarray, groups: np.ndarray, a: int, b: int) -> tuple[float, float]:
    """(centroid distance, sqrt of the mean of the two groups' variances along the centroid line)."""
    xa, xb = x[groups == a], x[groups == b]
    ca, cb = xa.mean(0), xb.mean(0)
    dist = float(np.linalg.norm(ca - cb))
    if dist == 0:
        return 0.0, float("nan")
    u = (ca - cb) / dist
    spread = np.sqrt(0.5 * (np.var(xa @ u) + np.var(xb @ u)))
    return dist, float(spread)


def separation(
    x: np.ndarray, groups: np.ndarray, n_pairs: int = 200, seed: int = 0, min_size: int = 2
) -> dict:
    """Figure 6 (top) for random pairs of groups (clusters or labelled classes) of ``x`` (N, d).

    Returns the pairs, their centroid distances and spreads, the ratios distance / spread, and the
    fraction of pairs more than 2 standard deviations apart. Groups smaller than ``min_size``
    are left out; all pairs are used when there are fewer than ``n_pairs``.
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    ids, counts = np.unique(groups, return_counts=True)
    ids = ids[counts >= min_size]
    if len(ids) < 2:
        raise ValueError("separation needs at least two groups with two members")
    all_pairs = [(int(a), int(b)) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    rng = np.random.default_rng(seed)
    if len(all_pairs) > n_pairs:
        all_pairs = [all_pairs[i] for i in np.sort(rng.choice(len(all_pairs), n_pairs, False))]
    dist, spread = np.array([pair_separation(x, groups, a, b) for a, b in all_pairs]).T
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = dist / spread
    return {
        "pairs": all_pairs,
        "distance": dist,
        "spread": spread,
        "ratio": ratio,
        "fraction_separated": float(np.mean(ratio > 2)),
        "median_ratio": float(np.nanmedian(ratio)),
    }


def tsne_embedding(x: np.ndarray, seed: int = 0, pca_dims: int = 50) -> np.ndarray:
    """2-D t-SNE of the rows of ``x`` after PCA to ``pca_dims`` dimensions (Figure 6)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if x.shape[1] > pca_dims and len(x) > pca_dims:
        x = PCA(pca_dims, random_state=seed).fit_transform(x)
    perplexity = min(30.0, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
