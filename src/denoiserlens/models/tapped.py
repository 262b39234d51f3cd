"""Any network as a denoiser: its blocks are named submodules, read by forward hooks.

phi (section 2.3) and every per-block measure need only each block's input and output. A
:class:`TappedModel` takes them from submodules of any ``nn.Module`` by forward hooks, in the
order the forward pass runs them, and stops the forward pass once the last block asked for has
run: when only phi is wanted, the decoder is never computed. Our own :class:`UNet` tapped on
``blocks.E1`` ... ``blocks.D1`` gives exactly its own blocks (tested).

A noise-conditional network (a diffusion model's ``model(x, t)``, e.g. diffusers'
``UNet2DModel``) is a denoiser at a fixed noise level: :func:`at_noise_level` calls it with that
level and turns its output into x_hat, whether it predicts the clean image or the noise.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from denoiserlens.errors import UserError
from denoiserlens.models.base import BlockIO, Denoiser

Call = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class _StopForwardError(Exception):
    """Raised by the hook of the last block asked for: nothing after it is computed."""


def _plain_output(out: Any) -> torch.Tensor:
    """A network's output as a tensor: itself, the first of a tuple, or ``.sample`` (diffusers)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise UserError(f"the network's output is a {type(out).__name__}, not a tensor")


def at_noise_level(
    t: float | torch.Tensor, predicts: str = "x0", sigma: float | None = None
) -> Call:
    """Call a noise-conditional network ``net(y, t)`` at one level ``t`` (its own units: a
    timestep or a sigma) and return x_hat. ``predicts`` "x0": the output is x_hat; "epsilon":
    it is the noise, and x_hat = y - sigma * output, with ``sigma`` the noise level of y in the
    pixel units of y."""
    if predicts not in ("x0", "epsilon"):
        raise ValueError(f"predicts must be 'x0' or 'epsilon', got {predicts!r}")
    if predicts == "epsilon" and sigma is None:
        raise ValueError("a network that predicts the noise needs sigma to give x_hat")

    def call(net: nn.Module, y: torch.Tensor) -> torch.Tensor:
        level = torch.as_tensor(t, device=y.device).expand(len(y))
        out = _plain_output(net(y, level))
        return out if predicts == "x0" else y - sigma * out

    return call


class TappedModel(Denoiser):
    """``net`` as a :class:`Denoiser` whose blocks are its submodules ``taps``.

    ``taps``: submodule paths as in ``net.named_modules()`` (e.g. ``["down.0", "mid", "up.0"]``),
    the block names then being the paths, or a mapping {block name: path}, in computation order.
    ``middle``: the block whose noise-averaged means are phi (default: the middle one of the
    taps). ``call(net, y)`` computes x_hat (default ``net(y)``; see :func:`at_noise_level`).
    ``image_channels`` and ``size_multiple`` are what the network takes.
    """

    arch = "tapped"

    def __init__(
        self,
        net: nn.Module,
        taps: Sequence[str] | Mapping[str, str],
        middle: str | None = None,
        call: Call | None = None,
        image_channels: int = 1,
        size_multiple: int = 1,
    ) -> None:
        super().__init__()
        self.net = net
        paths = dict(taps) if isinstance(taps, Mapping) else {p: p for p in taps}
        if not paths:
            raise UserError("a tapped model needs at least one block")
        modules = dict(net.named_modules())
        for path in paths.values():
            if path not in modules:
                near = difflib.get_close_matches(path, list(modules), n=3)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                raise UserError(f"the network has no submodule {path!r}{hint}")
        self._paths = paths
        self._taps = {name: modules[path] for name, path in paths.items()}  # resolved once
        self._names = list(paths)
        if middle is not None and middle not in paths:
            raise UserError(f"the middle block {middle!r} is not one of the taps {self._names}")
        self._middle = middle or self._names[len(self._names) // 2]
        self._call = call
        self.image_channels = image_channels
        self.size_multiple = size_multiple

    @property
    def block_names(self) -> list[str]:
        return list(self._names)

    @property
    def middle_block(self) -> str:
        return self._middle

    def arch_config(self) -> dict[str, Any]:
        """A description for the record (a store's metadata, a weights hash); denoiserlens cannot
        rebuild the network from it."""
        net = type(self.net).__qualname__
        return {"arch": self.arch, "net": net, "taps": self._paths, "middle": self._middle}

    def _run(self, y: torch.Tensor) -> torch.Tensor:
        return _plain_output(self.net(y)) if self._call is None else self._call(self.net, y)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self.check_input(y)
        return self._run(y)

    def _tapped(self, y: torch.Tensor, stop_after: str | None) -> dict[str, BlockIO]:
        """Run the network with a hook on every tap, stopping after ``stop_after``."""
        seen: dict[str, BlockIO] = {}
        handles = []

        def hook(name: str):
            def record(_module: nn.Module, inputs: tuple, output: Any) -> None:
                seen[name] = BlockIO(name, inputs[0], _plain_output(output))
                if name == stop_after:
                    raise _StopForwardError

            return record

        for name, module in self._taps.items():
            handles.append(module.register_forward_hook(hook(name)))
        try:
            self._run(y)
        except _StopForwardError:
            pass
        finally:
            for h in handles:
                h.remove()
        wanted = (
            self._names if stop_after is None else self._names[: self._names.index(stop_after) + 1]
        )
        missing = [n for n in wanted if n not in seen]
        if missing:
            raise UserError(f"the forward pass never ran the tapped block(s) {missing}")
        return seen

    def blocks_until(self, y: torch.Tensor, stop_after: str) -> dict[str, BlockIO]:
        """Every tapped block up to ``stop_after``, in the order the network ran them; the
        forward pass stops there (nothing after it is computed)."""
        if stop_after not in self._names:
            raise UserError(f"unknown block {stop_after!r}; this model has {self._names}")
        self.check_input(y)
        return self._tapped(y, stop_after)

    def iter_blocks(self, y: torch.Tensor) -> Iterator[BlockIO]:
        yield from self._tapped(y, None).values()
