"""The lab's bias-free CNN denoiser (BF-CNN; Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda 2020).

20 layers of 3x3 convolutions with 64 channels and no biases: layer 1 is conv + ReLU; layers 2..19
are conv, :class:`~denoiserlens.models.norms.BatchScaleNorm`, ReLU; layer 20 is a conv to the image
channels. The network predicts the *residual* (the noise); the clean estimate is y - f(y).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from denoiserlens.models.base import BlockIO, Denoiser
from denoiserlens.models.norms import BatchScaleNorm


class BFCNN(Denoiser):
    """Blocks are the layers, named L1..L{num_layers}; the last block's output is the residual."""

    arch = "bfcnn"

    def __init__(self, image_channels: int = 1, num_layers: int = 20, width: int = 64) -> None:
        super().__init__()
        self.image_channels = image_channels
        self.num_layers = num_layers
        self.width = width
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(image_channels, width, 3, padding=1, bias=False), nn.ReLU())
        ]
        for _ in range(num_layers - 2):
            layers.append(
                nn.Sequential(
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    BatchScaleNorm(width),
                    nn.ReLU(),
                )
            )
        layers.append(nn.Conv2d(width, image_channels, 3, padding=1, bias=False))
        self.layers = nn.ModuleList(layers)

    @property
    def block_names(self) -> list[str]:
        return [f"L{i + 1}" for i in range(self.num_layers)]

    def arch_config(self) -> dict[str, Any]:
        return {
            "arch": "bfcnn",
            "image_channels": self.image_channels,
            "num_layers": self.num_layers,
            "width": self.width,
        }

    def iter_blocks(self, y: torch.Tensor) -> Iterator[BlockIO]:
        x = y
        for name, layer in zip(self.block_names, self.layers, strict=True):
            out = layer(x)
            yield BlockIO(name, x, out)
            x = out

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - super().forward(y)

    def load_lab_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the lab's published state dict (keys conv_layers.i.weight, running_sd.i, gammas.i)."""
        own: dict[str, torch.Tensor] = {}
        for i in range(self.num_layers):
            conv = "0." if i < self.num_layers - 1 else ""
            own[f"layers.{i}.{conv}weight"] = state[f"conv_layers.{i}.weight"]
        for j in range(self.num_layers - 2):
            own[f"layers.{j + 1}.1.running_sd"] = state[f"running_sd.{j}"]
            own[f"layers.{j + 1}.1.gain"] = state[f"gammas.{j}"]
        self.load_state_dict(own, strict=True)
