"""Normalizations without mean subtraction or shift (paper Appendix A; Mohan et al. 2020, bias-free CNNs).

Each divides by a standard deviation and multiplies by a learned per-channel gain. They differ in
what the standard deviation is taken over:

- :class:`LayerScaleNorm` ("layer", the paper's UNet): each sample's std over (C, H, W). Identical in
  training and evaluation and independent of the other images in the batch. It makes the layer's output
  invariant to the scale of its input, so a bias-free network built from it would be scale *invariant*
  (f(a y) = f(y)), not homogeneous; :class:`~denoiserlens.models.unet.UNet` therefore refuses
  ``bias=False`` with ``norm="layer"``.
- :class:`InstanceScaleNorm` ("instance", an option of the authors' ``UNet_flex``): each sample's
  and channel's std over (H, W). Its state dict is the layer norm's (one gain per channel), so a
  checkpoint cannot tell the two apart.
- :class:`BatchScaleNorm` ("batch", the lab's BF-CNN): per-channel std over (N, H, W) of the batch in
  training, a running estimate in evaluation. In evaluation it is a fixed linear map, so a bias-free
  network is positively homogeneous, f(a y) = a f(y): the property the geometry tools rely on.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5
# The per-sample norms divide by std + EPS, as the authors' ``normalization`` class in
# texture_model/code/network.py does (``x.std(unbiased=False) + 1e-5``). The batch norm adds EPS to
# the variance, as theirs does too. The difference matters at initialization: the small gains make
# the pre-norm variance 5e-7 to 1.2e-5 on the ``small`` preset, and 1 / sqrt(var + EPS) would then
# scale instead of normalize.
_TINY_VAR = 1e-24  # sqrt's gradient is infinite at 0: a constant input would give NaN gradients


def small_gains(channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The lab's initial gains: N(0, (2/(9*64))^2) clamped to +-0.025, shape (1, C, 1, 1)."""
    g = torch.randn(1, channels, 1, 1, generator=generator) * (2.0 / 9.0 / 64.0)
    return g.clamp_(-0.025, 0.025)


def float_var(x: torch.Tensor, dim: tuple[int, ...]) -> torch.Tensor:
    """Biased variance over ``dim`` in float32 (keepdim), as the mean squared deviation from the
    mean: the same value as ``torch.var`` (two passes, no cancellation), faster on CPU."""
    f = x.float()
    return (f - f.mean(dim=dim, keepdim=True)).square().mean(dim=dim, keepdim=True)


def float_std(x: torch.Tensor, dim: tuple[int, ...]) -> torch.Tensor:
    """Biased standard deviation over ``dim`` in float32 (keepdim); its gradient stays finite where
    the input is constant (the variance is floored at 1e-24, i.e. the std at 1e-12, far below EPS)."""
    return float_var(x, dim).clamp_min(_TINY_VAR).sqrt()


class LayerScaleNorm(nn.Module):
    """x / (std_{C,H,W}(x) + EPS) * gain[c], per sample; the same in training and evaluation."""

    dims: tuple[int, ...] = (1, 2, 3)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(small_gains(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The statistic is computed in float32 even under bf16 autocast (a bf16 variance of 10^5
        # values loses most of its digits); the scale is applied in x's own dtype.
        return x * (self.gain / (float_std(x, self.dims) + EPS)).to(x.dtype)


class InstanceScaleNorm(LayerScaleNorm):
    """x / (std_{H,W}(x) + EPS) * gain[c], per sample and channel."""

    dims = (2, 3)


class BatchScaleNorm(nn.Module):
    """x / sd[c] * gain[c]: sd from the batch (N, H, W) in training, a running average in evaluation."""

    def __init__(self, channels: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.gain = nn.Parameter(small_gains(channels))
        self.register_buffer("running_sd", torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            sd = torch.sqrt(float_var(x, (0, 2, 3)) + EPS)
            with torch.no_grad():
                self.running_sd.lerp_(sd, self.momentum)
        else:
            sd = self.running_sd
        return x * (self.gain / sd).to(x.dtype)


NORMS: dict[str, type[nn.Module]] = {
    "layer": LayerScaleNorm,
    "instance": InstanceScaleNorm,
    "batch": BatchScaleNorm,
}


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build the normalization named ``kind`` ("layer", "instance", "batch" or "none")."""
    if kind == "none":
        return nn.Identity()
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose from {sorted(NORMS) + ['none']}")
    return NORMS[kind](channels)
