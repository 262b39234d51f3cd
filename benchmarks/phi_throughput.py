"""phi throughput (issue 3): images/s of phi(x, sigma) with n_noise = 20 at 64x64, paper preset,
our path (encoder and middle block only; fp32, channels_last, bf16) against the naive baseline
measured in the same run (the whole network run on the tiled noisy batch, phi read by a hook on
the middle block, as in the authors' code). Also the achieved GFLOP/s of each path against the
machine's matrix-multiply peak, measured in the same run.

    .venv/bin/python benchmarks/phi_throughput.py [--images 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from denoiserlens.models import UNet, preset_config
from denoiserlens.represent import draw_noise, phi


def conv_flops(model: UNet, x: torch.Tensor, stop_after: str | None) -> float:
    """FLOPs (2 x multiply-adds) of the convolutions run for ``x`` up to ``stop_after``."""
    total = 0.0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.weight.shape[2] * mod.weight.shape[3]
        c_in = mod.in_channels
        total += 2.0 * c_in * mod.out_channels * k * out.shape[2] * out.shape[3] * out.shape[0]
        if isinstance(mod, nn.ConvTranspose2d):  # each input pixel feeds k outputs, once
            total -= 2.0 * c_in * mod.out_channels * k * out.shape[2] * out.shape[3] * out.shape[0]
            total += 2.0 * c_in * mod.out_channels * k * inp[0].shape[2] * inp[0].shape[3]

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with torch.no_grad():
        if stop_after:
            model.blocks_until(x, stop_after)
        else:
            model(x)
    for h in handles:
        h.remove()
    return total


def naive_phi(model: UNet, x: torch.Tensor, sigma: float, n_noise: int) -> torch.Tensor:
    """The baseline: full forward pass of the tiled noisy batch, middle block read by a hook."""
    got = {}
    handle = model.blocks["M"].register_forward_hook(lambda m, i, o: got.update(M=o))
    n, c, h, w = x.shape
    y = x.repeat_interleave(n_noise, 0) + sigma * draw_noise((c, h, w), 0, range(n), range(n_noise))
    with torch.no_grad():
        model(y)
    handle.remove()
    return got["M"].mean(dim=(2, 3)).view(n, n_noise, -1).mean(1)


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-noise", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = UNet(preset_config("paper")).eval()
    x = torch.rand(args.images, 1, 64, 64)
    sigma, n = 0.2, args.n_noise
    tiled = x.repeat_interleave(n, 0)
    flops_ours = conv_flops(model, tiled, "M")
    flops_full = conv_flops(model, tiled, None)
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak "
        f"{peak32:.0f} GFLOP/s fp32, {peak16:.0f} GFLOP/s bf16"
    )
    print(
        f"conv GFLOP per image (x{n} draws): encoder+M {flops_ours / args.images / 1e9:.2f}, "
        f"whole network {flops_full / args.images / 1e9:.2f}"
    )
    t_naive = timed(lambda: naive_phi(model, x, sigma, n), args.repeats)
    base = args.images / t_naive
    print(f"{'path':<34}{'images/s':>9}{'x naive':>9}{'GFLOP/s':>9}")
    print(
        f"{'naive: whole network, fp32':<34}{base:9.2f}{1.0:9.2f}{flops_full / t_naive / 1e9:9.1f}"
    )
    ours = {
        "ours: encoder+M, fp32": dict(),
        "ours: encoder+M, channels_last": dict(channels_last=True),
        "ours: encoder+M, bf16": dict(bf16=True),
        "ours: encoder+M, bf16+channels_last": dict(bf16=True, channels_last=True),
    }
    for name, kw in ours.items():
        if kw.get("channels_last"):
            model.to(memory_format=torch.channels_last)
        t = timed(lambda kw=kw: phi(model, x, sigma, n, **kw), args.repeats)
        model.to(memory_format=torch.contiguous_format)
        print(
            f"{name:<34}{args.images / t:9.2f}{args.images / t / base:9.2f}"
            f"{flops_ours / t / 1e9:9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
