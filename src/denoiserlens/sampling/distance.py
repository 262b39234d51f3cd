"""Distance between the conditional densities that two representations induce (paper Eq. 4,
Figure 8 right, Figure 21).

    d^2(p1, p2) = integral_0^inf (E_p1 + E_p2)[ ||grad log p1_sigma - grad log p2_sigma||^2 ] sigma dsigma

with p_i = p_sigma(x_sigma | phi_i). Each term is KL(p_i || p_j) (Verdu 2010, Lyu 2012), so d^2 is
the symmetrized KL divergence. The estimator:

- scores from posterior means (Eq. 2): grad log p_i,sigma(y) = (x_hat_i(y, sigma) - y) / sigma^2, so
  the score difference is (x_hat_1 - x_hat_2) / sigma^2 and y cancels;
- the conditional denoiser x_hat_i(y, sigma) of a model is its guided denoiser: the guidance step
  (Algorithm 2) towards phi_i at that sigma, then the blind denoiser (``guided_denoiser``);
- E_p_i by Monte Carlo: samples of p(x | phi_i) (e.g. from ``reconstruct``) plus sigma z;
- the integral on a log-spaced sigma grid by the trapezoid rule in log sigma:
  sigma dsigma ||dx_hat||^2 / sigma^4 = ||dx_hat||^2 / sigma^2 dlog(sigma).
  The grid must cover where the integrand lives (it vanishes at large sigma, where both
  conditionals look alike, and at small sigma the samples of p_i are resolved).

Inequality (3): A ||phi1 - phi2||^2 <= d^2 <= B ||phi1 - phi2||^2 for all pairs; ``embedding_constants``
returns the tightest A and B over the measured pairs and B/A (the paper reports 2.9).

The lower end of the grid needs care. The guidance moves y by a finite amount at every sigma, so
the two guided denoisers differ by an amount that does not shrink with sigma, and the integrand
||dx_hat||^2 / sigma^2 grows as 1 / sigma^2 below the noise levels the matching resolves: on the
bundled photo model the lowest level (2.55/255) carries nearly all of d^2 and B/A is 25; from
9/255 up it is 3.4 (BENCHMARKS.md). ``distance_study`` therefore also reports the constants for
the integral cut at each grid level (``by_lower_limit``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from denoiserlens.sampling.reconstruct import (
    GuidanceConfig,
    ImageTargets,
    PhiFn,
    guidance_step,
    middle_means,
    reconstruct,
    target_phi,
)

CondDenoise = Callable[[torch.Tensor, float], torch.Tensor]


def symmetrized_distance(
    samples1: torch.Tensor,
    samples2: torch.Tensor,
    denoise1: CondDenoise,
    denoise2: CondDenoise,
    sigmas: torch.Tensor,
    generator: torch.Generator,
) -> tuple[float, np.ndarray]:
    """Eq. 4 by Monte Carlo on a sigma grid: (d^2, the integrand E||dscore||^2 sigma^2 per sigma).

    ``samples_i`` are draws of p_i (clean); ``denoise_i(y, sigma)`` its posterior mean at sigma.
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).sort().values
    integrand = np.zeros(len(sig))
    for k, s in enumerate(sig.tolist()):
        total = 0.0
        for samples in (samples1, samples2):  # E_p1 + E_p2
            y = samples + s * torch.randn(samples.shape, generator=generator,
                                          dtype=samples.dtype, device=samples.device)  # fmt: skip
            diff = (denoise1(y, s) - denoise2(y, s)).double().flatten(1)
            total += float(diff.pow(2).sum(1).mean())
        integrand[k] = total / s**2  # ||dx_hat||^2 / sigma^4 * sigma^2 (d sigma = sigma dlog sigma)
    logs = np.log(sig.numpy())
    return float(np.trapezoid(integrand, logs)), integrand


def guided_denoiser(
    phi_fn: PhiFn,
    denoise: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    guidance: GuidanceConfig,
    n_noise: int,
    seed: int = 0,
    row: int = 0,
) -> CondDenoise:
    """x_hat(y | phi(target)) at sigma: match phi(y) to phi(target + sigma z) (Algorithm 2), then
    denoise. ``target`` is one image (1, C, H, W) of global ``row`` (its noise seed, as in a
    store); the target phi is cached per sigma."""
    cache: dict[float, torch.Tensor] = {}

    def cond(y: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma not in cache:
            sig = torch.full((1,), sigma, device=target.device)
            cache[sigma] = target_phi(phi_fn, target, sig, n_noise, seed, [row])
        matched, _ = guidance_step(phi_fn, y.float(), cache[sigma].expand(len(y), -1), guidance)
        with torch.no_grad():
            return denoise(matched).float()

    return cond


def embedding_constants(phi_sq: np.ndarray, d_sq: np.ndarray) -> dict[str, float]:
    """Inequality (3) over measured pairs: A = min d^2/||dphi||^2, B = max, B/A; also the ratio
    of the 95th to the 5th percentile (robust to a few outlying pairs) and the correlation."""
    ratio = np.asarray(d_sq, float) / np.asarray(phi_sq, float)
    a, b = float(ratio.min()), float(ratio.max())
    lo, hi = np.percentile(ratio, [5, 95])
    r = float(np.corrcoef(phi_sq, d_sq)[0, 1]) if len(ratio) > 2 else float("nan")
    return {"A": a, "B": b, "B_over_A": b / a, "B_over_A_5_95": float(hi / lo), "pearson": r}


def gaussian_kl(m1: torch.Tensor, c1: torch.Tensor, m2: torch.Tensor, c2: torch.Tensor) -> float:
    """KL(N(m1, c1) || N(m2, c2)) in closed form."""
    n = len(m1)
    inv2 = torch.linalg.inv(c2)
    dm = (m2 - m1).double()
    logdet = torch.linalg.slogdet(c2)[1] - torch.linalg.slogdet(c1)[1]
    return float(0.5 * (torch.trace(inv2 @ c1) + dm @ inv2 @ dm - n + logdet))


def distance_study(
    phi_fn: PhiFn,
    denoise: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    pairs: list[tuple[int, int]],
    sigmas: torch.Tensor,
    samples: torch.Tensor,
    n_samples: int,
    guidance: GuidanceConfig | None = None,
    n_noise: int = 20,
    phi_sigma: float = 0.1,
    seed: int = 0,
    rows: Sequence[int] | None = None,
) -> dict:
    """Figure 8 (right): d^2(p_i, p_j) (Eq. 4) against ||phi_i - phi_j||^2 for each pair (i, j)
    of rows of ``images`` (K, C, H, W). ``samples`` (K * n_samples, ...) are draws of each
    p(x | phi_k), target-major (``reconstruct``). phi is taken at ``phi_sigma``, with the noise
    of a store of ``seed`` whose rows are ``rows`` (the images' global rows; default 0..K-1)."""
    guidance = guidance or GuidanceConfig()
    k = len(images)
    rows = list(range(k)) if rows is None else list(rows)
    sig = torch.full((k,), phi_sigma, device=images.device)
    phis = target_phi(phi_fn, images, sig, n_noise, seed, rows)
    cond = [guided_denoiser(phi_fn, denoise, images[i : i + 1], guidance, n_noise, seed, rows[i])
            for i in range(k)]  # fmt: skip
    g = torch.Generator(device=images.device).manual_seed(seed)  # Eq. 4's Monte Carlo noise
    per = samples.view(k, n_samples, *samples.shape[1:])
    phi_sq, d_sq, curves = [], [], []
    for i, j in pairs:
        d2, integrand = symmetrized_distance(per[i], per[j], cond[i], cond[j], sigmas, g)
        phi_sq.append(float((phis[i] - phis[j]).pow(2).sum()))
        d_sq.append(d2)
        curves.append(integrand.tolist())
    out = {"pairs": [list(p) for p in pairs], "phi_sq": phi_sq, "d_sq": d_sq,
           "sigmas": sorted(torch.as_tensor(sigmas).tolist()), "integrands": curves,
           "phi_sigma": phi_sigma}  # fmt: skip
    if len(pairs) >= 2:
        out["constants"] = embedding_constants(np.array(phi_sq), np.array(d_sq))
        out["by_lower_limit"] = constants_by_lower_limit(out)
    return out


def constants_by_lower_limit(study: dict) -> list[dict[str, float]]:
    """The constants of inequality (3) with Eq. 4's integral started at each level of the grid
    (all but the last two): how much of B/A the lowest noise levels make."""
    sig = np.log(np.asarray(study["sigmas"], float))
    integrands = np.asarray(study["integrands"], float)
    phi_sq = np.asarray(study["phi_sq"], float)
    return [
        {"sigma_min": float(np.exp(sig[lo])),
         **embedding_constants(phi_sq, np.trapezoid(integrands[:, lo:], sig[lo:], axis=1))}
        for lo in range(len(sig) - 2)
    ]  # fmt: skip


def distance_experiment(
    model,
    images: torch.Tensor,
    sample_sigmas: torch.Tensor,
    grid_sigmas: torch.Tensor,
    n_samples: int,
    guidance: GuidanceConfig,
    n_noise: int,
    phi_sigma: float,
    mean: float | torch.Tensor,
    seed: int = 0,
    rows: Sequence[int] | None = None,
) -> dict:
    """Figure 8 (right) end to end for a model's phi (middle-block means): ``n_samples`` draws of
    each p(x | phi(x_k)) by guided reconstruction (Algorithm 1, ancestral steps on
    ``sample_sigmas``, starting from the data ``mean``), then Eq. 4 on ``grid_sigmas`` for every
    pair of the K >= 3 ``images`` and the constants of inequality (3)."""
    if len(images) < 3:
        raise ValueError("the constants of inequality (3) need at least 3 images (2 pairs)")
    phi_fn = middle_means(model)
    targets = ImageTargets(phi_fn, images, n_noise, seed, rows)
    rec = reconstruct(phi_fn, model.denoise, targets, n_samples, sample_sigmas, None, guidance,
                      n_noise, mean, seed, ancestral=True)  # fmt: skip
    pairs = list(itertools.combinations(range(len(images)), 2))
    return distance_study(phi_fn, model.denoise, images, pairs, grid_sigmas, rec.images,
                          n_samples, guidance, n_noise, phi_sigma, seed, targets.rows)  # fmt: skip


def plot_distance_study(ax, study: dict) -> None:
    """Figure 8 (right): d^2 of the conditional densities against ||phi_1 - phi_2||^2."""
    x, y = np.array(study["phi_sq"]), np.array(study["d_sq"])
    ax.scatter(x, y, s=12)
    c = study.get("constants")
    if c:
        grid = np.array([0, x.max()])
        ax.plot(grid, c["A"] * grid, color="gray", ls=":", lw=1, label=f"A = {c['A']:.3g}")
        ax.plot(grid, c["B"] * grid, color="gray", ls="--", lw=1,
                label=f"B = {c['B']:.3g} (B/A = {c['B_over_A']:.2f})")  # fmt: skip
        ax.legend(fontsize=7)
    ax.set_xlabel("||phi_1 - phi_2||^2")
    ax.set_ylabel("d^2(p_1, p_2) (Eq. 4)")
