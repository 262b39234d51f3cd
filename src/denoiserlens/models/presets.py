"""Named architectures. ``paper`` is Appendix A; the others are smaller CPU variants of one class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from denoiserlens.errors import UserError
from denoiserlens.models.unet import UNetConfig
from denoiserlens.settings import setting

PRESETS: dict[str, dict[str, Any]] = {
    # Appendix A: 64-128-256-512, convolutions 2 / 3 / 6 per encoder / middle / decoder block.
    "paper": dict(
        channels=(64, 128, 256, 512), enc_convs=(2, 2, 2), mid_convs=3, dec_convs=(6, 6, 6)
    ),
    # The authors' variant with 5, 6, 7 decoder convolutions (D1, D2, D3).
    "paper-567": dict(
        channels=(64, 128, 256, 512), enc_convs=(2, 2, 2), mid_convs=3, dec_convs=(5, 6, 7)
    ),
    # Half width, the same depth: the CPU workhorse.
    "small": dict(
        channels=(32, 64, 128, 256), enc_convs=(2, 2, 2), mid_convs=3, dec_convs=(6, 6, 6)
    ),
    # Half width with shallow decoders: about 4x cheaper than "small" to train.
    "compact": dict(
        channels=(32, 64, 128, 256), enc_convs=(2, 2, 2), mid_convs=2, dec_convs=(3, 3, 3)
    ),
    # For tests and smoke runs: seconds on a CPU.
    "tiny": dict(channels=(8, 16, 32, 64), enc_convs=(1, 1, 1), mid_convs=2, dec_convs=(2, 2, 2)),
}


def preset_config(name: str, image_channels: int = 1, **overrides: Any) -> UNetConfig:
    """The :class:`UNetConfig` of preset ``name``, with ``overrides`` (e.g. bias=False, norm="batch")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return UNetConfig(image_channels=image_channels, **{**PRESETS[name], **overrides})


@dataclass(frozen=True)
class ArchChoice:
    """The architecture of a run to train: a preset and the settings that vary around it."""

    preset: str = setting("small", "Architecture: paper, paper-567, small, compact, tiny.")
    bias: bool = setting(True, "Convolution biases (bias-free needs --norm batch or none).")
    norm: str = setting(
        "layer",
        "layer (the paper's, with biases), instance, batch (BF-CNN's, bias-free), none.",
        choices=("layer", "instance", "batch", "none"),
    )
    residual: bool = setting(
        False, "Parametrize x_hat = y + net(y) (identity at init; trains faster). Paper: off."
    )

    def config(self, image_channels: int) -> UNetConfig:
        try:
            return preset_config(
                self.preset, image_channels, bias=self.bias, norm=self.norm, residual=self.residual
            )
        except ValueError as e:
            raise UserError(str(e)) from None
