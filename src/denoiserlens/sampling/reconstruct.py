"""Self-guided stochastic reconstruction from phi (paper section 3, Algorithms 1 and 2, Figures 7
and 20).

Samples are drawn whose phi matches that of a target image x^c. Each step alternates
- the guidance step (Algorithm 2): gradient descent on L(x_t) = ||phi(x_t) - phi(x^c_t)||^2 with
  x^c_t = x^c + sigma_t z, back-propagated through the encoder and the middle block only; each
  sample stops on its own once its loss is below ``tol`` times its initial loss, or after
  ``max_iter`` steps; the target phi(x^c_t) is averaged over ``n_noise`` draws of z;
- the score step: with the fixed schedule of Algorithm 1 (:class:`Levels`), x_{t-1} = x_t +
  s(x_t) + sigma_{t-1} z; with the adaptive variant, the step of the unconditional sampler
  (``unconditional.SamplerConfig``), the noise level read off the residual, and the target
  computed at the mean noise level of the target's unfinished samples.

Guidance is a denoiser wrapper (:class:`GuidedDenoiser`: match, then denoise), so a
reconstruction is the unconditional sampler's loop (``loop.run_chain``) with a guided denoiser.

``phi_fn`` must be differentiable (for a UNet: :func:`middle_means`); ``denoise`` is called
without gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from denoiserlens.models import Denoiser
from denoiserlens.represent.summaries import noisy_copies
from denoiserlens.sampling.loop import (
    Denoised,
    SampleNoise,
    effective_sigma,
    run_chain,
)
from denoiserlens.sampling.unconditional import SamplerConfig
from denoiserlens.settings import setting

PhiFn = Callable[[torch.Tensor], torch.Tensor]


def middle_means(model: Denoiser) -> PhiFn:
    """a_bar_M(x): spatial means of the middle block's outputs, differentiable, decoder not run;
    the means are taken in float32 (under a bf16 autocast, e.g. ``GuidanceConfig.bf16``, the
    network runs in bf16)."""
    block = model.middle_block

    def phi_fn(x: torch.Tensor) -> torch.Tensor:
        out = model.blocks_until(x, block)[block].output
        return out.float().mean(dim=(2, 3))

    return phi_fn


MATCHERS = ("descent", "adam")


@dataclass(frozen=True)
class GuidanceConfig:
    """Algorithm 2: matcher, learning rate, iteration cap and relative stopping threshold.

    ``matcher`` "adam" (the authors': :func:`adam_matching`; the default, chosen by measurement:
    a lower phi error at lower CPU time, BENCHMARKS.md "Matchers") or "descent" (gradient
    descent on the summed squared error, each sample stopping on its own, a step that raised the
    loss undone and halved). ``lr`` None is the matcher's own default: 1.0 for descent, 0.01 for
    adam (theirs). ``patience`` > 0 also stops a descent sample whose loss fell by less than 1%
    over its last ``patience`` iterations (0: never); ``bf16``: the matching passes run under
    bf16 autocast (the target phi and the reported final match stay float32); ``momentum`` > 0:
    heavy-ball descent steps (the paper: plain gradient descent, 0)."""

    lr: float | None = setting(
        None, "Guidance step size [default: 1.0 for descent, 0.01 for adam].", kind="positive"
    )
    max_iter: int = setting(
        20, "Guidance (Algorithm 2) steps at most, per noise level.", kind="count"
    )
    tol: float = setting(
        0.05, "Stop guiding a sample below this fraction of its initial loss.", kind="float"
    )
    patience: int = setting(
        0,
        "Also stop guiding a sample whose loss fell by less than 1% over this many iterations "
        "(0: never; its speed and match: BENCHMARKS.md, Matchers).",
        kind="int",
    )
    bf16: bool = setting(False, "bf16 autocast for the matching (guidance) passes.")
    momentum: float = setting(
        0.0, "Heavy-ball momentum of the guidance steps (the paper: 0).", kind="float"
    )
    matcher: str = setting(
        "adam",
        "adam: the authors' (Adam on the pixels, lr 0.01; the default, chosen in BENCHMARKS.md, "
        "Matchers); descent: each sample stops on its own, overshooting steps undone "
        "(--patience, --momentum).",
        choices=MATCHERS,
    )

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {self.matcher!r}; choose from {list(MATCHERS)}")
        if self.lr is None:
            object.__setattr__(self, "lr", 0.01 if self.matcher == "adam" else 1.0)
        if not self.lr > 0 or self.max_iter < 0 or not 0 <= self.tol < 1 or self.patience < 0:
            raise ValueError("guidance needs lr > 0, max_iter >= 0, 0 <= tol < 1, patience >= 0")
        if not 0 <= self.momentum < 1:
            raise ValueError("guidance needs 0 <= momentum < 1")
        if self.matcher == "adam" and (self.momentum or self.patience):
            raise ValueError("momentum and patience belong to the descent matcher, not adam")


def adam_matching(
    phi_fn: PhiFn, x: torch.Tensor, target: torch.Tensor, cfg: GuidanceConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The authors' Algorithm 2 (``match_phis_mid_block`` in texture_model/code/
    algorithm_inv_prob.py): Adam on the pixels at ``cfg.lr`` (theirs: 0.01), the loss of an image
    the mean over channels of (phi(x) - target)^2, the batch mean back-propagated; the whole
    batch steps until every image's loss is below ``cfg.tol`` (theirs: 1%) of its first value,
    or ``cfg.max_iter`` steps. Their loop tests the loss measured before its last step; here the
    test comes before the step, which saves that one step. Adam's per-pixel normalization makes
    an image's steps independent of the batch it is in (up to Adam's epsilon).

    Returns what :func:`guidance_step` returns, losses as sums over channels (d times theirs)."""
    x = x.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    initial = loss = None
    steps = 0
    for it in range(cfg.max_iter + 1):
        last = it == cfg.max_iter
        with (
            torch.set_grad_enabled(not last),
            torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
        ):
            loss = (phi_fn(x) - target).pow(2).mean(1)
        if initial is None:
            initial = loss.detach()
        if last or bool((loss.detach() <= cfg.tol * initial).all()):
            break
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt.step()
        steps += 1
    d = target.shape[1]
    iters = torch.full((len(x),), steps, dtype=torch.long, device=x.device)
    info = {"initial_loss": initial * d, "final_loss": loss.detach() * d, "iterations": iters}
    return x.detach(), info


def guidance_step(
    phi_fn: PhiFn, x: torch.Tensor, target: torch.Tensor, cfg: GuidanceConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Algorithm 2 on a batch: gradient descent on ||phi(x) - target||^2, each sample stopping on
    its own. Returns the matched x and, per sample, the initial and final losses and the number
    of gradient steps taken.

    The step size starts at ``cfg.lr`` and is halved, per sample, whenever a step raised the loss
    (the step is undone): the curvature of the loss grows as the noise level falls, and a step
    size that suits high noise overshoots at low noise, where it then injects noise instead of
    removing the mismatch (Figure 20; measured in BENCHMARKS.md, "Matchers"). The loss never
    ends above where it started; a step size that never overshoots gives plain gradient
    descent, as printed. With ``cfg.momentum`` = mu the step is v <- mu v - lr grad, x <- x + v
    (heavy ball); an undone step also zeroes its sample's v. With ``cfg.matcher`` "adam" this
    is :func:`adam_matching`.
    """
    if cfg.matcher == "adam":
        return adam_matching(phi_fn, x, target, cfg)
    x = x.detach().clone()
    b = len(x)
    initial = torch.zeros(b, device=x.device)
    final = torch.zeros(b, device=x.device)
    iters = torch.zeros(b, dtype=torch.long, device=x.device)
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    lr = torch.full((b,), cfg.lr, device=x.device)
    view = (-1, *[1] * (x.dim() - 1))
    prev_x, prev_grad, velocity = x.clone(), torch.zeros_like(x), torch.zeros_like(x)
    prev_loss = torch.full((b,), float("inf"), device=x.device)
    history = (
        torch.full((cfg.max_iter + 1, b), float("inf"), device=x.device) if cfg.patience else None
    )
    for it in range(cfg.max_iter + 1):
        idx = active.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        last = it == cfg.max_iter  # no step left: only the final loss is measured
        xi = x[idx].requires_grad_(not last)
        with (
            torch.set_grad_enabled(not last),
            torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
        ):
            loss = (phi_fn(xi) - target[idx]).pow(2).sum(1)
            grad = None if last else torch.autograd.grad(loss.sum(), xi)[0]
        loss = loss.detach()
        if it == 0:
            initial[idx] = loss
        worse = ~(loss <= prev_loss[idx])  # the last step overshot (or gave NaN): undo, halve
        if worse.any():
            back = idx[worse]
            x[back], loss[worse], lr[back] = prev_x[back], prev_loss[back], lr[back] / 2
            velocity[back] = 0
            if grad is not None:
                grad[worse] = prev_grad[back]
        final[idx] = loss
        if last:
            break
        done = loss <= cfg.tol * initial[idx]
        if history is not None:  # stalled: less than 1% lower than `patience` iterations ago
            history[it, idx] = loss
            if it >= cfg.patience:
                done |= loss > 0.99 * history[it - cfg.patience, idx]
        go, moving = ~done, idx[~done]
        prev_x[moving], prev_grad[moving], prev_loss[moving] = x[moving], grad[go], loss[go]
        velocity[moving] = cfg.momentum * velocity[moving] - lr[moving].view(view) * grad[go]
        x[moving] = x[moving] + velocity[moving]
        iters[moving] += 1
        active[idx[done]] = False
    return x, {"initial_loss": initial, "final_loss": final, "iterations": iters}


def target_phi(
    phi_fn: PhiFn,
    xc: torch.Tensor,
    sigma: torch.Tensor,
    n_noise: int,
    seed: int = 0,
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """phi(x^c + sigma z) averaged over ``n_noise`` draws, one sigma per target: (K, d). The draws
    are :func:`~denoiserlens.represent.noisy_copies`' (seeded per (seed, row, draw)), so with
    ``phi_fn`` = :func:`middle_means` this is the stored phi of those rows at that sigma."""
    y, draws = noisy_copies(xc, sigma, n_noise, seed, rows)
    with torch.no_grad():
        return phi_fn(y).float().view(len(xc), draws, -1).mean(1)


class ImageTargets:
    """Targets given as images (K, C, H, W): phi(x^c_k + sigma_k z), ``n_noise`` draws seeded by
    (``seed``, ``rows[k]``) as in a representation store (default rows 0..K-1). The same draws
    serve every noise level, so the target at sigma is the function phi(x^c, sigma) of section
    2.3 (the authors draw fresh noise at each level: the same expectation)."""

    def __init__(
        self,
        phi_fn: PhiFn,
        images: torch.Tensor,
        n_noise: int,
        seed: int = 0,
        rows: Sequence[int] | None = None,
    ) -> None:
        self.phi_fn, self.images, self.n_noise, self.seed = phi_fn, images, n_noise, seed
        self.rows = list(range(len(images))) if rows is None else list(rows)
        self.count, self.shape, self.device = len(images), tuple(images.shape[1:]), images.device

    def phi(self, sigma: torch.Tensor) -> torch.Tensor:
        """Target phi of each target at its noise level ``sigma`` (K,): (K, d)."""
        return target_phi(self.phi_fn, self.images, sigma, self.n_noise, self.seed, self.rows)


class GroupTargets(ImageTargets):
    """Targets beyond the paper (its stated future directions): each target is a group of images,
    and its phi at sigma combines theirs: "mean" (a cluster centroid: the mean phi of the
    cluster's members) or "max" (the union of the images' active channels).

    A centroid averages over members and noise draws alike, so each member gets
    ceil(n_noise / members) draws: about ``n_noise`` encoder passes per target, as for an image,
    instead of members x n_noise. A union takes each image's own noise-averaged phi (n_noise
    draws each) before the maximum. ``rows`` gives each group's members' global rows (their
    noise seeds; default: numbered in order over all groups)."""

    def __init__(
        self,
        phi_fn: PhiFn,
        groups: list[torch.Tensor],
        combine: str,
        n_noise: int,
        seed: int = 0,
        rows: list[Sequence[int]] | None = None,
    ) -> None:
        if combine not in ("mean", "max"):
            raise ValueError(f"combine must be mean or max, got {combine!r}")
        if not groups or any(len(gr) == 0 for gr in groups):
            raise ValueError("every target group needs at least one image")
        super().__init__(phi_fn, groups[0], n_noise, seed)
        if rows is None:
            first = [sum(len(gr) for gr in groups[:k]) for k in range(len(groups))]
            rows = [range(f, f + len(gr)) for f, gr in zip(first, groups, strict=True)]
        self.groups, self.combine, self.count = groups, combine, len(groups)
        self.member_rows = [list(r) for r in rows]
        self.rows = [r[0] for r in self.member_rows]

    def phi(self, sigma: torch.Tensor) -> torch.Tensor:
        out = []
        for k, images in enumerate(self.groups):
            sig = sigma[k].expand(len(images))
            draws = -(-self.n_noise // len(images)) if self.combine == "mean" else self.n_noise
            p = target_phi(self.phi_fn, images, sig, draws, self.seed, self.member_rows[k])
            out.append(p.mean(0) if self.combine == "mean" else p.max(0).values)
        return torch.stack(out)


@dataclass(frozen=True)
class Levels:
    """Algorithm 1's fixed schedule, ``levels`` = sigma_T .. sigma_0 (decreasing): every level is
    visited, the estimate at the last is the sample. The step to the next level sigma' is
    Algorithm 1 as printed, x' = x_hat + sigma' z, or with ``ancestral`` the Gaussian posterior
    step of a variance-exploding diffusion (see :func:`reconstruct`)."""

    levels: tuple[float, ...]
    ancestral: bool = False

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("a fixed schedule needs at least one noise level")

    @property
    def sigma_0(self) -> float:
        return self.levels[0]

    @property
    def max_steps(self) -> int:
        return len(self.levels)

    def finished(self, t: int, sigma: torch.Tensor) -> torch.Tensor:
        return torch.full_like(sigma, t == len(self.levels), dtype=torch.bool)

    def advance(
        self, t: int, y: torch.Tensor, est: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        nxt = self.levels[t]
        if self.ancestral:  # E[x_{t-1} | x_t] and the spread of x_{t-1} given x_t and x
            keep = nxt**2 / self.levels[t - 1] ** 2
            y = est + keep * (y - est) + nxt * math.sqrt(1 - keep) * z
        else:  # Algorithm 1 as printed: x <- x + s(x) + sigma_{t-1} z
            y = est + nxt * z
        return y, torch.full_like(sigma, nxt)


class GuidedDenoiser:
    """The conditional denoiser of Algorithm 1: Algorithm 2 (``guide_fn``, default
    :func:`guidance_step`) moves y until phi(y) matches its target's phi at the current noise
    level, then the blind denoiser denoises the matched y. ``owner[i]`` is the target of sample
    i (default: all target 0); a target's phi is taken at the mean noise level of its unfinished
    samples. ``record_noise`` also measures the effective noise level before matching (Figure
    20's "before"), at the cost of one more denoising."""

    def __init__(
        self,
        phi_fn: PhiFn,
        denoise: Callable[[torch.Tensor], torch.Tensor],
        targets: ImageTargets,
        guidance: GuidanceConfig = GuidanceConfig(),
        owner: torch.Tensor | None = None,
        record_noise: bool = False,
        guide_fn: Callable = guidance_step,
    ) -> None:
        self.phi_fn, self.denoise, self.targets, self.guidance = phi_fn, denoise, targets, guidance
        self.owner, self.record_noise, self.guide_fn = owner, record_noise, guide_fn

    def __call__(self, y: torch.Tensor, idx: torch.Tensor, level: torch.Tensor) -> Denoised:
        k = self.targets.count
        own = torch.zeros_like(idx) if self.owner is None else self.owner[idx]
        per_target = torch.zeros(k, device=level.device).index_add_(0, own, level)
        counts = torch.bincount(own, minlength=k).clamp_min(1)
        return self.match_and_denoise(y, self.targets.phi(per_target / counts)[own])

    def match_and_denoise(self, y: torch.Tensor, target: torch.Tensor) -> Denoised:
        """Match each row of ``y`` to its row of target phi (Algorithm 2), then denoise."""
        info = {}
        if self.record_noise:
            with torch.no_grad():
                info["sigma_before"] = effective_sigma(self.denoise(y).float() - y)
        matched, losses = self.guide_fn(self.phi_fn, y, target, self.guidance)
        info.update(initial_loss=losses["initial_loss"], final_loss=losses["final_loss"])
        with torch.no_grad():
            return Denoised(matched, self.denoise(matched).float(), info)


@dataclass
class Reconstruction:
    """Samples (K * S, ...) target-major; per step, the effective noise level before and after
    guidance (Figure 20) and the guidance losses; the final phi match per sample."""

    images: torch.Tensor
    sigma_before: torch.Tensor  # (levels visited, B), NaN once finished
    sigma_after: torch.Tensor
    loss_initial: torch.Tensor
    loss_final: torch.Tensor
    cosine: torch.Tensor  # (B,) cos(phi(sample), phi(target)) at the end
    relative_error: torch.Tensor  # (B,) ||phi(sample) - phi(target)|| / ||phi(target)||


def reconstruct(
    phi_fn: PhiFn,
    denoise: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor | ImageTargets,
    n_samples: int,
    sigmas: torch.Tensor | None = None,
    adaptive: SamplerConfig | None = None,
    guidance: GuidanceConfig = GuidanceConfig(),
    n_noise: int = 20,
    mean: float | torch.Tensor = 0.5,
    seed: int = 0,
    final_phi_sigma: float = 0.0,
    ancestral: bool = False,
    record_noise: bool = True,
    guide_fn: Callable = guidance_step,
) -> Reconstruction:
    """``n_samples`` reconstructions of each target from its phi: target images (K, C, H, W), or
    :class:`ImageTargets` / :class:`GroupTargets` (cluster centroids, unions of channels).

    Give ``sigmas`` (decreasing, sigma_T .. sigma_0: Algorithm 1; matching and denoising at every
    level, the last estimate is the sample) or ``adaptive`` (the step rule of the unconditional
    sampler). The final phi match is measured at ``final_phi_sigma``.

    Algorithm 1 as printed denoises fully and adds fresh noise of the next level. For a Gaussian
    direction of variance lambda, that step maps the signal variance W to r^2 (W + sigma^2),
    r = lambda / (lambda + sigma^2), whose fixed point as sigma -> 0 is lambda / 2: the samples
    have about half the variance they should. ``ancestral=True`` replaces it with the exact
    Gaussian posterior step of a variance-exploding diffusion,
    x_{t-1} = x_hat + (sigma_{t-1}/sigma_t)^2 (x_t - x_hat) + sigma_{t-1} sqrt(1 - (sigma_{t-1}/
    sigma_t)^2) z, which keeps the variance (``tests/test_sampling.py``).

    ``record_noise=False`` skips the extra denoising that measures the noise level before each
    matching step (Figure 20; ``sigma_before`` is then NaN). ``guide_fn`` replaces Algorithm 2
    (same signature as :func:`guidance_step`; the benchmarks pass the authors' variant).

    Randomness is seeded by ``seed``: image targets' noise per (seed, row, draw) as in a store
    (:class:`ImageTargets`), and sample j of the target of row r draws its own noise stream
    (seed, r * n_samples + j): a target's reconstructions do not depend on the other targets,
    their order or the batch.
    """
    if (sigmas is None) == (adaptive is None):
        raise ValueError("give either a sigma schedule or an adaptive sampler configuration")
    if isinstance(targets, torch.Tensor):
        targets = ImageTargets(phi_fn, targets, n_noise, seed)
    dev, k = targets.device, targets.count
    owner = torch.arange(k, device=dev).repeat_interleave(n_samples)  # target of each sample
    guided = GuidedDenoiser(phi_fn, denoise, targets, guidance, owner, record_noise, guide_fn)
    schedule = (
        adaptive if sigmas is None else Levels(tuple(torch.as_tensor(sigmas).tolist()), ancestral)
    )
    ids = [r * n_samples + j for r in targets.rows for j in range(n_samples)]
    chain = run_chain(
        guided, schedule, (k * n_samples, *targets.shape), SampleNoise(seed, ids, dev), mean
    )
    with torch.no_grad():
        final = targets.phi(torch.full((k,), final_phi_sigma, device=dev))[owner]
        got = phi_fn(chain.images)
    cos = torch.nn.functional.cosine_similarity(got, final, dim=1)
    rel = (got - final).norm(dim=1) / final.norm(dim=1).clamp_min(1e-12)
    rec = chain.records
    before = rec.get("sigma_before", torch.full_like(chain.sigmas, float("nan")))
    return Reconstruction(
        chain.images, before, chain.sigmas, rec["initial_loss"], rec["final_loss"], cos, rel
    )
