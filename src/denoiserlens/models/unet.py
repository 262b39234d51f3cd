"""The paper's blind, fully convolutional UNet (Appendix A, Figure 9).

Encoder blocks E1..E3, middle block M, decoder blocks D3..D1. Every layer is a 3x3 convolution with
zero padding, a normalization (none after the very first convolution) and a ReLU; the last layer of
D1 is a plain convolution to the image channels. Each encoder block's output (before pooling) is
concatenated with the 2x2 transposed-convolution upsampling of the block below it in the decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from denoiserlens.models.base import BlockIO, Denoiser
from denoiserlens.models.norms import make_norm


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`.

    channels: widths of E1..E3 and then M (the decoder mirrors them). enc_convs and dec_convs list
    the convolutions per block from the finest level up: (E1, E2, E3) and (D1, D2, D3); D1's count
    includes its final plain convolution. The authors used dec_convs (6, 6, 6) and (5, 6, 7).
    With ``residual`` the network's last layer gives the correction x_hat - y (as in DnCNN and the
    lab's BF-CNN), so the untrained network is the identity; the output is x_hat either way.

    ``up_bias`` and ``out_bias`` put biases on the 2x2 up-convolutions (all but D1's, which never
    has one) and on D1's last convolution, as the authors' ``UNet_flex`` does
    (texture_model/code/network.py: ``upsample_with_bias`` defaults to ``bias``, the last conv
    takes ``bias``; 22_representation's main.py sets ``upsample_with_bias=False``). None follows
    ``bias``. Configurations saved before these fields existed load with both False.
    """

    image_channels: int = 1
    channels: tuple[int, ...] = (64, 128, 256, 512)
    enc_convs: tuple[int, ...] = (2, 2, 2)
    mid_convs: int = 3
    dec_convs: tuple[int, ...] = (6, 6, 6)
    bias: bool = True
    norm: str = "layer"
    kernel_size: int = 3
    residual: bool = False  # x_hat = y + D1 output (identity at initialization); paper: False
    up_bias: bool | None = None
    out_bias: bool | None = None

    def __post_init__(self) -> None:
        for name in ("up_bias", "out_bias"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.bias)
        if not self.bias and (self.up_bias or self.out_bias):
            raise ValueError("a bias-free UNet (bias=False) cannot have up_bias or out_bias")
        levels = len(self.channels) - 1
        if levels < 1 or len(self.enc_convs) != levels or len(self.dec_convs) != levels:
            raise ValueError(
                "channels must list one width per encoder level plus the middle block, and "
                "enc_convs/dec_convs one count per encoder level"
            )
        if min(self.enc_convs) < 1 or self.mid_convs < 1 or min(self.dec_convs) < 2:
            raise ValueError("need >= 1 conv per encoder/middle block and >= 2 per decoder block")
        if not self.bias and self.norm in ("layer", "instance"):
            raise ValueError(
                "a bias-free UNet with per-sample layer normalization is scale invariant "
                "(f(a y) = f(y)) and cannot denoise; use norm='batch' or 'none' for bias-free models"
            )

    @property
    def levels(self) -> int:
        return len(self.channels) - 1

    @property
    def size_multiple(self) -> int:
        return 2**self.levels

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "unet", **asdict(self)}


class ConvLayer(nn.Sequential):
    """conv -> normalization -> ReLU (the normalization is omitted where ``norm`` is "none")."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig, norm: str | None = None) -> None:
        k = cfg.kernel_size
        super().__init__(
            nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=cfg.bias),
            make_norm(norm or cfg.norm, c_out),
            nn.ReLU(inplace=True),
        )


def _stack(c_in: int, c_out: int, n: int, cfg: UNetConfig, first_norm: str | None = None):
    layers = [ConvLayer(c_in, c_out, cfg, first_norm)]
    layers += [ConvLayer(c_out, c_out, cfg) for _ in range(n - 1)]
    return layers


@dataclass
class _Names:
    enc: list[str] = field(default_factory=list)
    dec: list[str] = field(default_factory=list)


class UNet(Denoiser):
    """The paper's UNet; blocks named E1..E{L}, M, D{L}..D1 (L = 3 at the paper's size)."""

    arch = "unet"

    def __init__(self, config: UNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config or UNetConfig(**overrides)
        self.config = cfg
        self.image_channels = cfg.image_channels
        self.size_multiple = cfg.size_multiple
        L, ch = cfg.levels, cfg.channels
        self.names = _Names([f"E{i + 1}" for i in range(L)], [f"D{i}" for i in range(L, 0, -1)])

        blocks: dict[str, nn.Sequential] = {}
        c_in = cfg.image_channels
        for i, name in enumerate(self.names.enc):
            # The very first convolution sees the image and has no normalization.
            blocks[name] = nn.Sequential(
                *_stack(c_in, ch[i], cfg.enc_convs[i], cfg, "none" if i == 0 else None)
            )
            c_in = ch[i]
        blocks["M"] = nn.Sequential(*_stack(ch[L - 1], ch[L], cfg.mid_convs, cfg))
        self.up = nn.ModuleDict()
        for name in self.names.dec:
            i = int(name[1:]) - 1  # level index: D1 -> 0
            up_bias = cfg.up_bias and i > 0  # the authors' D1 up-convolution has no bias
            self.up[name] = nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2, bias=up_bias)
            n = cfg.dec_convs[i]
            if i == 0:  # D1 ends in a plain conv to the image channels
                k = cfg.kernel_size
                last = nn.Conv2d(ch[0], cfg.image_channels, k, padding=k // 2, bias=cfg.out_bias)
                blocks[name] = nn.Sequential(*_stack(2 * ch[0], ch[0], n - 1, cfg), last)
            else:
                blocks[name] = nn.Sequential(*_stack(2 * ch[i], ch[i], n, cfg))
        self.blocks = nn.ModuleDict(blocks)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_in) convolutions, zero biases, as in the authors' code."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def block_names(self) -> list[str]:
        return [*self.names.enc, "M", *self.names.dec]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        out = super().forward(y)
        return y + out if self.config.residual else out

    def arch_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def iter_blocks(self, y: torch.Tensor) -> Iterator[BlockIO]:
        skips = []
        x = y
        for name in self.names.enc:
            out = self.blocks[name](x)
            yield BlockIO(name, x, out)
            skips.append(out)
            x = F.avg_pool2d(out, 2)  # the block output is taken before pooling
        out = self.blocks["M"](x)
        yield BlockIO("M", x, out)
        for name, skip in zip(self.names.dec, reversed(skips), strict=True):
            inp = torch.cat([self.up[name](out), skip], dim=1)
            out = self.blocks[name](inp)
            yield BlockIO(name, inp, out)


def receptive_field(config: UNetConfig, block: str) -> int:
    """Receptive field (pixels) of one unit at the output of an encoder block or M.

    Each 3x3 conv adds (k - 1) * jump; each 2x2 average pooling adds jump and doubles it. The paper
    gives 84x84 at the end of M for its preset (Appendix A).
    """
    rf, jump = 1, 1
    for i in range(config.levels):
        rf += config.enc_convs[i] * (config.kernel_size - 1) * jump
        if block == f"E{i + 1}":
            return rf
        rf += jump
        jump *= 2
    if block != "M":
        raise ValueError(f"receptive_field is defined for encoder blocks and M, not {block!r}")
    return rf + config.mid_convs * (config.kernel_size - 1) * jump
