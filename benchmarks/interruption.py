"""Interruption from outside (issue 22): ``train`` and ``represent`` killed with SIGKILL at random
moments, several times each, then resumed, must end bit for bit equal to an uninterrupted run; and
runs into a filesystem too small for them (tmpfs of several sizes; needs root) must end with one
error line and no half-made store left, and a train must then resume from its last checkpoint
(moved to a disk with room) to the uninterrupted run bit for bit; or succeed.

    .venv/bin/python benchmarks/interruption.py [--trials 4] [--kills 3] [--seed 0]

Prints the counts recorded in BENCHMARKS.md. Runs the installed ``denoiserlens`` as a user would.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

EXE = str(Path(sys.executable).with_name("denoiserlens"))
TRAIN = [
    "train",
    "--data",
    "disks:256:32",
    "--preset",
    "tiny",
    "--steps",
    "60",
    "--checkpoint-every",
    "10",
    "--batch-size",
    "8",
    "--eval-every",
    "30",
    "--test-fraction",
    "0.1",
]
REPRESENT = [
    "represent",
    "--data",
    "disks:2000:16",
    "--sigmas",
    "25,50",
    "--n-noise",
    "4",
    "--chunk-size",
    "64",
]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True)


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    p = run(args)
    if p.returncode != 0:
        raise SystemExit(f"reference run failed: {p.stderr}")
    return time.perf_counter() - t0


def killed_then_finished(
    args: list[str], folder: Path, seconds: float, kills: int, rng: random.Random
) -> int:
    """Start ``args``, SIGKILL it at a random moment up to ``kills`` times (resuming each time),
    then let it finish; returns how many kills landed before the job ended."""
    landed = 0
    for attempt in range(kills + 1):
        resume = ["--resume"] if folder.exists() else []
        proc = subprocess.Popen(
            [EXE, *args, *resume], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if attempt < kills:
            try:
                proc.wait(timeout=rng.uniform(0.2, 1.1) * seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                landed += 1
                continue
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"resumed run failed ({proc.returncode}): {err}")
        if attempt < kills:  # it finished before the kill: nothing left to interrupt
            break
    return landed


def same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)


def same_training(a: Path, b: Path) -> bool:
    """Weights, optimizer state and every log line (timing aside) equal."""
    logs = [
        [
            {k: v for k, v in json.loads(line).items() if k != "images_per_s"}
            for line in (run_dir / "log.jsonl").open()
        ]
        for run_dir in (a, b)
    ]
    return (
        same_tensors(a / "weights.safetensors", b / "weights.safetensors")
        and same_tensors(a / "train_state.safetensors", b / "train_state.safetensors")
        and logs[0] == logs[1]
    )


def same_store(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.npy"))
    if names != sorted(p.name for p in b.glob("*.npy")):
        return False
    return all(np.array_equal(np.load(a / n), np.load(b / n)) for n in names)


def one_line_error(p: subprocess.CompletedProcess, phrase: str) -> bool:
    """Status 2 and the error on a line of its own, after the progress bar's lines (stderr is not
    a terminal here, so the bar writes a line per update), no traceback."""
    lines = [seg for line in p.stderr.split("\n") if (seg := line.split("\r")[-1].strip())]
    errors = [ln for ln in lines if ln.startswith("denoiserlens: error: ")]
    return (
        p.returncode == 2
        and "Traceback" not in p.stderr
        and errors == lines[-1:]
        and (phrase in lines[-1])
    )


def mount_tmpfs(path: Path, kib: int) -> bool:
    path.mkdir(parents=True)
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], capture_output=True
    )
    return p.returncode == 0


def full_disk(
    tmp: Path,
    sizes_kib: list[int],
    attempt: Callable[[Path], tuple[subprocess.CompletedProcess, bool]],
) -> dict[str, int]:
    """Run ``attempt(disk)`` on filesystems of each size; count successes, failures that are one
    "no space left" line with ``attempt``'s own check passing, and anything else ({} without a
    tmpfs)."""
    counts = {"runs": 0, "succeeded": 0, "one line, and the check after": 0, "other": 0}
    for kib in sizes_kib:
        disk = tmp / f"disk-{len(list(tmp.glob('disk-*')))}-{kib}k"
        if not mount_tmpfs(disk, kib):
            return {}
        try:
            p, ok = attempt(disk)
            counts["runs"] += 1
            if p.returncode == 0:
                counts["succeeded"] += 1
            elif one_line_error(p, "no space left") and ok:
                counts["one line, and the check after"] += 1
            else:
                counts["other"] += 1
                print(f"  {kib} KiB: status {p.returncode}: {p.stderr[-300:]}", file=sys.stderr)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    return counts


def train_then_resume_elsewhere(disk: Path, ref: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """Train into ``disk``; on failure, the run copied to a disk with room must resume from its
    last checkpoint to the uninterrupted run ``ref`` bit for bit."""
    p = run([*TRAIN, "--run-dir", str(disk / "run")])
    if p.returncode == 0:
        return p, True
    moved = ref.parent / f"resumed-{disk.name}"
    shutil.copytree(disk / "run", moved)
    resumed = run([*TRAIN, "--run-dir", str(moved), "--resume"])
    return p, resumed.returncode == 0 and same_training(ref, moved)


def represent_leaving_nothing(disk: Path, model: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """represent into ``disk``: a whole store, or no folder left."""
    p = run([*REPRESENT, "--model", str(model), "--out", str(disk / "store")])
    return p, p.returncode == 0 or not (disk / "store").exists()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs per trial")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="interruption-"))
    try:
        t_train = timed([*TRAIN, "--run-dir", str(tmp / "train-ref")])
        model = tmp / "train-ref"
        t_rep = timed([*REPRESENT, "--model", str(model), "--out", str(tmp / "represent-ref")])
        print(f"uninterrupted: train {t_train:.1f} s, represent {t_rep:.1f} s")
        for name, args, seconds, same in (
            ("train", TRAIN, t_train, same_training),
            ("represent", [*REPRESENT, "--model", str(model)], t_rep, same_store),
        ):
            kills = equal = 0
            for trial in range(a.trials):
                folder = tmp / f"{name}-{trial}"
                flag = "--run-dir" if name == "train" else "--out"
                kills += killed_then_finished(
                    [*args, flag, str(folder)], folder, seconds, a.kills, rng
                )
                equal += same(tmp / f"{name}-ref", folder)
            print(
                f"{name}: {a.trials} trials, {kills} SIGKILLs landed, resumed runs bit for bit "
                f"equal to the uninterrupted one: {equal} of {a.trials}"
            )
        ckpt = sum(f.stat().st_size for f in (tmp / "train-ref").glob("*.safetensors"))
        sizes = [max(64, int(ckpt * f) // 1024) for f in (0.3, 0.8, 1.2, 1.6, 2.2, 4.0)]
        ref = tmp / "train-ref"
        counts = full_disk(tmp / "disks", sizes, lambda d: train_then_resume_elsewhere(d, ref))
        if not counts:
            print("full disk: skipped (cannot mount a tmpfs here; needs root)")
            return
        print(f"full disk, train ({', '.join(map(str, sizes))} KiB): {counts}")
        store = sum(f.stat().st_size for f in (tmp / "represent-ref").iterdir())
        sizes = [max(64, int(store * f) // 1024) for f in (0.1, 0.5, 0.9, 1.5)]
        print(
            f"full disk, represent ({', '.join(map(str, sizes))} KiB): "
            f"{full_disk(tmp / 'disks', sizes, lambda d: represent_leaving_nothing(d, model))}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
