"""ImageNet64 as distributed, at scale (issue 21, item 1): a synthetic set of ``--rows`` rows in
files of exactly the downsampled-ImageNet layout (``data``: uint8 rows of 12288, ``labels``
1..1000; ``np.savez``, uncompressed, as the training batches are), then, each in its own process:

- reading: every image once through the training loader (``UInt8Images`` + ``DataLoader``, one
  thread, no workers), images/s;
- ``denoiserlens represent`` over the whole set with a 3-channel ``tiny`` model (phi at one
  sigma, one noise draw), images/s;

with the peak resident memory of each (VmHWM, sampled every 0.2 s with the rest) and, sampled every 0.2 s, its
anonymous part (RssAnon: memory the process owns) and its file-backed part (RssFile: pages of the memory
maps, which the kernel can drop at any time).

    .venv/bin/python benchmarks/imagenet64_memory.py [--rows 200000] [--files 2] [--dir DIR]

Needs about 2.5 GB of disk per 200k rows (in --dir, a temporary folder by default).
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

READ = """
import sys, time, torch
from torch.utils.data import DataLoader
from denoiserlens.data import UInt8Images, collate_to_float, read_source
torch.set_num_threads(1)
images = read_source(sys.argv[1])
t0 = time.perf_counter()
n = 0
for x in DataLoader(UInt8Images(images), batch_size=256, collate_fn=collate_to_float):
    n += len(x)
print(f"{n} {time.perf_counter() - t0:.3f}")
"""


def write_layout(folder: Path, rows: int, files: int, seed: int = 0) -> None:
    """``files`` files ``train_data_batch_K.npz`` of the layout, ``rows`` rows in all: smooth
    random images (a coarse grid upsampled), so that the bytes are not all noise."""
    rng = np.random.default_rng(seed)
    per = -(-rows // files)
    for k in range(files):
        n = min(per, rows - k * per)
        coarse = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
        data = coarse.repeat(8, axis=2).repeat(8, axis=3).reshape(n, 12288)
        np.savez(
            folder / f"train_data_batch_{k + 1}.npz", data=data, labels=rng.integers(1, 1001, n)
        )
        del coarse, data


def measured(cmd: list[str]) -> tuple[str, float, float, float, float]:
    """Run ``cmd``; (stdout, seconds, peak RSS, peak RssAnon, peak RssFile), memory in GB."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    anon = file = peak = 0
    while proc.poll() is None:
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            )
            anon = max(anon, int(fields["RssAnon"].split()[0]))
            file = max(file, int(fields["RssFile"].split()[0]))
            peak = max(peak, int(fields["VmHWM"].split()[0]))  # the kernel's own peak RSS
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[1:3]} failed: {err[-2000:]}")
    return out, seconds, peak / 2**20, anon / 2**20, file / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="in64-", dir=a.dir))
    try:
        folder = tmp / "Imagenet64_train"
        folder.mkdir()
        t0 = time.perf_counter()
        write_layout(folder, a.rows, a.files)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e9
        print(
            f"wrote {a.rows} rows in {a.files} files, {size:.2f} GB, {time.perf_counter() - t0:.0f} s"
        )
        spec = str(folder / "*.npz")
        exe = str(Path(sys.executable).with_name("denoiserlens"))
        model = tmp / "tiny3"
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, torch\nfrom denoiserlens.models import UNet, "
                "preset_config, save_model\ntorch.manual_seed(0)\n"
                "save_model(UNet(preset_config('tiny', image_channels=3)), sys.argv[1])",
                str(model),
            ],
            check=True,
        )
        out, s, peak, anon, file = measured([sys.executable, "-c", READ, spec])
        n = int(out.split()[0])
        print(
            f"| read (loader, 1 thread) | {n} | {n / float(out.split()[1]):.0f} | {peak:.2f} | "
            f"{anon:.2f} | {file:.2f} |"
        )
        cmd = [exe, "represent", "--model", str(model), "--data", spec, "--sigmas", "25"]
        cmd += ["--n-noise", "1", "--out", str(tmp / "store"), "--batch-size", "64"]
        out, s, peak, anon, file = measured(cmd)
        print(
            f"| represent (tiny, 2 threads) | {a.rows} | {a.rows / s:.0f} | {peak:.2f} | "
            f"{anon:.2f} | {file:.2f} |"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
