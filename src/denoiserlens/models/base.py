"""The interface every denoiser in denoiserlens exposes: ``denoise(y) -> x_hat`` and named blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from denoiserlens.errors import UserError


class BlockIO(NamedTuple):
    """One block's input and output activations, shapes (N, C_in, H, W) and (N, C_out, H', W')."""

    name: str
    input: torch.Tensor
    output: torch.Tensor


class Denoiser(nn.Module):
    """A blind denoiser: y (N, C, H, W) in [0, 1] pixel units -> clean estimate x_hat(y).

    Subclasses implement :meth:`iter_blocks`, which yields every named block's input and output in
    computation order; the forward pass is the last block's output. Stopping the iteration early
    (e.g. after the middle block) computes nothing further.
    """

    arch: str = ""
    image_channels: int = 1
    size_multiple: int = 1

    def iter_blocks(self, y: torch.Tensor) -> Iterator[BlockIO]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def block_names(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def middle_block(self) -> str:
        """The block whose noise-averaged means are phi: "M" in the UNet (section 2.3)."""
        return self.block_names[len(self.block_names) // 2]

    def arch_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """JSON-able description from which :func:`denoiserlens.models.build_model` rebuilds this."""
        raise NotImplementedError

    def check_input(self, y: torch.Tensor) -> None:
        """Raise :class:`UserError` if ``y`` is not an (N, C, H, W) batch this model accepts."""
        if y.ndim != 4:
            raise UserError(f"expected images of shape (N, C, H, W), got {tuple(y.shape)}")
        if y.shape[1] != self.image_channels:
            raise UserError(
                f"the model takes {self.image_channels}-channel images, got {y.shape[1]} channels"
            )
        m = self.size_multiple
        if y.shape[-2] % m or y.shape[-1] % m:
            raise UserError(
                f"image size {y.shape[-2]}x{y.shape[-1]} is not divisible by {m} "
                f"(pad the images, e.g. --pad)"
            )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self.check_input(y)
        out = y
        for block in self.iter_blocks(y):
            out = block.output
        return out

    def denoise(self, y: torch.Tensor) -> torch.Tensor:
        """x_hat(y) = E[x | y] (Eq. 2), without gradients."""
        with torch.no_grad():
            return self(y)

    def residual(self, y: torch.Tensor) -> torch.Tensor:
        """s(y) = x_hat(y) - y = sigma^2 * score (Eq. 2): what samplers use."""
        return self(y) - y

    def block_means(
        self, y: torch.Tensor, stop_after: str | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Spatial means of every block's input and output channels, {name: ((N, C_in), (N, C_out))}.

        Outputs are taken after the ReLU, so the means are the paper's a_bar_j (section 2.1).
        With ``stop_after`` the blocks after it are not computed.
        """
        blocks = self.blocks_until(y, stop_after or self.block_names[-1])
        return {n: (b.input.mean(dim=(2, 3)), b.output.mean(dim=(2, 3))) for n, b in blocks.items()}

    def blocks_until(self, y: torch.Tensor, stop_after: str) -> dict[str, BlockIO]:
        """Every block up to and including ``stop_after``; later blocks are not computed."""
        if stop_after not in self.block_names:
            raise UserError(f"unknown block {stop_after!r}; this model has {self.block_names}")
        self.check_input(y)
        out: dict[str, BlockIO] = {}
        for block in self.iter_blocks(y):
            out[block.name] = block
            if block.name == stop_after:
                break
        return out
