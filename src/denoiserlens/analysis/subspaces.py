"""phi lies on a union of low-dimensional subspaces (paper section 2.4, Figure 5).

Each image activates many common channels and a few selective ones, so images of one kind span a
subspace of the common channels plus their own selective channels.
"""

from __future__ import annotations

import numpy as np

from denoiserlens.analysis.selectivity import channel_participation


def active_dimension(phi: np.ndarray, fraction: float = 0.99) -> np.ndarray:
    """Per image, the number of channels that carry ``fraction`` of its squared norm, (N,):
    the dimension of the coordinate subspace its active channels span."""
    sq = np.sort(np.square(np.asarray(phi, np.float64)), axis=1)[:, ::-1]
    total = sq.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = np.where(total > 0, np.cumsum(sq, axis=1) / total, 1.0)
    return (cum < fraction - 1e-12).sum(1) + 1


def subspace_channels(
    phi: np.ndarray, group_a: np.ndarray, group_b: np.ndarray, low: float = 0.3, high: float = 0.6
) -> dict[str, int]:
    """Figure 5's three axes for two groups of rows: the common channel (PR > high) most active
    on both groups, and for each group the selective channel (PR < low) most specific to it
    (largest ratio of its mean activation on the group to that on the other group)."""
    pr = channel_participation(phi)
    a, b = phi[group_a].mean(0), phi[group_b].mean(0)
    live = np.isfinite(pr)
    common = np.where(live & (pr > high), np.minimum(a, b), -np.inf)
    selective = live & (pr < low)
    eps = 1e-12 * max(float(phi.max()), 1e-30)
    spec_a = np.where(selective, (a + eps) / (b + eps), -np.inf)
    spec_b = np.where(selective, (b + eps) / (a + eps), -np.inf)
    if not np.isfinite(common).any() or not selective.any():
        raise ValueError("need at least one common and one selective channel")
    return {
        "common": int(np.argmax(common)),
        "selective_a": int(np.argmax(spec_a)),
        "selective_b": int(np.argmax(spec_b)),
    }
