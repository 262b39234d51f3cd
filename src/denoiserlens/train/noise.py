"""What training draws per image: the noise level sigma, in [0, 1] pixel units (sigma 25/255 is
"sigma 25"), the noise, and an optional symmetry of the square (data augmentation)."""

from __future__ import annotations

import math

import torch

SIGMA_DISTRIBUTIONS = ("sqrt", "uniform", "log-uniform")


def sample_sigma(
    n: int,
    dist: str,
    lo: float,
    hi: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` noise levels in [lo, hi], shape (n,).

    - ``sqrt``: density proportional to 1/sqrt(sigma) (Appendix A.3), which emphasises small noise:
      sigma = (u (sqrt(hi) - sqrt(lo)) + sqrt(lo))^2 with u ~ U[0, 1];
    - ``uniform``: sigma ~ U[lo, hi];
    - ``log-uniform``: log sigma ~ U[log lo, log hi] (needs lo > 0).
    """
    if not 0 <= lo <= hi:
        raise ValueError(f"need 0 <= sigma_min <= sigma_max, got [{lo}, {hi}]")
    u = torch.rand(n, generator=generator, device=device)
    if dist == "sqrt":
        return (u * (math.sqrt(hi) - math.sqrt(lo)) + math.sqrt(lo)) ** 2
    if dist == "uniform":
        return lo + u * (hi - lo)
    if dist == "log-uniform":
        if lo <= 0:
            raise ValueError("log-uniform noise levels need sigma_min > 0")
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    raise ValueError(f"unknown sigma distribution {dist!r}; choose from {SIGMA_DISTRIBUTIONS}")


def add_noise(
    x: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """y = x + sigma z, z ~ N(0, Id); ``sigma`` a scalar or one value per image."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 1:
        sigma = sigma.view(-1, *([1] * (x.ndim - 1)))
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * z


def random_dihedral(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) under one of the 8 symmetries of the square, drawn uniformly:
    a rotation by k * 90 degrees, then a horizontal flip or not. Non-square images get only the
    4 symmetries that keep their shape (flips and the half turn)."""
    square = x.shape[-1] == x.shape[-2]
    mode = torch.randint(0, 8 if square else 4, (len(x),), generator=generator, device=x.device)
    out = torch.empty_like(x)
    for m in range(8 if square else 4):
        sel = (mode == m).nonzero().flatten()
        if len(sel):
            xs = x[sel]
            xs = torch.rot90(xs, m // 2 if square else 2 * (m // 2), dims=(-2, -1))
            out[sel] = torch.flip(xs, dims=(-1,)) if m % 2 else xs
    return out
