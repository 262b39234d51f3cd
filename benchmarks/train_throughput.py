"""Training throughput (images/s): paper preset at 64x64 and small preset at 32x32, gray,
fp32 vs bf16 autocast, channels_last off and on. One optimizer step = forward, MSE, backward, Adam.

    .venv/bin/python benchmarks/train_throughput.py [--steps 8] [--repeats 3] [--norms | --compile]

Prints the median images/s over repeats (each the median of the timed steps) and the ratio to fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from denoiserlens.models import UNet, preset_config
from denoiserlens.train.noise import add_noise


def timed_steps(
    preset: str,
    size: int,
    batch: int,
    bf16: bool,
    cl: bool,
    steps: int,
    compile_net: bool = False,
    device: str = "cpu",
    **arch,
) -> tuple[float, float]:
    """(images/s over the timed steps, seconds of the first step: torch.compile's warm-up)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = UNet(preset_config(preset, **arch)).train().to(dev)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_net else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size, device=dev)
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        y = add_noise(x, 0.1)
        if cl:
            y = y.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(y)
        loss = F.mse_loss(out.float(), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times[2:]), times[0]  # two warm-up steps


def images_per_second(
    preset: str, size: int, batch: int, bf16: bool, cl: bool, steps: int, **arch
) -> float:
    return timed_steps(preset, size, batch, bf16, cl, steps, **arch)[0]


def compile_table(steps: int, repeats: int) -> None:
    """Eager against torch.compile, same settings, measured one after the other."""
    print(
        "| preset | size | batch | bf16 + channels_last | eager img/s | compiled img/s | gain | "
        "first compiled step (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for preset, size, batch in (("paper", 64, 16), ("small", 32, 64)):
        for fast in (False, True):
            eager = [
                images_per_second(preset, size, batch, fast, fast, steps) for _ in range(repeats)
            ]
            compiled = [
                timed_steps(preset, size, batch, fast, fast, steps, compile_net=True)
                for _ in range(repeats)
            ]
            e, c = statistics.median(eager), statistics.median(r for r, _ in compiled)
            print(
                f"| {preset} | {size} | {batch} | {fast} | {e:.1f} | {c:.1f} | {c / e:.2f}x | "
                f"{compiled[0][1]:.0f} |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--norms", action="store_true", help="Compare normalizations (paper, 64x64).")
    ap.add_argument("--compile", action="store_true", help="Eager against torch.compile.")
    args = ap.parse_args()
    if args.compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()  # a cold warm-up, as at first
        compile_table(args.steps, args.repeats)
        return
    if args.norms:
        for norm, bias in (("layer", True), ("none", True), ("batch", False)):
            for bf16, cl in ((False, False), (True, True)):
                runs = [
                    images_per_second("paper", 64, 16, bf16, cl, args.steps, norm=norm, bias=bias)
                    for _ in range(args.repeats)
                ]
                print(
                    f"norm={norm:<6} bias={bias!s:<6} bf16={bf16!s:<6} channels_last={cl!s:<6}"
                    f"{statistics.median(runs):7.1f} images/s",
                    flush=True,
                )
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'preset':<8}{'size':>5}{'batch':>6}  {'bf16':<5}{'ch_last':<8}{'img/s':>8}{'x fp32':>8}"
    )
    for preset, size, batch in (("paper", 64, 16), ("small", 32, 64)):
        base = None
        for bf16, cl in ((False, False), (False, True), (True, False), (True, True)):
            runs = [
                images_per_second(preset, size, batch, bf16, cl, args.steps)
                for _ in range(args.repeats)
            ]
            med = statistics.median(runs)
            base = base or med
            print(
                f"{preset:<8}{size:>5}{batch:>6}  {bf16!s:<5}{cl!s:<8}{med:8.1f}{med / base:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
