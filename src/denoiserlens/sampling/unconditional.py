"""Unconditional sampling with a blind denoiser (Kadkhodaie & Simoncelli 2021; paper Appendix C,
Figure 19).

Coarse-to-fine stochastic ascent of the log density of the noisy images. No noise level is given
to the network: it is read off the residual. From y_0 = m + sigma_0 z (m the data mean), step t:

    d_t = f(y_{t-1}) - y_{t-1}                     residual (sigma^2 times the score, Eq. 2)
    sigma_t = ||d_t|| / sqrt(N)                    effective noise level
    h_t = h0 t / (1 + h0 (t - 1))                  step size (or h0 with a fixed step)
    gamma_t = sigma_t sqrt((1 - beta h_t)^2 - (1 - h_t)^2)
    y_t = y_{t-1} + h_t d_t + gamma_t z_t          z_t ~ N(0, I)

so that the noise of y_t falls by a factor (1 - beta h_t) per step; beta in (0, 1] sets how much
fresh noise is injected (beta = 1: none).

The steps are not exact. For a Gaussian prior, a direction of variance lambda well above sigma_t^2
loses about h_t^2 sigma_t^2 of variance per step, in all about h lambda / (2 beta) once sigma_t has
passed sqrt(lambda): the growing steps of the adaptive schedule (h_t -> 1) give faster, slightly
under-dispersed samples; a small fixed step (``fixed_step``, h0 = 0.02) is within 2% of exact
(``tests/test_sampling.py`` checks it against the closed form).

A sample stops once sigma_t < sigma_L and is returned as
f(y) at that step. Samples stop independently: a finished sample is masked out of the batch and
costs no further network evaluations. A sample whose effective noise level exceeds
``DIVERGED`` sigma_0 or stops being finite is stopped too, unfinished, and returned as its last
estimate below that level: a denoiser that does not contract makes the ascent diverge (seen with a
model trained on one image, and with beta 0.05 on Fashion-MNIST models, whose runaway samples
otherwise took 2300 steps to overflow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Denoise = Callable[[torch.Tensor], torch.Tensor]
DIVERGED = 10.0  # an effective noise level above this many sigma_0: the ascent has diverged


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of the sampler; noise levels in [0, 1] pixel units."""

    sigma_0: float = 1.0  # initial noise level
    sigma_L: float = 0.01  # noqa: N815 (the paper's name) stop below this effective noise level
    h0: float = 0.01  # initial step size
    beta: float = 0.5  # 1 - fraction of injected noise
    fixed_step: bool = False  # h_t = h0 at every step
    max_steps: int = 5000

    def __post_init__(self) -> None:
        if not 0 < self.sigma_L < self.sigma_0:
            raise ValueError(f"need 0 < sigma_L < sigma_0, got {self.sigma_L}, {self.sigma_0}")
        if not 0 < self.h0 <= 1:
            raise ValueError(f"h0 must be in (0, 1], got {self.h0}")
        if not 0 < self.beta <= 1:
            raise ValueError(f"beta must be in (0, 1], got {self.beta}")
        if self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")

    def step_size(self, t: int) -> float:
        """h_t, for t = 1, 2, ..."""
        return self.h0 if self.fixed_step else self.h0 * t / (1 + self.h0 * (t - 1))


# Named settings. "ks2021": the demo of Kadkhodaie & Simoncelli (2021), quick synthesis.
# "representation": the authors' unconditional samples of the representation paper
# (22_representation_in_UNet_denoiser/code/generate_samples_unconditional.py: sig_0 = 3, fixed
# h = 0.01, beta = 0.05, sig_L = 0.04, max_T = 20000); their loop also re-measures sigma after
# each step, which changes when a sample stops by one step at most.
SAMPLER_PRESETS: dict[str, SamplerConfig] = {
    "ks2021": SamplerConfig(sigma_0=1.0, sigma_L=0.01, h0=0.01, beta=0.5, max_steps=5000),
    "representation": SamplerConfig(
        sigma_0=3.0, sigma_L=0.04, h0=0.01, beta=0.05, fixed_step=True, max_steps=20000
    ),
}


@dataclass
class Samples:
    """Sampler output: the images f(y) at each sample's last step, the effective noise level of
    every sample at every step (NaN once finished), and the number of steps each sample took."""

    images: torch.Tensor
    sigmas: torch.Tensor  # (steps, B)
    steps: torch.Tensor  # (B,)
    finished: torch.Tensor  # (B,) bool: reached sigma_L within max_steps (and never diverged)


class SampleNoise:
    """Noise seeded by (seed, id): a sample's noise depends on its id only, not on the batch it is
    drawn in nor on when the others finish.

    Ids are grouped in aligned blocks of ``BLOCK`` (ids 0-15, 16-31, ...), one generator per block
    seeded by (seed, block); every call draws the whole block of every block present and hands
    each sample its row. A sample's t-th draw is thus the same in any batch, while a call costs
    one draw per block instead of one per sample (1500 samples: 94 draws, not 1500).
    """

    BLOCK = 16

    def __init__(self, seed: int, ids: Sequence[int], device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        ids_t = torch.as_tensor(list(ids), dtype=torch.long)
        blocks = sorted({int(v) for v in (ids_t // self.BLOCK).tolist()})
        self.generators = []
        for blk in blocks:
            g = torch.Generator(device=self.device)
            g.manual_seed(seed * 1_000_003 + blk + 7)
            self.generators.append(g)
        position = {blk: k for k, blk in enumerate(blocks)}
        rows = [position[int(i) // self.BLOCK] * self.BLOCK + int(i) % self.BLOCK for i in ids_t]
        self.rows = torch.tensor(rows, dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return len(self.rows)

    def randn(self, shape: Sequence[int], idx: torch.Tensor | None = None) -> torch.Tensor:
        """One draw of ``shape`` for each sample in ``idx`` (default: all), stacked."""
        draws = torch.cat(
            [
                torch.randn(self.BLOCK, *shape, generator=g, device=self.device)
                for g in self.generators
            ]
        )
        return draws[self.rows if idx is None else self.rows[idx]]


def effective_sigma(residual: torch.Tensor) -> torch.Tensor:
    """||d|| / sqrt(N) per sample of a (B, ...) residual: the noise level a blind denoiser sees."""
    flat = residual.flatten(1).float()
    return flat.norm(dim=1) / math.sqrt(flat.shape[1])


def sample(
    denoise: Denoise,
    shape: tuple[int, ...],
    cfg: SamplerConfig = SamplerConfig(),
    mean: float | torch.Tensor = 0.5,
    seed: int = 0,
    ids: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """Draw ``shape[0]`` samples of shape ``shape[1:]`` (see the module docstring).

    ``denoise(y) -> x_hat`` is called without gradients on the unfinished samples only. Sample i
    draws its own noise stream (:class:`SampleNoise`), seeded by (``seed``, ``ids[i]``; default
    ids 0..B-1): the same seed and id give the same sample in any batch. ``progress(done, total)`` is called
    after each step.
    """
    device = torch.device(device)
    b = shape[0]
    noise = SampleNoise(seed, range(b) if ids is None else ids, device)
    if len(noise) != b:
        raise ValueError(f"{len(noise)} ids for {b} samples")
    m = torch.as_tensor(mean, dtype=torch.float32, device=device)
    y = m + cfg.sigma_0 * noise.randn(shape[1:])
    x_hat = y.clone()
    active = torch.ones(b, dtype=torch.bool, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    steps = torch.zeros(b, dtype=torch.long, device=device)
    history = []
    for t in range(1, cfg.max_steps + 1):
        idx = active.nonzero().squeeze(1)
        with torch.no_grad():
            est = denoise(y[idx]).float()
        d = est - y[idx]
        sigma = effective_sigma(d)
        record = torch.full((b,), float("nan"), device=device)
        record[idx] = sigma
        history.append(record)
        diverged = ~(sigma <= DIVERGED * cfg.sigma_0)  # also NaN and inf
        x_hat[idx[~diverged]] = est[~diverged]
        steps[idx] = t
        done = sigma < cfg.sigma_L
        finished[idx[done]] = True
        stop = done | diverged
        go = idx[~stop]
        if len(go):
            y[go] = ks_step(
                y[go],
                d[~stop],
                sigma[~stop],
                cfg.step_size(t),
                cfg.beta,
                noise.randn(shape[1:], go),
            )
        active[idx[stop]] = False
        if progress is not None:
            progress(int((~active).sum()), b)
        if not active.any():
            break
    return Samples(x_hat, torch.stack(history), steps, finished)


def ks_step(
    y: torch.Tensor, d: torch.Tensor, sigma: torch.Tensor, h: float, beta: float, z: torch.Tensor
) -> torch.Tensor:
    """y + h d + gamma z with gamma = sigma sqrt((1 - beta h)^2 - (1 - h)^2) (Kadkhodaie &
    Simoncelli 2021): the noise of y falls by (1 - beta h); ``sigma`` is per sample (B,)."""
    gamma = sigma * math.sqrt(max((1 - beta * h) ** 2 - (1 - h) ** 2, 0.0))
    return y + h * d + gamma.view(-1, *[1] * (y.dim() - 1)) * z
