"""Statistics that channel selectivity predicts (paper Appendix B, Figure 13).

For each channel i of the middle block: the kurtosis of the marginal of phi[i] over images
(selective channels are heavy-tailed: zero for most images, large for a few), the spatial sparsity
of its activation maps, and the number of principal components its maps need to explain 90% of
their variance across images (selective channels need fewer).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from denoiserlens.analysis.selectivity import channel_participation
from denoiserlens.analysis.sparsity import participation_ratio


def marginal_kurtosis(phi: np.ndarray) -> np.ndarray:
    """Excess (Fisher) kurtosis of phi[:, i] across images, shape (d,); NaN for dead channels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k = stats.kurtosis(np.asarray(phi, np.float64), axis=0, fisher=True, bias=True)
    return np.where(np.asarray(phi).std(0) > 0, k, np.nan)


def spatial_sparsity(maps: np.ndarray) -> np.ndarray:
    """Mean over images of the spatial participation ratio of each channel's map, (d,).

    ``maps`` is (N, d, h, w); images on which the channel is silent are left out (NaN if always).
    """
    n, d = maps.shape[:2]
    pr = participation_ratio(np.asarray(maps, np.float64).reshape(n, d, -1))  # (N, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: silent channels
        return np.nanmean(pr, axis=0)


def pca_dimension(maps: np.ndarray, fraction: float = 0.9) -> np.ndarray:
    """Per channel, the number of principal components of its maps across images (N, h*w) that
    explain ``fraction`` of their variance, shape (d,); 0 for a channel with no variance."""
    n, d = maps.shape[:2]
    flat = np.asarray(maps, np.float64).reshape(n, d, -1)
    out = np.zeros(d, dtype=np.int64)
    for i in range(d):
        a = flat[:, i] - flat[:, i].mean(0)
        s2 = np.linalg.svd(a, compute_uv=False) ** 2
        if s2.sum() > 0:
            out[i] = int(np.searchsorted(np.cumsum(s2) / s2.sum(), fraction - 1e-12) + 1)
    return out


def channel_statistics(phi: np.ndarray, maps: np.ndarray, fraction: float = 0.9) -> dict:
    """Figure 13's quantities per channel, and their Spearman correlation with the channel's PR.

    ``phi`` (N, d) gives the selectivity (channel PR across images) and kurtosis; ``maps``
    (N', d, h, w), on the same or a subset of images, the spatial sparsity and PCA dimension.
    """
    pr = channel_participation(phi)
    out = {
        "channel_pr": pr,
        "kurtosis": marginal_kurtosis(phi),
        "spatial_pr": spatial_sparsity(maps),
        "pca_dim": pca_dimension(maps, fraction),
    }
    corr = {}
    for key in ("kurtosis", "spatial_pr", "pca_dim"):
        ok = np.isfinite(pr) & np.isfinite(out[key].astype(np.float64))
        rho = stats.spearmanr(pr[ok], out[key][ok]).statistic if ok.sum() > 2 else np.nan
        corr[key] = float(rho)
    out["spearman_with_channel_pr"] = corr
    return out
