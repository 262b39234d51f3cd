"""Block summaries and the representation phi (paper sections 2.1 and 2.3).

a_bar_j(y) is the vector of spatial means of block j's output channels (after the ReLU), and
phi(x, sigma) = E_z[a_bar_M(x + sigma z)], estimated by the mean over ``n_noise`` draws of z
(the authors used 20; one draw at sigma = 0). Only the blocks up to the last one asked for are
computed: for phi, the encoder and the middle block, never the decoder.

Noise is reproducible per image: draw j of the image whose global row is g comes from a generator
seeded by (seed, g, j) on the images' device, so an image's phi does not depend on the batch it was
computed in, and the same draws serve every noise level. :func:`noisy_copies` is the one place that
draws them: the store, the targets of guided reconstruction (Algorithm 1) and the phi of Eq. 4's
pairs all go through it, so for one seed and row they are one phi.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

from denoiserlens.errors import UserError
from denoiserlens.models import BlockIO, Denoiser


def _check_sigma(sigma: float) -> None:
    if not sigma >= 0:  # also refuses NaN
        raise UserError(f"sigma must be >= 0, got {sigma}")


def draw_noise(
    shape: Sequence[int],
    seed: int,
    rows: Sequence[int],
    draws: Sequence[int],
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """z of shape (len(rows) * len(draws), *shape): image-major, draw-minor, one generator each,
    on ``device`` (CUDA draws differ from CPU draws for the same seed)."""
    device = torch.device(device)
    z = torch.empty(len(rows) * len(draws), *shape, device=device)
    k = 0
    for g in rows:
        for j in draws:
            gen = torch.Generator(device=device)
            gen.manual_seed((seed * 1_000_003 + int(g)) * 1_009 + int(j))
            z[k] = torch.randn(*shape, generator=gen, device=device)
            k += 1
    return z


def noisy_copies(
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    n_noise: int,
    seed: int = 0,
    rows: Sequence[int] | None = None,
    first_draw: int = 0,
) -> tuple[torch.Tensor, int]:
    """x + sigma z for draws ``first_draw ..`` of each image (image-major, draw-minor) and the
    number of draws: one where every sigma is 0. ``sigma`` is a number or one per image (N,);
    ``rows`` are the images' global row numbers (default 0..N-1), which seed the noise."""
    sig = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(len(x))
    if not bool((sig >= 0).all()):  # also refuses NaN
        raise UserError(f"sigma must be >= 0, got {sigma}")
    rows = list(range(len(x))) if rows is None else list(rows)
    draws = 1 if bool((sig == 0).all()) else n_noise
    y = x.repeat_interleave(draws, dim=0)
    if draws > 1 or bool(sig.any()):
        z = draw_noise(x.shape[1:], seed, rows, range(first_draw, first_draw + draws), x.device)
        y = y + sig.repeat_interleave(draws).view(-1, *[1] * (x.dim() - 1)) * z
    return y, draws


def _blocks_io(model: Denoiser, y: torch.Tensor, stop: str) -> dict[str, tuple[torch.Tensor, ...]]:
    return {k: (b.input, b.output) for k, b in model.blocks_until(y, stop).items()}


@functools.cache
def _compiled_blocks_io() -> Callable[..., dict[str, tuple[torch.Tensor, ...]]]:
    """One compiled function for every model (made on first use: importing dynamo takes ~1 s).
    Dynamo guards on the model's structure and the block to stop at, so models of one architecture
    share a graph (their weights are its inputs) and a new architecture or stopping block is one
    more compilation. Dynamic shapes: any batch and image size."""
    return torch.compile(_blocks_io, dynamic=True)


def blocks_until(
    model: Denoiser, y: torch.Tensor, stop: str, compile: bool = False
) -> dict[str, BlockIO]:
    """``model.blocks_until(y, stop)``, under ``torch.compile`` with ``compile``: the per-sample
    normalizations' statistics and scalings fuse into one pass each, where eager PyTorch makes
    five passes over every activation (BENCHMARKS.md, "phi compiled"). The first call of a
    process compiles for 5-20 s on a CPU."""
    if not compile:
        return model.blocks_until(y, stop)
    return {k: BlockIO(k, i, o) for k, (i, o) in _compiled_blocks_io()(model, y, stop).items()}


def _noisy_blocks(
    model, x, sigma, blocks, n_noise, seed, rows, first_draw, bf16, channels_last, compile=False
):
    """Run the blocks up to the last of ``blocks`` on the tiled noisy batch (image-major, draw-
    minor); returns ({name: BlockIO}, number of draws)."""
    unknown = [b for b in blocks if b not in model.block_names]
    if unknown:
        raise UserError(f"unknown block(s) {unknown}; this model has {model.block_names}")
    y, draws = noisy_copies(x, sigma, n_noise, seed, rows, first_draw)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    stop = max(blocks, key=model.block_names.index)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return blocks_until(model, y, stop, compile), draws


def _draw_mean(t: torch.Tensor, n: int, draws: int) -> torch.Tensor:
    """Average (N * draws, ...) over the draws of each image: (N, ...) float32."""
    return t.float().view(n, draws, *t.shape[1:]).mean(1)


def noise_averaged_means(
    model: Denoiser,
    x: torch.Tensor,
    sigma: float,
    blocks: Sequence[str] = ("M",),
    n_noise: int = 20,
    seed: int = 0,
    rows: Sequence[int] | None = None,
    first_draw: int = 0,
    inputs: bool = False,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
) -> dict[str, torch.Tensor]:
    """E_z[a_bar_j(x + sigma z)] for each block j in ``blocks``, each (N, d_j) float32.

    With ``inputs`` the spatial means of the blocks' inputs are returned too, keyed "j.in" (the
    outputs are keyed "j"). ``rows`` are the images' global row numbers (default 0..N-1): they
    seed the noise. Draws ``first_draw .. first_draw + n_noise - 1`` are used. With ``compile``
    the blocks run under ``torch.compile`` (:func:`blocks_until`).
    """
    out, draws = _noisy_blocks(
        model, x, sigma, blocks, n_noise, seed, rows, first_draw, bf16, channels_last, compile
    )
    n = len(x)
    result = {}
    for b in blocks:
        result[b] = _draw_mean(out[b].output.float().mean(dim=(2, 3)), n, draws)
        if inputs:
            result[f"{b}.in"] = _draw_mean(out[b].input.float().mean(dim=(2, 3)), n, draws)
    return result


def noise_averaged_maps(
    model: Denoiser,
    x: torch.Tensor,
    sigma: float,
    block: str | None = None,
    n_noise: int = 20,
    seed: int = 0,
    rows: Sequence[int] | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """E_z[a_j(x + sigma z)]: the activation maps of one block (default: the middle block),
    averaged over the same noise draws as phi, shape (N, d_j, h_j, w_j) float32."""
    block = block or model.middle_block
    out, draws = _noisy_blocks(model, x, sigma, (block,), n_noise, seed, rows, 0, bf16, False)
    return _draw_mean(out[block].output, len(x), draws)


def phi(
    model: Denoiser,
    x: torch.Tensor,
    sigma: float,
    n_noise: int = 20,
    seed: int = 0,
    rows: Sequence[int] | None = None,
    first_draw: int = 0,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
) -> torch.Tensor:
    """phi(x, sigma) = E_z[a_bar_M(x + sigma z)] (section 2.3), shape (N, d_M); x in [0, 1].

    M is ``model.middle_block`` (the UNet's middle block; the middle layer of a BF-CNN).
    """
    block = model.middle_block
    means = noise_averaged_means(
        model,
        x,
        sigma,
        (block,),
        n_noise,
        seed,
        rows,
        first_draw,
        bf16=bf16,
        channels_last=channels_last,
        compile=compile,
    )
    return means[block]
