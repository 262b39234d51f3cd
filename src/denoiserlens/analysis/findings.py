"""Does a model show what paper section 2 reports? Each claim, the number measured, and a verdict.

The claims (Kadkhodaie, Mallat & Simoncelli, section 2 and Appendix B):

1. Figure 1: the middle block and the decoder blocks sparsify: the median participation ratio of
   their output summaries is below that of their inputs.
2. Section 2.4: phi is sparse: its active channels span a subspace of dimension about 0.2d to
   0.3d (the median image PR of the middle block's output is at most 0.3; where it lies relative
   to the paper's 0.2-0.3 is reported).
3. Figure 2: a_bar is most stable across noise in the middle block (the highest mean cosine to the
   reference noise level among all blocks).
4. Figure 3: channel selectivity is bimodal (Sarle's bimodality coefficient of the channel PRs
   above 5/9, the value of a uniform distribution, with at least 10% of the channels below 0.3
   and 10% above 0.6).
5. Figure 13: selective channels are heavy-tailed, spatially sparse and need few principal
   components (channel PR correlates negatively with kurtosis, positively with the spatial PR of
   the maps and with the number of components).

``paper_findings`` reads the ``metrics`` that ``analyze_store`` computes; a claim whose inputs
are missing is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

UNIFORM_BIMODALITY = 5 / 9  # Sarle's coefficient of a uniform distribution


def bimodality_coefficient(values: np.ndarray) -> float:
    """Sarle's bimodality coefficient (skew^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3))),
    with the sample (bias-corrected) skewness and kurtosis; above 5/9 suggests two modes."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 4 or v.std() == 0:
        return float("nan")
    g = stats.skew(v, bias=False)
    k = stats.kurtosis(v, fisher=True, bias=False)
    return float((g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def _claim(name: str, paper: str, measured: str, holds: bool) -> dict[str, Any]:
    return {"claim": name, "paper": paper, "measured": measured, "holds": bool(holds)}


def paper_findings(metrics: dict[str, Any], middle: str = "M") -> list[dict[str, Any]]:
    """The claims above that ``metrics`` (from ``analyze_store``) can test, with verdicts."""
    out = []
    sparsity = metrics.get("sparsity")
    if sparsity:
        pairs = {
            b: (sparsity[f"{b}.in"]["median"], sparsity[b]["median"])
            for b in sparsity
            if not b.endswith(".in") and f"{b}.in" in sparsity
        }
        late = [b for b in pairs if b == middle or b.startswith("D")]
        if late:
            text = ", ".join(f"{b} {pairs[b][0]:.2f} -> {pairs[b][1]:.2f}" for b in pairs)
            out.append(
                _claim(
                    "middle and decoder blocks sparsify (Fig. 1)",
                    "median PR of outputs below that of inputs in M and D blocks",
                    f"median PR input -> output: {text}",
                    all(pairs[b][1] < pairs[b][0] for b in late),
                )
            )
        if middle in sparsity:
            m = sparsity[middle]["median"]
            where = (
                "within the paper's 0.2-0.3"
                if 0.2 <= m <= 0.3
                else "sparser than the paper's 0.2-0.3"
                if m < 0.2
                else "denser than 0.3"
            )
            out.append(
                _claim(
                    "phi is sparse: its active channels span about 0.2d-0.3d (section 2.4)",
                    "median image PR of phi at most 0.3 (the paper measures 0.2-0.3)",
                    f"median PR {m:.3f} (quartiles {sparsity[middle]['q1']:.3f}-"
                    f"{sparsity[middle]['q3']:.3f}), {where}",
                    m <= 0.3,
                )
            )
    stability = metrics.get("stability")
    if stability:
        sig = np.asarray(stability["sigmas"])
        others = np.abs(sig - stability["reference"]) > 1e-6
        means = {
            b: float(np.nanmean(np.asarray(c, np.float64)[others]))
            for b, c in stability["cosine"].items()
        }
        if middle in means and len(means) > 1:
            ranked = sorted(means, key=means.get, reverse=True)
            out.append(
                _claim(
                    "a_bar is most stable across noise in the middle block (Fig. 2)",
                    "M has the highest mean cosine to the reference noise level",
                    "mean cosine: " + ", ".join(f"{b} {means[b]:.3f}" for b in ranked),
                    ranked[0] == middle,
                )
            )
    sel = metrics.get("selectivity")
    if sel and "bimodality" in sel:
        bc, lo, hi = sel["bimodality"], sel["fraction_below"], sel["fraction_above"]
        out.append(
            _claim(
                "channel selectivity is bimodal (Fig. 3)",
                f"bimodality coefficient > {UNIFORM_BIMODALITY:.3f}, >= 10% of channels "
                "with PR < 0.3 and >= 10% with PR > 0.6",
                f"coefficient {bc:.3f}; {lo:.0%} of channels below 0.3, {hi:.0%} above 0.6",
                bc > UNIFORM_BIMODALITY and lo >= 0.1 and hi >= 0.1,
            )
        )
    cs = metrics.get("channel_statistics")
    if cs:
        rho = cs["spearman_with_channel_pr"]
        out.append(
            _claim(
                "selective channels are heavy-tailed, spatially sparse, low-dimensional (Fig. 13)",
                "Spearman rho of channel PR with kurtosis < 0, with spatial PR > 0, with PCA "
                "dimension > 0",
                f"rho: kurtosis {rho['kurtosis']:+.2f}, spatial PR {rho['spatial_pr']:+.2f}, "
                f"PCA dimension {rho['pca_dim']:+.2f}",
                rho["kurtosis"] < 0 and rho["spatial_pr"] > 0 and rho["pca_dim"] > 0,
            )
        )
    return out
