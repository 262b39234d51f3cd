"""Issue 4 scale: K-means (k = 1000) and 10-NN search over N x 512 float32 vectors.

Synthetic clustered data (2000 Gaussian clusters, as phi vectors are: non-negative, sparse-ish),
N = 100k, 300k, 1M. Each measurement runs in its own process so that its peak memory (max RSS)
is its own. K-means: ``denoiserlens.analysis.clusters.kmeans`` (faiss past the threshold); 10-NN
of every vector among all others: ``nearest_neighbours`` (IVF past the threshold), with its recall
against exact search on 1000 sampled queries.

    .venv/bin/python benchmarks/cluster_scale.py [--sizes 100000,300000,1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def make_data(n: int, d: int = 512, clusters: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.standard_normal((clusters, d), dtype=np.float32), 0) * 2
    x = np.empty((n, d), np.float32)
    for b in range(0, n, 100_000):  # in blocks: no float64 temporaries of the whole set
        m = min(100_000, n - b)
        x[b : b + m] = centres[rng.integers(0, clusters, m)]
        x[b : b + m] += rng.standard_normal((m, d), dtype=np.float32)
    return x


def run_one(task: str, n: int) -> dict:
    from denoiserlens.analysis.clusters import kmeans
    from denoiserlens.analysis.neighbours import nearest_neighbours

    x = make_data(n)
    t0 = time.perf_counter()
    if task == "kmeans":
        km = kmeans(x, 1000, seed=0, n_init=1)
        out = {"method": km.method, "clusters_used": int(len(np.unique(km.assignment)))}
    else:
        idx, _ = nearest_neighbours(x, x, 10, exclude=np.arange(n))
        out = {"method": "ivf" if n > 200_000 else "flat/numpy"}
        wall = time.perf_counter() - t0
        sample = np.random.default_rng(1).choice(n, 1000, replace=False)
        exact, _ = nearest_neighbours(x[sample], x, 10, method="flat", exclude=sample)
        out["recall_at_10"] = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx[sample], exact, strict=True)])
        )
        out["seconds"] = wall
    out.setdefault("seconds", time.perf_counter() - t0)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--one", nargs=2, metavar=("TASK", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    rows = []
    for task in ("kmeans", "knn"):
        for n in map(int, args.sizes.split(",")):
            p = subprocess.run(
                [sys.executable, __file__, "--one", task, str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = {"task": task, "n": n, **json.loads(p.stdout.strip().splitlines()[-1])}
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\n{'task':<8}{'N':>10}{'seconds':>10}{'s per 100k':>12}{'peak GiB':>10}  notes")
    for r in rows:
        note = f"recall@10 {r['recall_at_10']:.3f}" if "recall_at_10" in r else ""
        print(
            f"{r['task']:<8}{r['n']:>10}{r['seconds']:>10.1f}{r['seconds'] / r['n'] * 1e5:>12.2f}"
            f"{r['peak_rss_gib']:>10.2f}  {r['method']} {note}"
        )


if __name__ == "__main__":
    main()
