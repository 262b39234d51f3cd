"""Preparing a large image folder once (issue 21, item 2): a folder of ``--files`` JPEGs of
CelebA's size (178x218, smooth random content) made into an 80x80 colour set (bicubic), with 0
and with ``--workers`` decoding processes, each in its own process with a cold cache; then the
same command again (the cache read, nothing decoded). Images/s and the peak resident memory of
each (VmHWM; the decoding workers' own memory aside).

    .venv/bin/python benchmarks/folder_prepare.py [--files 5000] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PREPARE = """
import sys
from pathlib import Path
from denoiserlens.data import DataSpec, open_data
spec = DataSpec((sys.argv[1],), channels=3, size=80, resample="bicubic", workers=int(sys.argv[2]))
ims = open_data(spec)
print(len(ims), ims.fingerprint)
peak = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")]
print(int(peak[0].split()[1]))
"""


def make_folder(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for k in range(n):
        sub = root / f"{k // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((178, 218), Image.Resampling.BILINEAR)
        im.save(sub / f"{k:06d}.jpg", quality=90)


def run(folder: Path, workers: int, cache: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    env = {"DENOISERLENS_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(
        [sys.executable, "-c", PREPARE, str(folder), str(workers)],
        capture_output=True,
        text=True,
        env=env,
    )
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    first, peak = p.stdout.split("\n")[:2]
    return time.perf_counter() - t0, int(peak), first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="folder-"))
    try:
        make_folder(tmp / "faces", a.files)
        print("| run | decoding processes | seconds | images/s | peak RSS (MB) |")
        print("|---|---|---|---|---|")
        results = set()
        for label, workers, cache in (
            ("cold cache", 0, tmp / "cache0"),
            ("cold cache", a.workers, tmp / "cache1"),
            ("cache present", 0, tmp / "cache1"),
        ):
            s, peak, out = run(tmp / "faces", workers, cache)
            results.add(out)
            print(
                f"| {label} | {workers or 'none'} | {s:.1f} | {a.files / s:.0f} | {peak / 1024:.0f} |"
            )
        print(f"\nsame images in every run: {len(results) == 1}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
