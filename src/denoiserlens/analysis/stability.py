"""Stability of the block summaries across noise levels (paper section 2.3, Figure 2)."""

from __future__ import annotations

import numpy as np


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, d) arrays, shape (N,)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def stability_curves(
    arrays: dict[str, np.ndarray], sigmas: list[float], reference: float = 0.5
) -> dict[str, np.ndarray]:
    """For each block: mean over images of cos(a_bar(x_sigma_ref), a_bar(x_sigma)) for every sigma.

    ``arrays`` maps block keys to (n_sigmas, N, d) summaries computed at ``sigmas`` (one of which
    must be the reference, 0.5 in the paper). Returns {key: (n_sigmas,) mean cosine}.
    """
    k_ref = int(np.argmin(np.abs(np.asarray(sigmas) - reference)))
    if abs(sigmas[k_ref] - reference) > 1e-6:
        raise ValueError(f"the reference sigma {reference} is not among {sigmas}")
    return {
        key: np.array([np.nanmean(cosine_similarity(a[k_ref], a[k])) for k in range(len(sigmas))])
        for key, a in arrays.items()
    }
