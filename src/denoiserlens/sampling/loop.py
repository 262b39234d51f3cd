"""The one sampling loop: a conditional denoiser, a schedule and per-sample stopping, composed
as k-diffusion and EDM compose theirs.

Unconditional sampling (Appendix C, Figure 19), Algorithm 1 (Figure 7) and its adaptive variant
are this loop with different parts:

- the **denoiser** maps the current images y to the point the step starts from and its estimate:
  :func:`blind` (y itself and f(y)), or a guided one (``reconstruct.GuidedDenoiser``: Algorithm
  2 moves y so that phi(y) matches a target, then f denoises it);
- the **schedule** says when a sample is done and takes the step to the next noise level: the
  adaptive step of Kadkhodaie & Simoncelli (``unconditional.SamplerConfig``) or a fixed list of
  levels (``reconstruct.Levels``: Algorithm 1 as printed, or the ancestral step).

From y_0 = m + sigma_0 z (m the data mean), each step t, on the unfinished samples only:

    y, x_hat = denoiser(y)          the start of the step and the estimate
    d = x_hat - y,  sigma_t = ||d|| / sqrt(N)
    stop if schedule.finished(t, sigma_t), else y <- schedule.advance(t, y, x_hat, sigma_t, z_t)

A sample's result is its last estimate. A sample whose effective noise level exceeds
``DIVERGED`` sigma_0 or stops being finite is stopped too, unfinished, and keeps its last
estimate below that level: a denoiser that does not contract makes the ascent diverge (seen with
a model trained on one image, and with beta 0.05 on Fashion-MNIST models).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch

DIVERGED = 10.0  # an effective noise level above this many sigma_0: the ascent has diverged


class Denoised(NamedTuple):
    """One step's denoising of the unfinished samples: where the step starts (the guided images
    under guidance, else y itself), the estimate, and per-sample diagnostics ((n,) each)."""

    y: torch.Tensor
    estimate: torch.Tensor
    info: dict[str, torch.Tensor]


class ConditionalDenoiser(Protocol):
    def __call__(self, y: torch.Tensor, idx: torch.Tensor, level: torch.Tensor) -> Denoised:
        """Denoise the samples ``idx`` (global indices), currently ``y`` at noise ``level``."""
        ...


class Schedule(Protocol):
    sigma_0: float
    max_steps: int

    def finished(self, t: int, sigma: torch.Tensor) -> torch.Tensor:
        """Per sample (bool): the estimate of step t (effective noise ``sigma``) is the sample."""
        ...

    def advance(
        self, t: int, y: torch.Tensor, est: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of step t + 1 and their noise level, given fresh noise ``z``."""
        ...


def blind(denoise: Callable[[torch.Tensor], torch.Tensor]) -> ConditionalDenoiser:
    """The blind denoiser as the loop's denoiser: no gradients, y left where it is."""

    def call(y: torch.Tensor, idx: torch.Tensor, level: torch.Tensor) -> Denoised:
        with torch.no_grad():
            return Denoised(y, denoise(y).float(), {})

    return call


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


def scatter_rows(b: int, idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A (b,) row holding ``values`` at ``idx`` and NaN elsewhere (finished samples)."""
    return torch.full((b,), float("nan"), device=values.device).index_copy_(0, idx, values.float())


@dataclass
class Samples:
    """The loop's output: the images (each sample's last estimate), the effective noise level of
    every sample at every step (NaN once finished), the number of steps each took, whether it
    finished (and never diverged), and the denoiser's diagnostics per step, (steps, B) each."""

    images: torch.Tensor
    sigmas: torch.Tensor  # (steps, B)
    steps: torch.Tensor  # (B,)
    finished: torch.Tensor  # (B,) bool
    records: dict[str, torch.Tensor] = field(default_factory=dict)


def run_chain(
    denoiser: ConditionalDenoiser,
    schedule: Schedule,
    shape: tuple[int, ...],
    noise: SampleNoise,
    mean: float | torch.Tensor = 0.5,
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """Draw ``shape[0]`` samples of shape ``shape[1:]`` (see the module docstring), sample i with
    its own noise stream, row i of ``noise``. ``progress(done, total)`` is called each step."""
    device = noise.device
    b = shape[0]
    if len(noise) != b:
        raise ValueError(f"{len(noise)} noise streams for {b} samples")
    m = torch.as_tensor(mean, dtype=torch.float32, device=device)
    y = m + schedule.sigma_0 * noise.randn(shape[1:])
    x_hat = y.clone()
    level = torch.full((b,), float(schedule.sigma_0), device=device)
    active = torch.ones(b, dtype=torch.bool, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    steps = torch.zeros(b, dtype=torch.long, device=device)
    history: list[torch.Tensor] = []
    records: dict[str, list[torch.Tensor]] = defaultdict(list)
    for t in range(1, schedule.max_steps + 1):
        idx = active.nonzero().squeeze(1)
        start, est, info = denoiser(y[idx], idx, level[idx])
        y[idx] = start
        sigma = effective_sigma(est - start)
        history.append(scatter_rows(b, idx, sigma))
        for key, values in info.items():
            records[key].append(scatter_rows(b, idx, values))
        diverged = ~(sigma <= DIVERGED * schedule.sigma_0)  # also NaN and inf
        x_hat[idx[~diverged]] = est[~diverged]
        steps[idx] = t
        done = schedule.finished(t, sigma) & ~diverged
        finished[idx[done]] = True
        stop = done | diverged
        go = idx[~stop]
        if len(go):
            z = noise.randn(shape[1:], go)
            y[go], level[go] = schedule.advance(t, start[~stop], est[~stop], sigma[~stop], z)
        active[idx[stop]] = False
        if progress is not None:
            progress(int((~active).sum()), b)
        if not active.any():
            break
    stacked = {key: torch.stack(rows) for key, rows in records.items()}
    return Samples(x_hat, torch.stack(history), steps, finished, stacked)
