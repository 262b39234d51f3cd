"""How representations align with human labels (paper section 2.5; issue 4's controls).

Clusters against labels: normalized mutual information, adjusted Rand index, purity. Labels from a
representation: k-nearest-neighbour vote (cosine) and a linear probe (multinomial logistic
regression on standardized features), each trained on reference rows and scored on query rows.
"""

from __future__ import annotations

import numpy as np

from denoiserlens.analysis.neighbours import nearest_neighbours


def purity(assignment: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose label is the most frequent label of their cluster."""
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(labels, assignment)
    return float(table.max(axis=0).sum() / table.sum())


def cluster_label_scores(assignment: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI (arithmetic normalization), ARI and purity of a clustering against labels."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "nmi": float(normalized_mutual_info_score(labels, assignment)),
        "ari": float(adjusted_rand_score(labels, assignment)),
        "purity": purity(assignment, labels),
    }


def knn_accuracy(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    k: int = 10,
    metric: str = "cosine",
) -> float:
    """Accuracy of the majority label among each query's k nearest references (ties: the label
    of the nearest of the tied neighbours)."""
    idx, _ = nearest_neighbours(query, reference, k, metric=metric)
    votes = np.asarray(reference_labels)[idx]  # (Q, k), nearest first
    predicted = np.empty(len(votes), dtype=votes.dtype)
    for i, v in enumerate(votes):
        values, counts = np.unique(v, return_counts=True)
        tied = values[counts == counts.max()]
        predicted[i] = v[np.isin(v, tied)][0]  # the nearest neighbour among the tied labels
    return float(np.mean(predicted == np.asarray(query_labels)))


def standardize(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each dimension centred and scaled by the reference rows' mean and standard deviation
    (constant dimensions only centred): arrays in the order given, reference first. Cosine
    similarity then weighs every channel alike instead of the few with the largest means."""
    ref = np.asarray(reference, np.float32)
    mean, std = ref.mean(0), ref.std(0)
    std[std == 0] = 1
    return [(np.asarray(a, np.float32) - mean) / std for a in (ref, *others)]


def linear_probe_accuracy(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    seed: int = 0,
    max_iter: int = 2000,
    C: float = 1.0,
) -> float:
    """Accuracy of a multinomial logistic regression (L2, ``C``) on standardized features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat = lambda a: np.asarray(a, np.float32).reshape(len(a), -1)  # noqa: E731
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    )
    probe.fit(flat(reference), reference_labels)
    return float(probe.score(flat(query), query_labels))
