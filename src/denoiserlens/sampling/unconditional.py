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

The loop (per-sample stopping, noise streams, divergence) is ``loop.py``'s; this module gives
it the adaptive schedule. A sample stops once sigma_t < sigma_L and is returned as f(y) at that
step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from denoiserlens.sampling.loop import SampleNoise, Samples, Schedule, blind, run_chain

Denoise = Callable[[torch.Tensor], torch.Tensor]


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

    def finished(self, t: int, sigma: torch.Tensor) -> torch.Tensor:
        """The schedule's stopping rule: the effective noise level is below sigma_L."""
        return sigma < self.sigma_L

    def advance(
        self, t: int, y: torch.Tensor, est: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step of Kadkhodaie & Simoncelli (:func:`ks_step`) and the noise level it aims at,
        (1 - beta h_t) sigma_t."""
        h = self.step_size(t)
        return ks_step(y, est - y, sigma, h, self.beta, z), (1 - self.beta * h) * sigma


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


def sample(
    denoise: Denoise,
    shape: tuple[int, ...],
    cfg: Schedule = SamplerConfig(),
    mean: float | torch.Tensor = 0.5,
    seed: int = 0,
    ids: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """Draw ``shape[0]`` samples of shape ``shape[1:]`` (see the module docstring).

    ``denoise(y) -> x_hat`` is called without gradients on the unfinished samples only. Sample i
    draws its own noise stream (:class:`~denoiserlens.sampling.loop.SampleNoise`), seeded by
    (``seed``, ``ids[i]``; default ids 0..B-1): the same seed and id give the same sample in any
    batch. ``cfg`` is the adaptive schedule, or any other (e.g. ``reconstruct.Levels``: fixed
    levels). ``progress(done, total)`` is called after each step.
    """
    b = shape[0]
    noise = SampleNoise(seed, range(b) if ids is None else ids, device)
    if len(noise) != b:
        raise ValueError(f"{len(noise)} ids for {b} samples")
    return run_chain(blind(denoise), cfg, shape, noise, mean, progress)


def ks_step(
    y: torch.Tensor, d: torch.Tensor, sigma: torch.Tensor, h: float, beta: float, z: torch.Tensor
) -> torch.Tensor:
    """y + h d + gamma z with gamma = sigma sqrt((1 - beta h)^2 - (1 - h)^2) (Kadkhodaie &
    Simoncelli 2021): the noise of y falls by (1 - beta h); ``sigma`` is per sample (B,)."""
    gamma = sigma * math.sqrt(max((1 - beta * h) ** 2 - (1 - h) ** 2, 0.0))
    return y + h * d + gamma.view(-1, *[1] * (y.dim() - 1)) * z
