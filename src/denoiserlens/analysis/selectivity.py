"""Channel selectivity (paper section 2.4, Figures 3 and 4).

A channel's selectivity is the participation ratio of its activation across the data set: a
channel active for a few images (small PR) is selective; one active for most (PR near 1) is common.
"""

from __future__ import annotations

import numpy as np

from denoiserlens.analysis.findings import bimodality_coefficient
from denoiserlens.analysis.sparsity import participation_ratio


def channel_participation(phi: np.ndarray) -> np.ndarray:
    """PR of each channel across the N images of ``phi`` (N, d): shape (d,)."""
    return participation_ratio(phi, axis=0)


def selectivity_summary(phi: np.ndarray, low: float = 0.3, high: float = 0.6) -> dict[str, float]:
    """Fractions of selective (PR < low) and common (PR > high) channels, and the median PR.

    Dead channels (zero on every image) are counted apart.
    """
    pr = channel_participation(phi)
    alive = np.isfinite(pr)
    return {
        "channels": int(pr.size),
        "dead": int((~alive).sum()),
        "fraction_below": float((pr[alive] < low).mean()) if alive.any() else float("nan"),
        "fraction_above": float((pr[alive] > high).mean()) if alive.any() else float("nan"),
        "median": float(np.median(pr[alive])) if alive.any() else float("nan"),
        "bimodality": bimodality_coefficient(pr[alive]),
        "low": low,
        "high": high,
    }


def top_images(phi: np.ndarray, channel: int, k: int = 9) -> np.ndarray:
    """Rows of the k images that most activate ``channel`` (Figure 3), strongest first."""
    return np.argsort(-phi[:, channel], kind="stable")[:k]


def most_selective_channels(phi: np.ndarray, n: int = 8) -> np.ndarray:
    """The n live channels with the smallest participation ratio, most selective first."""
    pr = channel_participation(phi)
    order = np.argsort(np.where(np.isfinite(pr), pr, np.inf), kind="stable")
    return order[: min(n, int(np.isfinite(pr).sum()))]


def specialized_channels(phi: np.ndarray, row: int, n: int = 4, max_pr: float = 0.3) -> np.ndarray:
    """For one image (Figure 4): its most active channels among the selective ones (PR < max_pr),
    ranked by activation relative to the channel's mean over the data set."""
    pr = channel_participation(phi)
    mean = phi.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        active = np.isfinite(pr) & (pr < max_pr) & (mean > 0) & (phi[row] > 0)
        score = np.where(active, phi[row] / mean, -np.inf)
    order = np.argsort(-score, kind="stable")
    return order[np.isfinite(score[order])][:n]
