"""The command line: happy paths, and every bad input gives one stderr line and exit status 2."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BFCNN_GRAY, SET12, assert_user_error, need, run_cli
from denoiserlens.data import disks
from denoiserlens.models import UNet, preset_config, save_weights
from denoiserlens.train import TrainConfig, train

EXE = str(Path(sys.executable).parent / "denoiserlens")


def run(*args, ok=True):
    proc = run_cli([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "tiny"
    cfg = TrainConfig(steps=20, batch_size=8, eval_every=20, checkpoint_every=20, sigma_max=0.3)
    train(preset_config("tiny").to_dict(), disks(100, 32, seed=0), cfg, d, progress=False)
    return d


@pytest.fixture()
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 40), dtype=np.uint8)).save(d / f"g{i}.png")
    Image.fromarray(rng.integers(0, 256, (30, 32), dtype=np.uint8)).save(tmp_path / "odd.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "trunc.png").write_bytes((d / "g0.png").read_bytes()[:50])
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_denoise_writes_results(tiny_run, images, tmp_path):
    out = tmp_path / "out"
    p = run("denoise", "--model", tiny_run, "--input", images / "imgs", "--sigma", 25, "--out", out)
    assert "PSNR" in p.stdout
    assert sorted(f.name for f in out.iterdir()) == [
        "g0_denoised.png",
        "g0_noisy.png",
        "g1_denoised.png",
        "g1_noisy.png",
        "psnr.json",
    ]
    scores = json.loads((out / "psnr.json").read_text())["images"]
    assert len(scores) == 2 and all(np.isfinite(v["psnr_denoised"]) for v in scores.values())
    assert Image.open(out / "g0_denoised.png").size == (40, 32)


def test_denoise_pads_when_asked(tiny_run, images, tmp_path):
    run(
        "denoise",
        "--model",
        tiny_run,
        "--input",
        images / "odd.png",
        "--sigma",
        10,
        "--pad",
        "--out",
        tmp_path / "o",
    )
    assert Image.open(tmp_path / "o/odd_denoised.png").size == (32, 30)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "{d}/missing.png", "--sigma", "25"], "no such file"),
        (["--input", "{d}/empty", "--sigma", "25"], "no images found"),
        (["--input", "{d}/trunc.png", "--sigma", "25"], "trunc.png: not a readable image"),
        (["--input", "{d}/notes.txt", "--sigma", "25"], "notes.txt: not an image"),
        (["--input", "{d}/odd.png", "--sigma", "25"], "not divisible by 8"),
        (["--input", "{d}/rgb.png", "--sigma", "25"], "3-channel image"),
        (["--input", "{d}/imgs", "--sigma", "-5"], "must be >= 0"),
        (["--input", "{d}/imgs", "--sigma", "nan"], "nan is not a finite number"),
    ],
)
def test_denoise_bad_input(tiny_run, images, tmp_path, args, message):
    out = tmp_path / "out"
    args = [a.format(d=images) for a in args]
    assert_user_error(run("denoise", "--model", tiny_run, *args, "--out", out, ok=False), message)
    assert not out.exists()  # nothing written


def test_incompatible_checkpoint_is_refused(tiny_run, images, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_run / "config.json").read_text())
    save_weights(UNet(preset_config("compact")), bad / "weights.safetensors")
    p = run(
        "denoise",
        "--model",
        bad,
        "--input",
        images / "imgs",
        "--sigma",
        25,
        "--out",
        tmp_path / "o",
        ok=False,
    )
    assert_user_error(p, "does not fit the architecture")


def test_pickled_checkpoint_is_refused(images, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"conv_layers.0.weight": torch.zeros(1), "code": print}, path)
    p = run(
        "denoise",
        "--model",
        path,
        "--input",
        images / "imgs",
        "--sigma",
        25,
        "--out",
        tmp_path / "o",
        ok=False,
    )
    assert_user_error(p, "refused")


def test_missing_model_and_data_paths(images, tmp_path):
    p = run(
        "evaluate",
        "--model",
        tmp_path / "nope",
        "--data",
        images / "imgs",
        "--out",
        tmp_path / "o",
        ok=False,
    )
    assert_user_error(p, "no such model")
    p = run("evaluate", "--bm3d", "--data", tmp_path / "nope", "--out", tmp_path / "o", ok=False)
    assert_user_error(p, "no such file or folder")


def test_train_refuses_an_existing_run_and_bad_sigma(tiny_run, tmp_path):
    before = (tiny_run / "weights.safetensors").read_bytes()
    p = run(
        "train",
        "--data",
        "disks:64:32",
        "--run-dir",
        tiny_run,
        "--preset",
        "tiny",
        "--steps",
        5,
        "--batch-size",
        8,
        ok=False,
    )
    assert_user_error(p, "run directory exists")
    assert (tiny_run / "weights.safetensors").read_bytes() == before
    p = run(
        "train",
        "--data",
        "disks:64:32",
        "--run-dir",
        tmp_path / "r",
        "--sigma-max",
        "nan",
        ok=False,
    )
    assert_user_error(p, "--sigma-max': nan is not a finite number")
    assert not (tmp_path / "r").exists()


def test_evaluate_table_with_bm3d_and_bfcnn(tmp_path):
    need(BFCNN_GRAY)
    crop = np.asarray(Image.open(need(SET12) / "01.png"))[64:128, 64:128]
    Image.fromarray(crop).save(tmp_path / "crop.png")
    out = tmp_path / "ev"
    p = run(
        "evaluate",
        "--model",
        BFCNN_GRAY,
        "--bm3d",
        "--data",
        tmp_path / "crop.png",
        "--sigmas",
        "25",
        "--out",
        out,
    )
    res = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in res["table"]}
    assert set(rows) == {"BSD400_gray", "BM3D"} and "BM3D" in p.stdout
    noisy = -10 * np.log10((25 / 255) ** 2)
    assert rows["BM3D"]["psnr"] > noisy + 5 and rows["BSD400_gray"]["psnr"] > noisy + 5
    assert (out / "psnr.png").stat().st_size > 1000


def test_bfcnn_reproduces_the_recorded_set12_psnr():
    """BENCHMARKS.md records 29.81 dB for Set12/01.png at sigma 25, seed 0 (one noise draw)."""
    from denoiserlens.data import read_image, to_float
    from denoiserlens.evaluation import noisy_image, psnr
    from denoiserlens.models import load_model

    model = load_model(need(BFCNN_GRAY))
    x = to_float(read_image(need(SET12) / "01.png"))[None]
    value = float(psnr(model.denoise(noisy_image(x, 25 / 255, 0, 0)).clamp(0, 1), x)[0])
    assert abs(value - 29.81) < 0.05


def test_unwritable_output_is_one_line(tiny_run, images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = run(
        "denoise",
        "--model",
        tiny_run,
        "--input",
        images / "imgs",
        "--sigma",
        25,
        "--out",
        blocker / "sub",
        ok=False,
    )
    assert_user_error(p, "file")


def test_bad_training_settings_exit_2(tmp_path):
    p = run(
        "train",
        "--data",
        "disks:64:32",
        "--run-dir",
        tmp_path / "r",
        "--preset",
        "tiny",
        "--batch-size",
        "0",
        ok=False,
    )
    assert_user_error(p, "--batch-size': 0 is not in the range x>=1")
    assert not (tmp_path / "r").exists()


def test_every_command_and_option_has_help():
    import click

    from denoiserlens.cli import main

    for name, command in main.commands.items():
        assert command.help, name
        missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
        assert missing == [], (name, missing)


def test_bf16_warns_where_the_cpu_would_emulate_it(tiny_run, tmp_path, monkeypatch):
    """--bf16 on a CPU without AVX512-BF16 or AMX (and no GPU) is emulated and slower than
    float32: every command that takes it says so on stderr, and still runs."""
    from click.testing import CliRunner

    from denoiserlens.cli import main
    from denoiserlens.cli.options import warn_emulated_bf16

    bf16 = [p for c in main.commands.values() for p in c.params if "--bf16" in p.opts]
    assert len(bf16) >= 5 and all(p.callback is warn_emulated_bf16 for p in bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for native in (False, True):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        r = CliRunner().invoke(
            main,
            [
                "sample",
                "--model",
                str(tiny_run),
                "--n",
                "1",
                "--size",
                "16",
                "--max-steps",
                "2",
                "--bf16",
                "--out",
                str(tmp_path / f"s{native}"),
            ],
        )
        assert r.exit_code == 0, r.output
        assert ("no native bf16" in r.stderr) is not native, r.stderr


def test_convert_an_authors_unet(tmp_path):
    """The file cannot tell layer from instance norm: convert refuses to guess, then writes a run
    directory whose model is the imported one."""
    from test_models import _authors_unet_state

    from denoiserlens.models import load_model

    state = _authors_unet_state((2, 1, 2), 2, (3, 2, 4), (8, 16, 24, 32), 1, ("gammas",), True)
    ckpt, out = tmp_path / "authors.pt", tmp_path / "run"
    torch.save(state, ckpt)
    assert_user_error(run("convert", "--checkpoint", ckpt, "--out", out, ok=False), "--norm layer")
    assert not out.exists()
    run("convert", "--checkpoint", ckpt, "--norm", "instance", "--out", out)
    y = torch.rand(1, 1, 32, 32)
    want = load_model(ckpt, norm="instance").denoise(y)
    torch.testing.assert_close(load_model(out).denoise(y), want, rtol=0, atol=0)
    again = run("convert", "--checkpoint", ckpt, "--norm", "layer", "--out", out, ok=False)
    assert_user_error(again, "exists")


def test_the_device_is_picked_once_at_the_edge(tiny_run, tmp_path, monkeypatch):
    """--device auto is CUDA when present (under torchrun this rank's GPU), else the CPU; a name
    torch does not know is one error line before anything is read or written."""
    from denoiserlens.hardware import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == torch.device("cuda", 3)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    out = tmp_path / "s"
    p = run_cli(["sample", "--model", tiny_run, "--n", "1", "--device", "gpu0", "--out", out])
    assert_user_error(p, "--device")
    assert not out.exists()
