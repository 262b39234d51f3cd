"""Issue 6: top-16 eigenpairs of the Jacobian of an 80x80 grayscale UNet (small preset) at a
noisy image: our matrix-free Lanczos (torch.func jvp/vjp + scipy eigsh) vs the authors' way,
building the full Jacobian one row at a time (one backward pass per output pixel) and then
diagonalizing it, in the same run. Also the agreement of the two sets of eigenvalues.

    .venv/bin/python benchmarks/jacobian_speed.py [--model RUN] [--size 80] [--rows-timed 400]

The row-by-row baseline needs 6400 backward passes; ``--rows-timed`` times that many and
extrapolates (``--rows-timed 0`` builds all of them, and compares the eigenvalues).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.evaluation import noisy_image
from denoiserlens.geometry import JacobianOperator, top_eigenpairs
from denoiserlens.models import build_model, load_model, preset_config


def rows_one_at_a_time(model, y: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, float]:
    """The first ``n_rows`` rows of J, one backward pass each; returns (rows, seconds)."""
    x = y.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    out = model(x).reshape(-1)
    rows = []
    for i in range(n_rows):
        (g,) = torch.autograd.grad(out[i], x, retain_graph=True)
        rows.append(g.reshape(-1))
    return torch.stack(rows), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="Run directory (default: small, random).")
    ap.add_argument("--size", type=int, default=80)
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--rows-timed", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.model:
        model = load_model(args.model).eval()
    else:
        arch = preset_config("small", bias=False, norm="batch").to_dict()
        model = build_model(arch, seed=0).eval()
    x = to_float(open_data(DataSpec(("skimage:camera",), channels=1, size=args.size))[0])[None]
    y = noisy_image(x, args.sigma / 255, 0, 0)
    n = y.numel()
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        vals, _ = top_eigenpairs(JacobianOperator(model, y), k=16, tol=1e-4)
        ours.append(time.perf_counter() - t0)
    t_ours = float(np.median(ours))
    n_rows = n if args.rows_timed == 0 else min(args.rows_timed, n)
    rows, sec = rows_one_at_a_time(model, y, n_rows)
    t_rows = sec * n / n_rows
    t0 = time.perf_counter()
    if n_rows == n:
        full = rows.double()
        exact = torch.linalg.eigvalsh(0.5 * (full + full.T)).flip(0)[:16].numpy()
        t_rows += time.perf_counter() - t0
        agree = float(np.max(np.abs(exact - vals)))
    else:
        sym = torch.randn(n, n, dtype=torch.float64)  # the same eigh cost on an n x n matrix
        sym = sym + sym.T
        t1 = time.perf_counter()
        torch.linalg.eigvalsh(sym)
        t_rows += time.perf_counter() - t1
        agree = None
    print(
        f"{args.size}x{args.size} gray, {n} pixels, sigma {args.sigma:g}; top eigenvalues "
        f"{np.round(vals[:4], 4).tolist()}"
    )
    print(f"ours (Lanczos, matrix-free): {t_ours:.1f} s (median of {args.repeats})")
    print(
        f"full Jacobian row by row + eigh: {t_rows:.1f} s"
        + ("" if n_rows == n else f" (rows timed: {n_rows}, extrapolated)")
    )
    print(
        f"speed-up: {t_rows / t_ours:.1f}x"
        + ("" if agree is None else f"; max eigenvalue difference {agree:.2e}")
    )


if __name__ == "__main__":
    main()
