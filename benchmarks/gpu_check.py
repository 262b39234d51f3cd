"""GPU check (issue 21, item 4): on one GPU, the figures that say whether the GPU path works and
pays, as one table: training throughput of the paper preset at 64x64 (fp32, bf16, bf16 +
torch.compile), phi throughput (the paper's 20 draws, fp32 and bf16), Algorithm 1's time per
reconstruction, and the device-to-host synchronizations per step of the sampler and of
Algorithm 1 (counted by ``torch.cuda.set_sync_debug_mode``). Run by ``benchmarks/gpu_check.sh``.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--dry-run]

``--dry-run`` runs the same plan on the CPU at toy sizes (tiny preset, 16x16, one step; no
torch.compile: its warm-up takes minutes on a CPU) to check that every step runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import timed_steps  # noqa: E402

from denoiserlens.models import UNet, preset_config  # noqa: E402
from denoiserlens.represent import phi  # noqa: E402
from denoiserlens.sampling import SamplerConfig, sample  # noqa: E402
from denoiserlens.sampling.reconstruct import GuidanceConfig, middle_means, reconstruct  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, dev: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(dev)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def syncs_per_step(fn_of_steps, dev: torch.device) -> float | None:
    """Device-to-host synchronizations per step: the difference between two step counts, as
    torch.cuda.set_sync_debug_mode("warn") reports them (None off CUDA)."""
    if dev.type != "cuda":
        fn_of_steps(2)  # the dry run: the loop runs
        return None
    counts = []
    for steps in (4, 12):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fn_of_steps(steps)
                torch.cuda.synchronize()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return (counts[1] - counts[0]) / 8


class Rows:
    """The table's rows, each printed as soon as it is measured (a run cut short by its time
    limit keeps what it measured)."""

    def append(self, row: tuple[str, ...]) -> None:
        print("| " + " | ".join(row) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cpu" if a.dry_run else a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here (use --dry-run to check the plan on the CPU)")
    preset, size, batch, steps, images, n_noise, repeats = (
        ("tiny", 16, 4, 1, 2, 2, 1) if a.dry_run else ("paper", 64, 64, 20, 64, 20, 3)
    )
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (dry run)"
    print(f"{name}, torch {torch.__version__}")
    print("| check | setting | value | unit |\n|---|---|---|---|", flush=True)
    rows = Rows()
    for label, bf16, compiled in (
        ("fp32", False, False),
        ("bf16", True, False),
        ("bf16 + compile", True, True),
    ):
        if compiled and a.dry_run:
            rows.append(
                (
                    "train step",
                    f"{preset} {size}x{size}, batch {batch}, {label}",
                    "skipped in the dry run",
                    "",
                )
            )
            continue
        rate, first = timed_steps(preset, size, batch, bf16, bf16, steps, compiled, str(dev))
        extra = f" (first step {first:.0f} s)" if compiled else ""
        rows.append(
            (
                "train step",
                f"{preset} {size}x{size}, batch {batch}, {label}",
                f"{rate:.0f}{extra}",
                "images/s",
            )
        )

    torch.manual_seed(0)
    model = UNet(preset_config(preset)).eval().to(dev)
    x = torch.rand(images, 1, size, size, device=dev)
    for label, bf16 in (("fp32", False), ("bf16", True)):
        t = _median_seconds(lambda bf16=bf16: phi(model, x, 0.2, n_noise, bf16=bf16), dev, repeats)
        rows.append(
            (
                "phi",
                f"{preset} {size}x{size}, {n_noise} draws, {label}",
                f"{images / t:.0f}",
                "images/s",
            )
        )

    targets = x[:4]
    guidance = GuidanceConfig()  # the default matcher (the authors' Adam)

    def algorithm_1(levels: int):
        sigmas = torch.logspace(0, -2, levels)
        return reconstruct(
            middle_means(model),
            model.denoise,
            targets,
            2,
            sigmas=sigmas,
            guidance=guidance,
            n_noise=n_noise,
            seed=0,
        )

    levels = 3 if a.dry_run else 10
    t = _median_seconds(lambda: algorithm_1(levels), dev, 1)
    rows.append(
        (
            "Algorithm 1",
            f"{len(targets)} targets x 2, {levels} levels, {n_noise} draws",
            f"{t / (2 * len(targets)):.2f}",
            "s per reconstruction",
        )
    )

    cfg = SamplerConfig(sigma_0=1.0, sigma_L=1e-4, fixed_step=True, h0=0.01)
    shape = (16, 1, size, size)

    def sampler(steps_: int):
        return sample(
            model.denoise,
            shape,
            replace(cfg, max_steps=steps_),
            seed=0,
            device=dev,
        )

    for label, fn in (("sampler", sampler), ("Algorithm 1", algorithm_1)):
        per = syncs_per_step(fn, dev)
        rows.append(
            (
                "host syncs",
                f"{label}, per step",
                "n/a off CUDA" if per is None else f"{per:.1f}",
                "synchronizations",
            )
        )


if __name__ == "__main__":
    main()
