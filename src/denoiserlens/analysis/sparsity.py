"""Channel sparsity of the block summaries (paper section 2.2, Figure 1)."""

from __future__ import annotations

import numpy as np


def participation_ratio(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Normalized participation ratio PR(a) = ||a||_1^2 / (d ||a||_2^2) along ``axis`` (section 2.2).

    PR lies in (0, 1]: 1/d for a one-hot vector, 1 for a constant one. All-zero vectors give NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    d = a.shape[axis]
    l1 = np.abs(a).sum(axis=axis)
    l2 = np.square(a).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(l2 > 0, l1**2 / (d * l2), np.nan)


def block_sparsity(
    summaries: dict[str, np.ndarray], exclude: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """Per-image PR of every stored summary ({key: (N, d)}), summarised by its quartiles.

    Keys are "B" (outputs of block B) and "B.in" (its inputs), as in a representation store.
    Left out, as in Figure 1: the keys in ``exclude`` (the network's input and output, which are
    images) and summaries with a single channel (PR 1 by definition).
    """
    out = {}
    for key, a in summaries.items():
        if key in exclude or a.shape[-1] < 2:
            continue
        pr = participation_ratio(a)
        pr = pr[np.isfinite(pr)]
        q1, med, q3 = np.percentile(pr, [25, 50, 75]) if pr.size else (np.nan,) * 3
        out[key] = {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(pr.size)}
    return out
