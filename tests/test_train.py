import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import stats

from denoiserlens import UserError
from denoiserlens.data import disks
from denoiserlens.models import build_model, load_model, preset_config
from denoiserlens.train import TrainConfig, sample_sigma, train
from denoiserlens.train.noise import random_dihedral

TINY = preset_config("tiny").to_dict()


def _cfg(**kw):
    base = dict(
        steps=30,
        batch_size=8,
        sigma_max=0.4,
        eval_every=1000,
        checkpoint_every=10,
        eval_images=16,
        test_fraction=0.1,
    )
    return TrainConfig(**{**base, **kw})


def test_sqrt_sigma_distribution_has_the_papers_density():
    g = torch.Generator().manual_seed(0)
    s = sample_sigma(20000, "sqrt", 0.0, 1.0, g).numpy()
    # density proportional to 1/sqrt(sigma) on [0, 1]: CDF(t) = sqrt(t)
    assert stats.kstest(s, lambda t: np.sqrt(np.clip(t, 0, 1))).pvalue > 0.01
    u = sample_sigma(20000, "uniform", 0.1, 0.3, g).numpy()
    assert u.min() >= 0.1 and u.max() <= 0.3 and abs(u.mean() - 0.2) < 0.003
    lu = sample_sigma(20000, "log-uniform", 0.01, 1.0, g).numpy()
    assert abs(np.median(lu) - 0.1) < 0.01
    with pytest.raises(ValueError):
        sample_sigma(3, "log-uniform", 0.0, 1.0, g)


def test_random_dihedral_draws_the_eight_symmetries_of_the_square_reproducibly():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(400, 2, 4, 4)
    y = random_dihedral(x, torch.Generator().manual_seed(0))
    seen = {tuple(t[0].flatten().tolist()) for t in y}
    group = set()
    for k in range(4):
        r = torch.rot90(x[0, 0], k)
        group |= {tuple(r.flatten().tolist()), tuple(r.flip(-1).flatten().tolist())}
    assert seen == group and len(group) == 8
    assert torch.equal(y[:, 0], y[:, 1])  # one symmetry per image, the same for its channels
    assert torch.equal(y, random_dihedral(x, torch.Generator().manual_seed(0)))
    wide = torch.arange(24.0).view(1, 1, 4, 6).expand(100, 1, 4, 6)
    assert len({tuple(t.flatten().tolist()) for t in random_dihedral(wide)}) == 4


def test_training_reduces_the_loss(tmp_path):
    data = disks(400, 32, seed=0)
    r = train(
        TINY,
        data,
        _cfg(steps=300, batch_size=16, eval_every=300, checkpoint_every=300),
        tmp_path / "run",
        progress=False,
    )
    log = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log if "loss" in x]
    assert losses[-1] < 0.5 * losses[0]
    noisy_psnr = {s: -10 * np.log10((s / 255) ** 2) for s in (25, 50)}  # 20.17 and 14.15 dB
    # margins below what two CPUs (AMD, Intel) give for these 300 steps: +2.8 / +7.6 dB
    assert r["eval_psnr"]["25"] > noisy_psnr[25] + 2
    assert r["eval_psnr"]["50"] > noisy_psnr[50] + 5
    model = load_model(tmp_path / "run")  # rebuilt from the directory alone
    assert model.arch_config() == TINY


@pytest.mark.parametrize("augment", [False, True])
def test_resume_equals_an_uninterrupted_run(tmp_path, augment):
    data = disks(200, 32, seed=1)  # 180 train images / 8 = 22 steps per epoch: 20 is mid-epoch
    train(TINY, data, _cfg(steps=40, augment=augment), tmp_path / "a", progress=False)
    train(TINY, data, _cfg(steps=20, augment=augment), tmp_path / "b", progress=False)
    train(TINY, data, _cfg(steps=40, augment=augment), tmp_path / "b", resume=True, progress=False)
    a = load_file(tmp_path / "a/weights.safetensors")
    b = load_file(tmp_path / "b/weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(tmp_path / "b/train_state.safetensors")
    assert torch.equal(
        c["opt.0.exp_avg"], load_file(tmp_path / "a/train_state.safetensors")["opt.0.exp_avg"]
    )
    # past step 20 the log reads as the uninterrupted run's (timing aside), and the first run's
    # final line is gone: one final line
    logs = [
        [{k: v for k, v in json.loads(ln).items() if k != "images_per_s"} for ln in lines]
        for lines in ((tmp_path / d / "log.jsonl").read_text().splitlines() for d in "ab")
    ]
    assert [x for x in logs[1] if x["step"] > 20] == [x for x in logs[0] if x["step"] > 20]
    assert [x["step"] for x in logs[1] if x.get("final")] == [40]


def test_existing_run_is_not_overwritten_and_resume_checks_config(tmp_path):
    data = disks(100, 32, seed=2)
    train(TINY, data, _cfg(steps=10), tmp_path / "r", progress=False)
    before = (tmp_path / "r/weights.safetensors").read_bytes()
    with pytest.raises(UserError, match="exists"):
        train(TINY, data, _cfg(steps=10), tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="different train"):
        train(TINY, data, _cfg(steps=20, lr=0.1), tmp_path / "r", resume=True, progress=False)
    with pytest.raises(UserError, match="different data"):
        train(
            TINY,
            disks(100, 32, seed=3),
            _cfg(steps=20),
            tmp_path / "r",
            resume=True,
            progress=False,
        )
    assert (tmp_path / "r/weights.safetensors").read_bytes() == before
    with pytest.raises(UserError, match="different train"):  # augmentation changes the weights
        train(TINY, data, _cfg(steps=20, augment=True), tmp_path / "r", resume=True, progress=False)
    # a run written before a setting existed (no "augment" in its config) still resumes, and the
    # bookkeeping (checkpoint and evaluation intervals) may change
    config = json.loads((tmp_path / "r/config.json").read_text())
    del config["train"]["augment"]
    (tmp_path / "r/config.json").write_text(json.dumps(config))
    r = train(
        TINY,
        data,
        _cfg(steps=12, checkpoint_every=3, eval_every=4),
        tmp_path / "r",
        resume=True,
        progress=False,
    )
    assert r["step"] == 12


def test_bf16_channels_last_training_runs(tmp_path):
    r = train(
        TINY,
        disks(100, 32, seed=4),
        _cfg(steps=10, bf16=True, channels_last=True),
        tmp_path / "r",
        progress=False,
    )
    assert r["finished"] and np.isfinite(r["eval_psnr"]["25"])


def _free_port() -> int:
    """A port no process listens on now (a fixed one collides with leftovers of other runs)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path):
    np.save(tmp_path / "disks.npy", disks(256, 32, seed=5).images)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(Path(sys.executable).parent / "denoiserlens"),
        "train",
        "--data",
        str(tmp_path / "disks.npy"),
        "--run-dir",
        str(tmp_path / "ddp"),
        "--preset",
        "tiny",
        "--no-bias",
        "--norm",
        "batch",
        "--epochs",
        "1",
        "--global-batch",
        "16",
        "--checkpoint-every",
        "6",
        "--eval-every",
        "12",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0 and "Signal 6 (SIGABRT)" in proc.stderr:
        # gloo aborts a rank now and then on this machine (2 runs in about 20, not diagnosed);
        # one retry from scratch keeps the test about the weights
        shutil.rmtree(tmp_path / "ddp", ignore_errors=True)
        cmd[4] = f"--master_port={_free_port()}"
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(x) for x in (tmp_path / "ddp/log.jsonl").read_text().splitlines()]
    final = [x for x in log if x.get("final")][-1]
    assert final["ddp_weights_identical"] is True
    config = json.loads((tmp_path / "ddp/config.json").read_text())
    assert config["world_size"] == 2
    # 243 training images: 121 per process in batches of 16 / 2, one epoch = 15 steps
    assert config["train"]["batch_size"] == 8 and config["train"]["steps"] == 15
    assert final["step"] == 15


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="log-uniform"):
        TrainConfig(sigma_dist="log-uniform", sigma_min=0.0)
    with pytest.raises(UserError, match="exceeds"):
        train(TINY, disks(20, 32, seed=0), _cfg(batch_size=64), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_resume_survives_a_log_line_cut_by_a_kill(tmp_path):
    data = disks(100, 32, seed=6)
    train(TINY, data, _cfg(steps=10), tmp_path / "r", progress=False)
    with open(tmp_path / "r/log.jsonl", "a") as f:
        f.write('{"step": 11, "lo')  # half a line
    r = train(TINY, data, _cfg(steps=20), tmp_path / "r", resume=True, progress=False)
    assert r["finished"]
    lines = (tmp_path / "r/log.jsonl").read_text().splitlines()
    assert all(json.loads(ln) for ln in lines)


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    # as after a kill between the last checkpoint and the process's exit
    data = disks(100, 32, seed=7)
    first = train(TINY, data, _cfg(steps=10), tmp_path / "r", progress=False)
    log = (tmp_path / "r/log.jsonl").read_text()
    again = train(TINY, data, _cfg(steps=10), tmp_path / "r", resume=True, progress=False)
    assert again == first and first["eval_psnr"]
    assert (tmp_path / "r/log.jsonl").read_text() == log


def test_the_schedule_in_epochs_resolves_to_steps_and_batches():
    cfg = TrainConfig(epochs=1000, lr_halve_every_epochs=100, global_batch=1024)
    # ImageNet64's 1,281,167 images on 4 processes: 320,291 each, 1251 steps of 256 an epoch
    r = cfg.resolved(1_281_167, 4)
    assert (r.batch_size, r.steps, r.lr_halve_every) == (256, 1_251_000, 125_100)
    assert r.lr_at(125_099) == 1e-3 and r.lr_at(125_100) == 5e-4
    assert TrainConfig(steps=7, batch_size=8).resolved(100, 1) == TrainConfig(steps=7, batch_size=8)
    with pytest.raises(UserError, match="not divisible by the 3 processes"):
        cfg.resolved(1_281_167, 3)
    with pytest.raises(UserError, match="exceeds the 50 training images per process"):
        TrainConfig(global_batch=128).resolved(100, 2)
    with pytest.raises(ValueError, match="needs the schedule in epochs"):
        TrainConfig(lr_halve_every_epochs=100)


def test_every_epoch_ends_with_a_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
    import denoiserlens.train.loop as loop

    data = disks(100, 32, seed=8)  # 90 training images: 11 steps of 8 an epoch
    saved = []
    real = loop._checkpoint
    monkeypatch.setattr(
        loop, "_checkpoint", lambda d, m, o, step, r: saved.append(step) or real(d, m, o, step, r)
    )
    cfg = _cfg(epochs=3, lr_halve_every_epochs=2, checkpoint_every=1000)
    r = train(TINY, data, cfg, tmp_path / "a", progress=False)
    assert saved == [11, 22, 33] and r["step"] == 33
    config = json.loads((tmp_path / "a/config.json").read_text())["train"]
    assert (config["steps"], config["lr_halve_every"], config["epochs"]) == (33, 22, 3)
    train(
        TINY,
        data,
        _cfg(epochs=2, lr_halve_every_epochs=2, checkpoint_every=1000),
        tmp_path / "b",
        progress=False,
    )
    train(TINY, data, cfg, tmp_path / "b", resume=True, progress=False)  # one more epoch
    a, b = (load_file(tmp_path / d / "weights.safetensors") for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_compiled_training_computes_what_eager_training_does(tmp_path):
    # torch.compile fuses kernels: the same steps to float32 rounding, weights saved uncompiled
    data = disks(40, 16, seed=9)
    for name, flag in (("eager", False), ("compiled", True)):
        train(TINY, data, _cfg(steps=2, compile=flag), tmp_path / name, progress=False)
    a, b = (load_file(tmp_path / d / "weights.safetensors") for d in ("eager", "compiled"))
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    init = build_model(TINY, seed=0).state_dict()  # the steps moved the weights: not vacuous
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-4
    assert json.loads((tmp_path / "compiled/config.json").read_text())["train"]["compile"] is True


def test_runs_and_stores_recorded_before_a_data_setting_existed_resume(tmp_path):
    from denoiserlens.data import DataSpec
    from denoiserlens.represent.store import _same_job

    spec = DataSpec(("disks:40:16",))
    train(TINY, spec, _cfg(steps=10), tmp_path / "r", progress=False)
    config = json.loads((tmp_path / "r/config.json").read_text())
    for key in ("resample", "gray_files"):  # as config.json was written before they existed
        del config["data"][key]
    (tmp_path / "r/config.json").write_text(json.dumps(config))
    r = train(TINY, spec, _cfg(steps=20), tmp_path / "r", resume=True, progress=False)
    assert r["step"] == 20
    new = {"model": {"weights_hash": "h"}, "data": {"fingerprint": "f", "spec": spec.to_dict()}}
    old = json.loads(json.dumps(new))
    del old["data"]["spec"]["resample"]
    assert _same_job(old, new) is None
    old["data"]["spec"]["size"] = 32
    assert _same_job(old, new) == "data"


def test_init_from_starts_from_the_given_weights_and_checks_the_architecture(tmp_path):
    from denoiserlens.models import build_model, save_model

    data = disks(200, 32, seed=2)
    with torch.random.fork_rng():
        torch.manual_seed(123)  # weights no seeded run would start from
        start = build_model(TINY)
    save_model(start, tmp_path / "start")
    # zero steps of training: the saved model is the starting point itself
    train(
        TINY,
        data,
        _cfg(steps=1, lr=1e-12, init_from=str(tmp_path / "start")),
        tmp_path / "ft",
        progress=False,
    )
    a, b = load_model(tmp_path / "start").state_dict(), load_model(tmp_path / "ft").state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    fresh = build_model(TINY).state_dict()
    assert not all(torch.equal(a[k], fresh[k]) for k in a if a[k].is_floating_point())
    config = json.loads((tmp_path / "ft/config.json").read_text())
    assert config["train"]["init_from"] == str(tmp_path / "start")
    other = preset_config("tiny", bias=False, norm="batch").to_dict()
    with pytest.raises(UserError, match="same architecture"):
        train(other, data, _cfg(init_from=str(tmp_path / "start")), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_recalibration_averages_the_batch_statistics(tmp_path):
    from denoiserlens.models.norms import BatchScaleNorm
    from denoiserlens.train.loop import recalibrate_norms

    arch = preset_config("tiny", bias=False, norm="batch").to_dict()
    data = disks(120, 32, seed=3)
    cfg = _cfg(steps=20, batch_size=8, checkpoint_every=20)
    train(arch, data, cfg, tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run")
    first = next(m for m in model.modules() if isinstance(m, BatchScaleNorm))
    seen = []
    hook = first.register_forward_hook(
        lambda mod, inp, out: seen.append(
            torch.sqrt(inp[0].float().var(dim=(0, 2, 3), keepdim=True, unbiased=False) + 1e-5)
        )
    )
    assert recalibrate_norms(model, data, cfg, batches=12, seed=0) > 0
    hook.remove()
    assert len(seen) == 12 and not model.training
    torch.testing.assert_close(first.running_sd, torch.stack(seen).mean(0), rtol=1e-4, atol=1e-6)
    assert first.momentum == 0.1  # restored
    exe = str(Path(sys.executable).parent / "denoiserlens")
    run = lambda *a: subprocess.run([exe, *map(str, a)], capture_output=True, text=True)  # noqa: E731
    p = run("recalibrate", "--model", tmp_path / "run", "--out", tmp_path / "r0")
    assert p.returncode == 2 and "does not say how it was trained" in p.stderr  # no data spec
    p = run(
        "train",
        "--data",
        "disks:120:32:3",
        "--run-dir",
        tmp_path / "cli",
        "--preset",
        "tiny",
        "--no-bias",
        "--norm",
        "batch",
        "--steps",
        "10",
        "--batch-size",
        "8",
    )
    assert p.returncode == 0, p.stderr
    p = run("recalibrate", "--model", tmp_path / "cli", "--out", tmp_path / "r1", "--batches", "5")
    assert p.returncode == 0, p.stderr
    config = json.loads((tmp_path / "r1/config.json").read_text())
    assert config["recalibrated"]["batches"] == 5 and config["data"]["sources"] == [
        "disks:120:32:3"
    ]
    p = run("recalibrate", "--model", tmp_path / "r1", "--out", tmp_path / "r2", "--batches", "3")
    assert p.returncode == 0, p.stderr  # a recalibrated run again: its history is kept
    again = json.loads((tmp_path / "r2/config.json").read_text())["recalibrated"]
    assert again["batches"] == 3 and again["previous"]["batches"] == 5
    a, b = load_model(tmp_path / "cli"), load_model(tmp_path / "r1")
    ka = [k for k in a.state_dict() if k.endswith("running_sd")]
    assert ka and any(not torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in ka)
    assert all(
        torch.equal(a.state_dict()[k], b.state_dict()[k])
        for k in a.state_dict()
        if not k.endswith("running_sd")
    )
    p = run("recalibrate", "--model", tmp_path / "cli", "--out", tmp_path / "r1")
    assert p.returncode == 2 and "exists" in p.stderr
