"""The layer norm's variance: ``torch.var`` against the mean squared deviation
(``denoiserlens.models.norms.float_var``), in the same process, on phi of the bundled paper-form
Fashion-MNIST model (layer norm after every convolution but the first): forward passes of 64 images
without gradients (represent) and forward + input gradient of 8 (guidance), bf16 autocast,
channels_last, medians of ``--repeats`` interleaved runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/norm_variance.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import denoiserlens.models.norms as norms
from denoiserlens.models import load_model
from denoiserlens.sampling.reconstruct import middle_means

MODEL = "src/denoiserlens/assets/fmnist-small"


def torch_var(x: torch.Tensor, dim: tuple[int, ...]) -> torch.Tensor:
    return x.float().var(dim=dim, keepdim=True, unbiased=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    model = load_model(MODEL).to(memory_format=torch.channels_last)
    bf16_phi = middle_means(model)

    def phi(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return bf16_phi(x)

    x = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    variants = {"torch.var": torch_var, "mean squared deviation": norms.float_var}
    times = {name: {"forward 64": [], "forward + grad 8": []} for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            norms.float_var = fn  # the norm looks the function up at call time
            t = time.perf_counter()
            with torch.no_grad():
                phi(x)
            times[name]["forward 64"].append(time.perf_counter() - t)
            xi = x[:8].clone().requires_grad_(True)
            t = time.perf_counter()
            torch.autograd.grad(phi(xi).square().sum(), xi)
            times[name]["forward + grad 8"].append(time.perf_counter() - t)
    norms.float_var = variants["mean squared deviation"]
    for name, t in times.items():
        print(
            f"{name:24s}"
            + "".join(f"  {k}: {statistics.median(v) * 1e3:6.1f} ms" for k, v in t.items())
        )


if __name__ == "__main__":
    main()
