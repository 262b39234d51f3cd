"""Nearest neighbours in phi and in pixels (paper section 2.5, Figures 5 and 14).

Cosine similarity is the inner product of L2-normalized rows. Small sets are searched exactly with
numpy; larger ones with faiss: an exact flat index (IndexFlatIP / IndexFlatL2), and past
``IVF_THRESHOLD`` references an inverted-file index of 8-bit quantized vectors (approximate;
``nprobe`` sets the recall; ``benchmarks/cluster_scale.py`` measures it).
"""

from __future__ import annotations

import numpy as np

NUMPY_THRESHOLD = 20_000  # references: below, numpy; above, faiss
IVF_THRESHOLD = 200_000  # references: above, an IVF index unless method="flat"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows of unit L2 norm (all-zero rows stay zero)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def nearest_neighbours(
    queries: np.ndarray,
    references: np.ndarray,
    k: int,
    metric: str = "cosine",
    method: str = "auto",
    exclude: np.ndarray | None = None,
    nprobe: int = 16,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest references of every query: (indices (Q, k), scores (Q, k)), best first.

    ``metric`` "cosine" scores by cosine similarity (higher is nearer), "euclidean" by squared
    distance (lower is nearer). ``method``: "numpy" (exact), "flat" (faiss, exact), "ivf" (faiss,
    approximate) or "auto" (by the number of references). ``exclude[q]`` is a reference row that
    query q may not return (itself, when the queries are rows of the references), or -1.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"unknown metric {metric!r}; use cosine or euclidean")
    q = np.asarray(queries, np.float32).reshape(len(queries), -1)
    r = np.asarray(references, np.float32).reshape(len(references), -1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, references {r.shape[1]}")
    extra = 0 if exclude is None else 1
    if not 1 <= k <= len(r) - extra:
        raise ValueError(f"k = {k} needs 1 <= k <= {len(r) - extra} (the references)")
    if metric == "cosine":  # queries that are the references (a k-NN graph): one normalized copy
        same = (q.shape, q.strides, q.ctypes.data) == (r.shape, r.strides, r.ctypes.data)
        r = normalize_rows(r)
        q = r if same else normalize_rows(q)
    if method == "auto":
        method = (
            "numpy" if len(r) <= NUMPY_THRESHOLD else ("ivf" if len(r) > IVF_THRESHOLD else "flat")
        )
    search = {"numpy": _numpy_search, "flat": _faiss_flat, "ivf": _faiss_ivf}.get(method)
    if search is None:
        raise ValueError(f"unknown method {method!r}; use auto, numpy, flat or ivf")
    kwargs = {"nprobe": nprobe, "seed": seed} if method == "ivf" else {}
    idx, score = search(q, r, k + extra, metric, **kwargs)
    if exclude is None:
        return idx, score
    return _drop(idx, score, np.asarray(exclude), k)


def _drop(idx: np.ndarray, score: np.ndarray, exclude: np.ndarray, k: int):
    """Remove each query's excluded row (or its last neighbour if the row is not among them)."""
    keep = idx != exclude[:, None]
    keep[keep.all(1), -1] = False  # excluded row not found: drop the farthest instead
    return idx[keep].reshape(len(idx), k), score[keep].reshape(len(idx), k)


def _numpy_search(q, r, k, metric, block: int = 1024):
    idx = np.empty((len(q), k), np.int64)
    score = np.empty((len(q), k), np.float32)
    r_sq = np.square(r).sum(1)
    for b in range(0, len(q), block):
        s = q[b : b + block] @ r.T
        if metric == "euclidean":  # squared distances, smaller is nearer: sort their negatives
            s = 2 * s - r_sq - np.square(q[b : b + block]).sum(1, keepdims=True)
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        idx[b : b + block] = np.take_along_axis(part, order, 1)
        score[b : b + block] = np.take_along_axis(s, idx[b : b + block], 1)
    return idx, (np.maximum(-score, 0) if metric == "euclidean" else score)


def _faiss_flat(q, r, k, metric):
    import faiss

    index = faiss.IndexFlatIP(r.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(r.shape[1])
    index.add(np.ascontiguousarray(r))
    score, idx = index.search(np.ascontiguousarray(q), k)
    return idx.astype(np.int64), score


def _faiss_ivf(q, r, k, metric, nprobe: int = 16, seed: int = 0):
    """An IVF index with about 4 sqrt(N) lists (trained on at most 64 points per list) holding
    8-bit scalar-quantized vectors; the scores it returns are of the quantized vectors."""
    import faiss

    d, n = r.shape[1], len(r)
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    if metric == "cosine":
        quantizer, faiss_metric = faiss.IndexFlatIP(d), faiss.METRIC_INNER_PRODUCT
    else:
        quantizer, faiss_metric = faiss.IndexFlatL2(d), faiss.METRIC_L2
    # 8-bit scalar quantization: the scan is memory-bound, and a quarter of the bytes is ~4x faster
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss_metric
    )
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)
    index.train(np.ascontiguousarray(r[np.sort(sample)]))
    index.add(np.ascontiguousarray(r))
    index.nprobe = nprobe
    score, idx = index.search(np.ascontiguousarray(q), k)
    return idx.astype(np.int64), score
