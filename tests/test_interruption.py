"""Interruption, concurrency and a full disk, from outside (issue 22): a second writer of a run
directory or a store is refused while the first runs; a train killed before its first checkpoint
resumes; temporaries of killed writes are cleaned; a full filesystem is one error line that leaves
the previous checkpoint loadable (on a small tmpfs, where this machine lets the suite mount one)."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from conftest import assert_user_error, run_cli
from denoiserlens.errors import UserError
from denoiserlens.fileio import LOCK, folder_lock
from denoiserlens.models import UNet, load_model, preset_config, save_model
from denoiserlens.represent import Store

EXE = str(Path(sys.executable).with_name("denoiserlens"))
TRAIN = [
    "train",
    "--data",
    "disks:96:16",
    "--preset",
    "tiny",
    "--batch-size",
    "8",
    "--eval-every",
    "1000",
    "--test-fraction",
    "0.1",
]


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists() and proc.poll() is None, "the first job did not start in time"


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "m"
    save_model(UNet(preset_config("tiny")).eval(), path)
    return path


def test_a_second_train_into_one_run_directory_is_refused_while_the_first_runs(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [EXE, *TRAIN, "--steps", "100000", "--checkpoint-every", "5", "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(run / "train_state.safetensors", first)
        second = run_cli([*TRAIN, "--steps", "100000", "--run-dir", run, "--resume"])
        assert_user_error(second, "in use by another process")
        assert first.poll() is None  # the first one goes on
    finally:
        _kill(first)
    log = run / "log.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    assert len(lines) == len(set(lines))  # one writer: no line logged twice
    # the kernel dropped the killed process's lock: the run resumes
    resumed = run_cli([*TRAIN, "--steps", "20", "--run-dir", run, "--resume"])
    assert resumed.returncode == 0, resumed.stderr


def test_a_second_represent_into_one_store_is_refused_while_the_first_runs(tiny_model, tmp_path):
    store = tmp_path / "store"
    args = [
        "represent",
        "--model",
        str(tiny_model),
        "--data",
        "disks:4000:16",
        "--sigmas",
        "25",
        "--n-noise",
        "8",
        "--chunk-size",
        "16",
        "--out",
        str(store),
    ]
    first = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(store / "meta.json", first)
        second = run_cli([*args, "--resume"])
        assert_user_error(second, "in use by another process")
        assert first.poll() is None
    finally:
        _kill(first)
    small = [
        "represent",
        "--model",
        str(tiny_model),
        "--data",
        "disks:8:16",
        "--sigmas",
        "25",
        "--n-noise",
        "2",
        "--out",
        str(tmp_path / "other"),
    ]
    assert run_cli(small).returncode == 0  # other stores are not locked out
    with folder_lock(tmp_path / "other"):  # nor is it by the lock (held here, in-process)
        pass


def test_train_killed_before_its_first_checkpoint_resumes_from_step_zero(tmp_path):
    cut, full = tmp_path / "cut", tmp_path / "full"
    steps = ["--steps", "12", "--checkpoint-every", "12"]
    first = subprocess.Popen(
        [EXE, *TRAIN, *steps, "--run-dir", str(cut)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(cut / "config.json", first)
    _kill(first)
    assert not (cut / "train_state.safetensors").exists(), "the kill came too late"
    (cut / ".weights.safetensors.x1y2.tmp").write_bytes(b"half a file from a killed write")
    again = run_cli([*TRAIN, *steps, "--run-dir", cut])
    assert_user_error(again, "--resume")
    resumed = run_cli([*TRAIN, *steps, "--run-dir", cut, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert not list(cut.glob(".*.tmp")), "the killed write's temporary file was left"
    assert run_cli([*TRAIN, *steps, "--run-dir", full]).returncode == 0
    a, b = load_file(cut / "weights.safetensors"), load_file(full / "weights.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_train_killed_before_its_config_resumes_or_restarts(tmp_path):
    # the folder of a train killed before config.json holds the lock and perhaps a temporary
    for flag in (["--resume"], []):
        run = tmp_path / f"run{len(flag)}"
        run.mkdir()
        (run / LOCK).touch()
        (run / ".config.json.x1y2.tmp").write_text('{"half')
        done = run_cli([*TRAIN, "--steps", "2", "--run-dir", run, *flag])
        assert done.returncode == 0, done.stderr
        assert (run / "weights.safetensors").exists() and not list(run.glob(".*.tmp"))


def test_refused_jobs_leave_no_folder_behind(tiny_model, tmp_path):
    assert_user_error(
        run_cli([*TRAIN, "--steps", "3", "--run-dir", tmp_path / "r", "--resume"]),
        "nothing to resume",
    )
    assert not (tmp_path / "r").exists()


def _mount_tmpfs(path: Path, kib: int) -> None:
    path.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], capture_output=True
    )
    if p.returncode != 0:
        pytest.skip("this machine does not let the suite mount a tmpfs")


@pytest.fixture
def small_disk(tmp_path):
    mounts = []

    def make(kib: int) -> Path:
        path = tmp_path / f"disk{len(mounts)}"
        _mount_tmpfs(path, kib)
        mounts.append(path)
        return path

    yield make
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_train_into_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(small_disk, tmp_path):
    probe = tmp_path / "probe"
    assert run_cli([*TRAIN, "--steps", "2", "--run-dir", probe]).returncode == 0
    state = (probe / "train_state.safetensors").stat().st_size
    weights = (probe / "weights.safetensors").stat().st_size
    # room for one checkpoint and the config, not for a second state beside the first
    disk = small_disk((state + weights + state // 2) // 1024)
    run = disk / "run"
    p = run_cli([*TRAIN, "--steps", "6", "--checkpoint-every", "2", "--run-dir", run])
    assert_user_error(p, "no space left on the device")
    kept = load_file(run / "train_state.safetensors")  # the first checkpoint, whole
    assert kept and json.loads((run / "config.json").read_text())["train"]["steps"] == 6
    load_model(run)  # and the weights beside it
    assert not list(run.glob(".*.tmp"))


def test_represent_into_a_full_disk_is_one_line_not_a_bus_error(small_disk, tiny_model):
    disk = small_disk(256)  # the store needs 4000 x 64 floats of M: 1 MB
    out = disk / "store"
    p = run_cli(
        [
            "represent",
            "--model",
            tiny_model,
            "--data",
            "disks:4000:16",
            "--sigmas",
            "25",
            "--n-noise",
            "1",
            "--out",
            out,
        ]
    )
    assert_user_error(p, "no space left on the device")
    assert not out.exists()  # nothing half-made is left to be mistaken for a store
    fits = [
        "represent",
        "--model",
        tiny_model,
        "--data",
        "disks:64:16",
        "--sigmas",
        "25",
        "--n-noise",
        "1",
        "--out",
        out,
    ]
    assert run_cli(fits).returncode == 0, "space was not given back"
    assert np.isfinite(Store(out).phi()).all() and (out / LOCK).exists()


def test_a_folder_that_cannot_be_locked_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot hold a lock there"), folder_lock(tmp_path / "file"):
        pass
    assert_user_error(
        run_cli([*TRAIN, "--steps", "2", "--run-dir", tmp_path / "file"]),
        "cannot hold a lock there",
    )
