"""Distance between the conditional densities that two representations induce (paper Eq. 4,
Figure 8 right, Figure 21).

    d^2(p1, p2) = integral_0^inf (E_p1 + E_p2)[ ||grad log p1_sigma - grad log p2_sigma||^2 ] sigma dsigma

with p_i = p_sigma(x_sigma | phi_i). Each term is KL(p_i || p_j) (Verdu 2010, Lyu 2012), so d^2 is
the symmetrized KL divergence. The estimator:

- scores from posterior means (Eq. 2): grad log p_i,sigma(y) = (x_hat_i(y, sigma) - y) / sigma^2, so
  the score difference is (x_hat_1 - x_hat_2) / sigma^2 and y cancels;
- E_p_i by Monte Carlo: samples of p(x | phi_i) (from Algorithm 1, ``reconstruct``) plus sigma z;
- the integral on a log-spaced sigma grid by the trapezoid rule in log sigma:
  sigma dsigma ||dx_hat||^2 / sigma^4 = ||dx_hat||^2 / sigma^2 dlog(sigma).

Inequality (3): A ||phi1 - phi2||^2 <= d^2 <= B ||phi1 - phi2||^2 for all pairs; ``embedding_constants``
returns the tightest A and B over the measured pairs and B/A (the paper reports 2.9).

The paper does not say how the conditional denoisers x_hat_i were computed. Two estimators:

- "tilted" (the default, :func:`tilted_distance_study`): p(x | phi_i) is the data density tilted
  towards phi_i, p(x) exp(-||phi(x) - phi_i||^2 / 2 tau^2); its denoiser is the blind one plus one
  Kalman update with Tweedie's posterior covariance (:func:`tilted_gap_forms`). The update shrinks
  as sigma^2, so the integrand vanishes at both ends; exact for a Gaussian prior and a linear
  phi. For tilted densities Eq. 4 also has a closed form whatever the prior, the normalizers
  cancelling in the symmetrized KL: d^2 = (E_p1[phi] - E_p2[phi]) . (phi_1 - phi_2) / tau^2. So
  where samples pin phi within tau, d^2 is near ||phi_1 - phi_2||^2 / tau^2 and B/A near 1 by
  construction; the prior's shape shows as tau grows towards the spread of phi over the data.
- "matching" (:func:`distance_study`): the guidance step of Algorithm 2 towards phi_i at that
  sigma, then the blind denoiser (``guided_denoiser``). The guidance moves y by a finite amount at
  every sigma, so the two guided denoisers differ by an amount that does not shrink with sigma,
  and the integrand grows as 1 / sigma^2 below the noise levels the matching resolves, where the
  lowest levels carry most of d^2 (BENCHMARKS.md, Eq. 4). ``distance_study`` therefore also
  reports the constants for the integral cut at each grid level (``by_lower_limit``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import jvp, vjp, vmap

from denoiserlens.represent.summaries import draw_noise
from denoiserlens.sampling.reconstruct import (
    GuidanceConfig,
    GuidedDenoiser,
    ImageTargets,
    PhiFn,
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
            y = samples + s * torch.randn(
                samples.shape, generator=generator, dtype=samples.dtype, device=samples.device
            )
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
    guided = GuidedDenoiser(
        phi_fn, denoise, ImageTargets(phi_fn, target, n_noise, seed, [row]), guidance
    )
    cache: dict[float, torch.Tensor] = {}

    def cond(y: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma not in cache:
            cache[sigma] = guided.targets.phi(torch.full((1,), sigma, device=target.device))
        return guided.match_and_denoise(y.float(), cache[sigma].expand(len(y), -1)).estimate

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
    cond = [
        guided_denoiser(phi_fn, denoise, images[i : i + 1], guidance, n_noise, seed, rows[i])
        for i in range(k)
    ]
    g = torch.Generator(device=images.device).manual_seed(seed)  # Eq. 4's Monte Carlo noise
    per = samples.view(k, n_samples, *samples.shape[1:])
    phi_sq, d_sq, curves = [], [], []
    for i, j in pairs:
        d2, integrand = symmetrized_distance(per[i], per[j], cond[i], cond[j], sigmas, g)
        phi_sq.append(float((phis[i] - phis[j]).pow(2).sum()))
        d_sq.append(d2)
        curves.append(integrand.tolist())
    out = {
        "pairs": [list(p) for p in pairs],
        "phi_sq": phi_sq,
        "d_sq": d_sq,
        "sigmas": sorted(torch.as_tensor(sigmas).tolist()),
        "integrands": curves,
        "phi_sigma": phi_sigma,
    }
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
        {
            "sigma_min": float(np.exp(sig[lo])),
            **embedding_constants(phi_sq, np.trapezoid(integrands[:, lo:], sig[lo:], axis=1)),
        }
        for lo in range(len(sig) - 2)
    ]


ESTIMATORS = ("tilted", "matching")
MAX_PRIOR_VALUES = 4096  # the data's covariance above the grid: at most 4096^2 float64 = 134 MB


def gaussian_prior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean image (C, H, W) and the covariance (n, n), float64, of images x (N, C, H, W):
    the Gaussian whose posterior stands in for the data's above a model's training range."""
    n = x[0].numel()
    if n > MAX_PRIOR_VALUES:
        raise ValueError(
            f"a covariance of {n}-value images is too large (at most {MAX_PRIOR_VALUES})"
        )
    flat = x.double().flatten(1)
    return flat.mean(0).view(x.shape[1:]), torch.cov(flat.T)


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
    estimator: str = "tilted",
    tau: float | Sequence[float] | None = None,
    prior: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict:
    """Figure 8 (right) end to end for a model's phi (middle-block means): ``n_samples`` draws of
    each p(x | phi(x_k)) by guided reconstruction (Algorithm 1, ancestral steps on
    ``sample_sigmas``, starting from the data ``mean``), then Eq. 4 on ``grid_sigmas`` for every
    pair of the K >= 3 ``images`` and the constants of inequality (3).

    ``estimator`` "tilted" (the default): the conditional denoisers of the tilted densities
    (:func:`tilted_distance_study`), phi the noise-averaged middle-block means with ``n_noise``
    fixed draws at ``phi_sigma`` (:func:`fixed_noise_phi`), ``tau`` None read off the samples:
    the root mean square of phi(sample) - phi(target) per component, the width within which
    Algorithm 1 pins phi (several widths: the first one's result, every one's in ``by_tau``);
    ``prior`` (mean image, covariance), e.g. :func:`gaussian_prior` of the data, carries the
    integral above ``grid_sigmas``. "matching": Algorithm 2's matching step as the conditional denoiser
    (:func:`distance_study`), whose integrand grows as 1 / sigma^2 at low noise."""
    if len(images) < 3:
        raise ValueError("the constants of inequality (3) need at least 3 images (2 pairs)")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {list(ESTIMATORS)}")
    phi_fn = middle_means(model)
    targets = ImageTargets(phi_fn, images, n_noise, seed, rows)
    rec = reconstruct(
        phi_fn,
        model.denoise,
        targets,
        n_samples,
        sample_sigmas,
        None,
        guidance,
        n_noise,
        mean,
        seed,
        ancestral=True,
    )
    pairs = list(itertools.combinations(range(len(images)), 2))
    if estimator == "matching":
        return distance_study(
            phi_fn,
            model.denoise,
            images,
            pairs,
            grid_sigmas,
            rec.images,
            n_samples,
            guidance,
            n_noise,
            phi_sigma,
            seed,
            targets.rows,
        )
    phi = fixed_noise_phi(phi_fn, images.shape[1:], phi_sigma, n_noise, seed, images.device)
    with torch.no_grad():
        phis, sample_phis = phi(images).double(), phi(rec.images).double()
    if tau is None:
        gap = sample_phis.view(len(images), n_samples, -1) - phis[:, None]
        tau = float(gap.pow(2).mean().sqrt())
    if prior is not None:
        prior = (prior[0].to(images), prior[1].to(images.device))
    model.eval()
    study = tilted_distance_study(
        lambda y, _sigma: model(y),
        phi,
        phis,
        rec.images,
        n_samples,
        grid_sigmas,
        tau,
        seed,
        pairs,
        sample_phis,
        prior,
    )
    study["phi_sigma"] = phi_sigma
    return study


# --- Eq. 4 with the tilted conditional (the default estimator) -------------------------------

ImageDenoise = Callable[[torch.Tensor, float], torch.Tensor]
MC_FIRST_DRAW = 1_000_000  # Eq. 4's Monte Carlo noise: draw numbers no phi average reaches


def tilted_gap_forms(
    denoise: ImageDenoise,
    phi_fn: PhiFn,
    y: torch.Tensor,
    sigma: float,
    taus: Sequence[float],
    chunk: int = 64,
) -> torch.Tensor:
    """For each image y_b of ``y`` (B, C, H, W) and each tau of ``taus``: the (d, d) matrix G with

        ||x_hat(y_b | phi_1) - x_hat(y_b | phi_2)||^2 = (phi_1 - phi_2)^T G_b (phi_1 - phi_2)

    for the tilted conditional p(x | phi_i) ~ p(x) exp(-||phi(x) - phi_i||^2 / 2 tau^2); (B, T, d, d).

    Its posterior mean at y is the blind one corrected by one Gauss-Newton (Kalman) update, phi
    linearized at x_hat(y) with J = dphi/dx there and the posterior covariance of p(x | y) given
    by Tweedie's second-order formula, S = sigma^2 dx_hat/dy (symmetrized):

        x_hat(y | phi_i) = x_hat(y) + S J^T M^{-1} (phi_i - phi(x_hat)),   M = J S J^T + tau^2 I,

    so x_hat(y | phi_1) - x_hat(y | phi_2) = W (phi_1 - phi_2) with W = S J^T M^{-1}, G = W^T W.
    Exact for a Gaussian prior and a linear phi. The correction is scaled by S, which shrinks as
    sigma^2: guidance consistent with the noise level, unlike a matching step (Algorithm 2) that
    moves y by a finite amount at every level. ``phi_fn`` must be deterministic (fixed noise
    draws) and differentiable; ``denoise(y, sigma)`` differentiable in y. Float64 results; the
    passes run in the inputs' dtype. Cost per image: d vector-Jacobian products of phi and d
    Jacobian-vector plus d vector-Jacobian products of the denoiser (``chunk`` at a time), shared
    by all the taus.
    """
    return torch.stack(
        [_gap_forms(denoise, phi_fn, yb.unsqueeze(0), sigma, taus, chunk) for yb in y]
    )


def _gap_forms(
    denoise: ImageDenoise,
    phi_fn: PhiFn,
    y: torch.Tensor,
    sigma: float,
    taus: Sequence[float],
    chunk: int,
) -> torch.Tensor:
    """G = W^T W of :func:`tilted_gap_forms` for one image y (1, C, H, W), per tau (T, d, d)."""
    shape = y.shape

    def den(v: torch.Tensor) -> torch.Tensor:
        return denoise(v.view(shape), sigma).reshape(-1)

    yf = y.detach().reshape(-1)
    with torch.no_grad():
        xhat = den(yf)
    jac = phi_jacobian(phi_fn, xhat.view(shape), chunk)
    _, den_back = vjp(den, yf)
    forward = vmap(lambda v: jvp(den, (yf,), (v,))[1], chunk_size=chunk)(jac)
    backward = vmap(den_back, chunk_size=chunk)(jac)[0]
    w = (0.5 * sigma**2) * (forward + backward).detach().double()  # (d, n): (S J^T)^T
    return _forms_from_gain(jac.double(), w, taus)


def _forms_from_gain(jac: torch.Tensor, w: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
    """G = W^T W per tau (T, d, d) from J (d, n) and (S J^T)^T (d, n), S symmetric.

    J S J^T is a covariance (phi's under the posterior), but a network's Jacobian need not be
    positive semi-definite; where eigenvalues fall below -tau^2, M = J S J^T + tau^2 I comes near
    singular and one noisy image can carry a pair's d^2 (seen at sigma 1: BENCHMARKS.md, "Eq. 4
    with tilted conditionals"). Its negative eigenvalues are set to 0, so that M >= tau^2 I."""
    m = jac @ w.T
    lam, vec = torch.linalg.eigh(0.5 * (m + m.T))
    lam = lam.clamp_min(0)
    proj = vec.T @ w  # (d, n): J S in M's eigenbasis
    forms = []
    for tau in taus:
        gain = vec @ (proj / (lam + tau**2)[:, None])  # W^T = M^{-1} J S
        forms.append(gain @ gain.T)
    return torch.stack(forms)


def phi_jacobian(phi_fn: PhiFn, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """J = dphi/dx at one image x (1, C, H, W): (d, n), by d vector-Jacobian products."""
    shape = x.shape

    def phi_flat(v: torch.Tensor) -> torch.Tensor:
        return phi_fn(v.view(shape)).reshape(-1)

    phi_x, back = vjp(phi_flat, x.detach().reshape(-1))
    eye = torch.eye(phi_x.numel(), dtype=x.dtype, device=x.device)
    return vmap(back, chunk_size=chunk)(eye)[0].detach()


def gaussian_gap_forms(
    jac: torch.Tensor, cov: torch.Tensor, sigmas: Sequence[float], taus: Sequence[float]
) -> torch.Tensor:
    """:func:`tilted_gap_forms` where the posterior is Gaussian: S = (C^-1 + I / sigma^2)^-1 for
    a prior of covariance ``cov`` (n, n) and phi's Jacobian ``jac`` (d, n) fixed; (S, T, d, d).
    The high-noise limit of any prior: once sigma is far above the signal the posterior mean is
    linear in y and its covariance tends to the prior's."""
    lam, vec = torch.linalg.eigh(cov.double())
    lam = lam.clamp_min(0)
    jv = jac.double() @ vec  # (d, n): J in the prior's eigenbasis
    return torch.stack(
        [_forms_from_gain(jv, jv * (lam * s**2 / (lam + s**2)), taus) for s in sigmas]
    )


def fixed_noise_phi(
    phi_fn: PhiFn,
    shape: Sequence[int],
    phi_sigma: float,
    draws: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> PhiFn:
    """phi(x) = mean over ``draws`` fixed noise images z_k of phi_fn(x + phi_sigma z_k): the
    noise-averaged phi of section 2.3 as a deterministic, differentiable function of x (common
    random numbers: every image and every sigma sees the same z_k)."""
    z = phi_sigma * draw_noise(shape, seed, [0], range(draws), device)

    def phi(x: torch.Tensor) -> torch.Tensor:
        y = (x.unsqueeze(1) + z.to(x.dtype)).flatten(0, 1)
        return phi_fn(y).view(len(x), draws, -1).mean(1)

    return phi


def tilted_distance_study(
    denoise: ImageDenoise,
    phi_fn: PhiFn,
    phis: torch.Tensor,
    samples: torch.Tensor,
    n_samples: int,
    sigmas: torch.Tensor,
    tau: float | Sequence[float],
    seed: int = 0,
    pairs: Sequence[tuple[int, int]] | None = None,
    sample_phis: torch.Tensor | None = None,
    prior: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict:
    """Eq. 4 for every pair of K targets with the tilted conditionals of :func:`tilted_gap_forms`.

    ``phis`` (K, d) are the targets' phi; ``samples`` (K * n_samples, C, H, W), target-major,
    draws of each p(x | phi_k). For target k and level sigma, Q_k(sigma) is the mean of G over
    its samples plus sigma z (z seeded by (seed, k, MC_FIRST_DRAW + sample), the same z at every
    level, never one of :func:`fixed_noise_phi`'s draws); the
    integrand of pair (i, j) is dphi^T (Q_i + Q_j) dphi / sigma^2 (E_p_i + E_p_j) and d^2 its
    trapezoid in log sigma. The same noisy draws serve every pair (common random numbers), and
    the pair's two conditional denoisers are differenced before any Monte Carlo average, so the
    estimate has no noise floor.

    The integral runs from 0 to infinity, the grid over what the model was trained on. Beyond
    its ends the integrand follows its asymptotes, sigma^2 below (S -> sigma^2 I, W -> sigma^2
    J^T / tau^2) and sigma^-2 above (S -> the prior's covariance), each of which integrates in
    log sigma to half the integrand at the end; ``d_sq`` includes both, ``tail_share`` says what
    fraction of d^2 they carry, and ``end_slopes`` the median slope of log integrand against
    log sigma over the last interval at each end (2 and -2 where the asymptotes hold).

    A model's training range often ends before the posterior has reached the prior (on
    Fashion-MNIST, the image-wide brightness varies by more than sigma = 1). With ``prior`` =
    (mean image (C, H, W), covariance (n, n)) of the data, the integral goes on above the grid
    with the Gaussian posterior (:func:`gaussian_gap_forms`, phi's Jacobian at the data mean) up
    to 100 times the prior's largest standard deviation, where the sigma^-2 tail takes over;
    ``gaussian_share`` is the fraction of d^2 above the grid and ``gaussian_match`` the ratio of
    the Gaussian integrand to the model's at the top of the grid (1 where they join).

    With ``sample_phis`` (K * n_samples, d), phi of the samples, the study also gives the
    closed form that Eq. 4 has for tilted conditionals, whatever the prior (the normalizers
    cancel in the symmetrized KL): d^2 = (E_p_i[phi] - E_p_j[phi]) . (phi_i - phi_j) / tau^2.

    ``tau`` may be several widths (the Jacobians are shared): the result is the first one's,
    with every one's in ``by_tau``.
    """
    taus = [float(tau)] if isinstance(tau, int | float) else [float(t) for t in tau]
    k = len(phis)
    pairs = list(itertools.combinations(range(k), 2)) if pairs is None else list(pairs)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).sort().values
    per = samples.view(k, n_samples, *samples.shape[1:])
    shape, dev = samples.shape[1:], samples.device
    draws = range(MC_FIRST_DRAW, MC_FIRST_DRAW + n_samples)  # apart from phi's fixed draws
    z = torch.stack([draw_noise(shape, seed, [t], draws, dev) for t in range(k)])
    q = torch.stack(
        [
            torch.stack(
                [
                    tilted_gap_forms(denoise, phi_fn, per[t] + s * z[t], s, taus).mean(0)
                    for s in sig.tolist()
                ]
            )
            for t in range(k)
        ]
    )  # (K, S, T, d, d)
    dphi = torch.stack([phis[i] - phis[j] for i, j in pairs]).double()  # (P, d)
    first, second = torch.tensor(pairs).T
    forms = q[first] + q[second]  # (P, S, T, d, d)
    integrands = torch.einsum("pd,pstde,pe->tps", dphi, forms, dphi) / sig**2  # (T, P, S)
    logs = np.log(sig.numpy())
    phi_sq = dphi.pow(2).sum(1).numpy()
    means = None if sample_phis is None else sample_phis.double().view(k, n_samples, -1).mean(1)
    above = None
    if prior is not None:
        jac = phi_jacobian(phi_fn, prior[0].to(samples)[None])
        top = 100 * float(torch.linalg.eigvalsh(prior[1].double()).max().sqrt())
        levels = int(np.ceil(4 * np.log10(max(top / float(sig[-1]), 10.0))))
        high = torch.logspace(
            np.log10(float(sig[-1])), np.log10(top), levels + 1, dtype=torch.float64
        )
        forms_g = gaussian_gap_forms(jac, prior[1], high.tolist(), taus)  # (S', T, d, d)
        above = 2 * torch.einsum("pd,stde,pe->tps", dphi, forms_g, dphi) / high**2  # E_p1 + E_p2
    by_tau = []
    for ti, (t, integrand) in enumerate(zip(taus, integrands, strict=True)):
        vals = integrand.numpy()
        low = 0.5 * vals[:, 0]  # the sigma^2 asymptote below the grid
        if above is None:
            high_part = 0.5 * vals[:, -1]  # the sigma^-2 asymptote above it
        else:
            gauss = above[ti].numpy()
            high_part = np.trapezoid(gauss, np.log(high.numpy()), axis=1) + 0.5 * gauss[:, -1]
        tails = low + high_part
        d_sq = np.trapezoid(vals, logs, axis=1) + tails
        slopes = np.log(np.maximum(vals[:, [1, -1]], 1e-300) / np.maximum(vals[:, [0, -2]], 1e-300))
        res = {
            "tau": t,
            "d_sq": d_sq.tolist(),
            "integrands": integrand.tolist(),
            "tail_share": float(np.median(tails / np.maximum(d_sq, 1e-300))),
            "end_slopes": (np.median(slopes, 0) / (logs[[1, -1]] - logs[[0, -2]])).tolist(),
        }
        if above is not None:
            res["gaussian_share"] = float(np.median(high_part / np.maximum(d_sq, 1e-300)))
            res["gaussian_match"] = float(np.median(gauss[:, 0] / np.maximum(vals[:, -1], 1e-300)))
        if means is not None:
            dm = means[first] - means[second]
            res["d_sq_closed_form"] = ((dm * dphi).sum(1) / t**2).tolist()
        if len(pairs) >= 2:
            res["constants"] = embedding_constants(phi_sq, d_sq)
            res["constants"]["spread"] = ratio_spread(phi_sq, d_sq, seed)
        by_tau.append(res)
    out = {
        "estimator": "tilted",
        "pairs": [list(p) for p in pairs],
        "phi_sq": phi_sq.tolist(),
        "sigmas": sig.tolist(),
        **by_tau[0],
    }
    if len(taus) > 1:
        out["by_tau"] = [{key: r[key] for key in r if key != "integrands"} for r in by_tau]
    return out


def ratio_spread(
    phi_sq: np.ndarray, d_sq: np.ndarray, seed: int = 0, resamples: int = 1000
) -> dict[str, float]:
    """The spread of B/A over the pairs: its median and 5-95% interval when the pairs are drawn
    again with replacement (bootstrap), and the quartiles of d^2 / ||dphi||^2."""
    ratio = np.asarray(d_sq, float) / np.asarray(phi_sq, float)
    rng = np.random.default_rng(seed)
    boot = rng.choice(ratio, (resamples, len(ratio)))
    b_over_a = boot.max(1) / boot.min(1)
    q1, q2, q3 = np.percentile(ratio, [25, 50, 75])
    lo, med, hi = np.percentile(b_over_a, [5, 50, 95])
    return {
        "bootstrap_median": float(med),
        "bootstrap_5": float(lo),
        "bootstrap_95": float(hi),
        "ratio_q1": float(q1),
        "ratio_median": float(q2),
        "ratio_q3": float(q3),
    }
