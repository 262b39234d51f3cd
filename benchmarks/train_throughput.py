"""Training throughput (images/s): paper preset at 64x64 and small preset at 32x32, gray,
fp32 vs bf16 autocast, channels_last off and on. One optimizer step = forward, MSE, backward, Adam.

    .venv/bin/python benchmarks/train_throughput.py [--steps 8] [--repeats 3] [--norms]

Prints the median images/s over repeats (each the median of the timed steps) and the ratio to fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from denoiserlens.models import UNet, preset_config
from denoiserlens.train.noise import add_noise


def images_per_second(
    preset: str, size: int, batch: int, bf16: bool, cl: bool, steps: int, **arch
) -> float:
    torch.manual_seed(0)
    model = UNet(preset_config(preset, **arch)).train()
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size)
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        y = add_noise(x, 0.1)
        if cl:
            y = y.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(y)
        loss = F.mse_loss(out.float(), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--norms", action="store_true", help="Compare normalizations (paper, 64x64).")
    args = ap.parse_args()
    if args.norms:
        for norm, bias in (("layer", True), ("none", True), ("batch", False)):
            for bf16, cl in ((False, False), (True, True)):
                runs = [images_per_second("paper", 64, 16, bf16, cl, args.steps, norm=norm,
                                          bias=bias) for _ in range(args.repeats)]  # fmt: skip
                print(f"norm={norm:<6} bias={bias!s:<6} bf16={bf16!s:<6} channels_last={cl!s:<6}"
                      f"{statistics.median(runs):7.1f} images/s", flush=True)  # fmt: skip
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'preset':<8}{'size':>5}{'batch':>6}  {'bf16':<5}{'ch_last':<8}{'img/s':>8}{'x fp32':>8}"
    )
    for preset, size, batch in (("paper", 64, 16), ("small", 32, 64)):
        base = None
        for bf16, cl in ((False, False), (False, True), (True, False), (True, True)):
            runs = [images_per_second(preset, size, batch, bf16, cl, args.steps)
                    for _ in range(args.repeats)]  # fmt: skip
            med = statistics.median(runs)
            base = base or med
            print(f"{preset:<8}{size:>5}{batch:>6}  {bf16!s:<5}{cl!s:<8}{med:8.1f}{med / base:8.2f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
