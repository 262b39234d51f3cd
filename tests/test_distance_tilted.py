"""Eq. 4 with tilted conditionals p(x | phi_i) ~ p(x) exp(-||phi(x) - phi_i||^2 / 2 tau^2): known
answers for a Gaussian prior and a linear phi, where every term has a closed form."""

import numpy as np
import pytest
import torch

from denoiserlens.represent.summaries import draw_noise
from denoiserlens.sampling.distance import (
    fixed_noise_phi,
    gaussian_kl,
    ratio_spread,
    tilted_distance_study,
    tilted_gap_forms,
)
from denoiserlens.sampling.gaussian import GaussianPrior

TAU = 0.05


def _linear_setup(seed: int = 0):
    prior = GaussianPrior.random((1, 4, 4), 0.002, 0.05, seed=seed)
    a = torch.randn(3, 16, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    a = a / 4  # phi components of the size of the images' spatial means

    def phi_fn(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double() @ a.T

    def tilted(phi_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tilted conditional of a Gaussian prior and a linear phi: N(m_i, Sigma)."""
        inv = torch.linalg.inv(prior.cov)
        cov = torch.linalg.inv(inv + a.T @ a / TAU**2)
        return cov @ (inv @ prior.mean + a.T @ phi_i / TAU**2), cov

    return prior, a, phi_fn, tilted


def test_gap_form_is_the_kalman_update_of_the_gaussian_posterior():
    prior, a, phi_fn, tilted = _linear_setup()
    sigma = 0.1
    y = prior.draw(2, torch.Generator().manual_seed(1)) + sigma * torch.randn(
        2, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    g = tilted_gap_forms(prior.denoise, phi_fn, y, sigma, [TAU, 2 * TAU])[:, 0]
    # the exact conditional posterior means given y, under N(m_i, Sigma), differ by W dphi with
    # W = S A^T (A S A^T + tau^2)^-1, S = (C^-1 + I / sigma^2)^-1: the same for every y
    s = torch.linalg.inv(
        torch.linalg.inv(prior.cov) + torch.eye(16, dtype=torch.float64) / sigma**2
    )
    w = s @ a.T @ torch.linalg.inv(a @ s @ a.T + TAU**2 * torch.eye(3, dtype=torch.float64))
    assert torch.allclose(g[0], w.T @ w, rtol=1e-6) and torch.allclose(g[1], w.T @ w, rtol=1e-6)
    # and that difference is the difference of the two exact conditional denoisers
    phi1, phi2 = torch.tensor([0.3, -0.1, 0.2]).double(), torch.tensor([0.1, 0.2, 0.0]).double()
    (m1, c), (m2, _) = tilted(phi1), tilted(phi2)
    cond = [GaussianPrior(m, c, (1, 4, 4)).denoise(y[:1], sigma).flatten() for m in (m1, m2)]
    dphi = phi1 - phi2
    gap = float((cond[0] - cond[1]).pow(2).sum())
    assert float(dphi @ g[0] @ dphi) == pytest.approx(gap, rel=1e-6)


def test_tilted_eq4_matches_the_symmetrized_kl_and_the_closed_form():
    prior, a, phi_fn, tilted = _linear_setup()
    gen = torch.Generator().manual_seed(0)
    phis = 0.1 * torch.randn(3, 3, generator=gen, dtype=torch.float64)
    samples = torch.cat([GaussianPrior(*tilted(p), (1, 4, 4)).draw(2, gen) for p in phis])
    means = torch.stack([a @ tilted(p)[0] for p in phis]).repeat_interleave(2, 0)
    grid = torch.logspace(-4, 2, 90)
    study = tilted_distance_study(
        prior.denoise, phi_fn, phis, samples, 2, grid, (TAU, 3 * TAU), 0, None, means
    )
    p_cov = a @ prior.cov @ a.T
    shrink = p_cov @ torch.linalg.inv(p_cov + TAU**2 * torch.eye(3, dtype=torch.float64))
    for (i, j), d2, d2_id in zip(
        study["pairs"], study["d_sq"], study["d_sq_closed_form"], strict=True
    ):
        (mi, c), (mj, _) = tilted(phis[i]), tilted(phis[j])
        kl = gaussian_kl(mi, c, mj, c) + gaussian_kl(mj, c, mi, c)
        dphi = phis[i] - phis[j]
        closed = float(dphi @ shrink @ dphi) / TAU**2  # dphi^T P (P + tau^2)^-1 dphi / tau^2
        assert kl == pytest.approx(closed, rel=1e-6)
        assert d2_id == pytest.approx(closed, rel=1e-6)  # (E_i phi - E_j phi) . dphi / tau^2
        assert d2 == pytest.approx(closed, rel=2e-3)  # Eq. 4 by the trapezoid in log sigma
    # the grid reaches both asymptotes: slopes 2 and -2, the tails a small part of d^2
    assert study["end_slopes"] == pytest.approx([2, -2], abs=0.05) and study["tail_share"] < 0.01
    # a wider tilt from the same Jacobians: d^2 = dphi^T P (P + 9 tau^2)^-1 dphi / (9 tau^2)
    wide = study["by_tau"][1]
    shrink3 = p_cov @ torch.linalg.inv(p_cov + 9 * TAU**2 * torch.eye(3, dtype=torch.float64))
    for (i, j), d2 in zip(study["pairs"], wide["d_sq"], strict=True):
        dphi = phis[i] - phis[j]
        assert d2 == pytest.approx(float(dphi @ shrink3 @ dphi) / (9 * TAU**2), rel=2e-3)
    assert study["by_tau"][0]["d_sq"] == study["d_sq"] and wide["tau"] == 3 * TAU


def test_fixed_noise_phi_is_deterministic_and_averages_the_draws():
    calls = []

    def phi_fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.flatten(1)[:, :2] ** 2

    phi = fixed_noise_phi(phi_fn, (1, 2, 2), 0.5, 4, seed=3)
    x = torch.zeros(2, 1, 2, 2)
    assert torch.equal(phi(x), phi(x)) and calls == [8, 8]
    # the mean over the 4 draws of (0.5 z_k)^2, the draws of a store's row 0 for seed 3
    z = draw_noise((1, 2, 2), 3, [0], range(4)).flatten(1)[:, :2]
    assert torch.allclose(phi(x), (0.25 * z**2).mean(0).expand(2, 2))
    assert not torch.equal(phi(x), fixed_noise_phi(phi_fn, (1, 2, 2), 0.5, 4, seed=4)(x))


def test_ratio_spread_brackets_b_over_a():
    ratio = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    s = ratio_spread(np.ones(5), ratio, seed=0)
    assert s["ratio_median"] == 2.0 and s["ratio_q1"] == 1.5 and s["ratio_q3"] == 2.5
    assert 1.0 <= s["bootstrap_5"] <= s["bootstrap_median"] <= s["bootstrap_95"] <= 3.0
    assert s["bootstrap_95"] == 3.0  # most resamples of 5 pairs keep both extremes


def test_tilted_eq4_tails_stand_in_for_the_integral_beyond_the_grid():
    prior, a, phi_fn, tilted = _linear_setup()
    phis = 0.1 * torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = prior.draw(3, torch.Generator().manual_seed(1))  # any: the integrand is the same
    whole = tilted_distance_study(
        prior.denoise, phi_fn, phis, samples, 1, torch.logspace(-4, 2, 90), TAU
    )
    # the grid cut to the integrand's bulk (its two ends at 16% and 3% of the peak): with the
    # asymptotic tails d^2 stays within 2%, the plain trapezoid loses 6%
    cut = tilted_distance_study(
        prior.denoise, phi_fn, phis, samples, 1, torch.logspace(-2, 0, 20), TAU
    )
    lost = []
    for full, part, integrand in zip(whole["d_sq"], cut["d_sq"], cut["integrands"], strict=True):
        assert part == pytest.approx(full, rel=0.02)
        plain = np.trapezoid(integrand, np.log(cut["sigmas"]))
        lost.append(1 - plain / full)
    assert min(lost) > 0.04 and cut["tail_share"] > 0.04


def test_tilted_eq4_goes_on_above_the_grid_with_the_gaussian_posterior():
    prior, a, phi_fn, tilted = _linear_setup()
    phis = 0.1 * torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = prior.draw(3, torch.Generator().manual_seed(1))
    whole = tilted_distance_study(
        prior.denoise, phi_fn, phis, samples, 1, torch.logspace(-4, 2, 90), TAU
    )
    # a grid that stops at sigma 0.03, near the peak: the sigma^-2 tail alone misses most of the
    # integral above; the Gaussian posterior of the prior's mean and covariance gives it back
    grid = torch.logspace(-4, -1.5, 40)
    cut = tilted_distance_study(prior.denoise, phi_fn, phis, samples, 1, grid, TAU)
    shape = prior.mean.view(1, 4, 4)
    gauss = tilted_distance_study(
        prior.denoise, phi_fn, phis, samples, 1, grid, TAU, prior=(shape, prior.cov)
    )
    for full, part, joined in zip(whole["d_sq"], cut["d_sq"], gauss["d_sq"], strict=True):
        assert part < 0.8 * full and joined == pytest.approx(full, rel=0.01)
    assert gauss["gaussian_match"] == pytest.approx(1, rel=1e-6) and gauss["gaussian_share"] > 0.3


def test_a_jacobian_that_is_not_a_covariance_is_clamped_not_inverted():
    # a "denoiser" with dx_hat/dy = -0.5 I: S = -0.5 sigma^2 I, J S J^T negative definite; its
    # eigenvalues are set to 0, so M = tau^2 I and G = J S^2 J^T / tau^4 (no near-singular M)
    a = torch.randn(3, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 4

    def phi_fn(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double() @ a.T

    sigma = 0.2
    y = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = tilted_gap_forms(lambda v, s: -0.5 * v, phi_fn, y, sigma, [TAU])[0, 0]
    expected = (0.5 * sigma**2) ** 2 * (a @ a.T) / TAU**4
    assert torch.allclose(g, expected, rtol=1e-9)
