import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from denoiserlens import UserError
from denoiserlens.data import disks
from denoiserlens.models import UNet, preset_config, save_model
from denoiserlens.represent import RepresentConfig, Store, noise_averaged_means, phi, represent

EXE = str(Path(sys.executable).parent / "denoiserlens")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(preset_config("tiny")).eval()


def test_phi_is_the_mean_of_separate_draws(model):
    x = torch.rand(3, 1, 32, 32)
    both = phi(model, x, 0.2, n_noise=3, seed=7)
    separate = [phi(model, x, 0.2, n_noise=1, seed=7, first_draw=j) for j in range(3)]
    torch.testing.assert_close(both, torch.stack(separate).mean(0), rtol=1e-5, atol=1e-7)
    assert both.shape == (3, 64) and (both >= 0).all()
    # the same seed gives the same phi; another seed does not
    torch.testing.assert_close(both, phi(model, x, 0.2, n_noise=3, seed=7))
    assert not torch.allclose(both, phi(model, x, 0.2, n_noise=3, seed=8))


def test_phi_does_not_depend_on_the_batch(model):
    x = torch.rand(4, 1, 32, 32)
    together = phi(model, x, 0.1, n_noise=2, rows=[10, 11, 12, 13])
    alone = torch.cat([phi(model, x[i : i + 1], 0.1, n_noise=2, rows=[10 + i]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)


def test_phi_at_sigma_zero_is_the_clean_middle_block_mean(model):
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        full = {b.name: b.output for b in model.iter_blocks(x)}
    torch.testing.assert_close(phi(model, x, 0.0, n_noise=20), full["M"].mean(dim=(2, 3)))


def test_inputs_and_several_blocks(model):
    x = torch.rand(2, 1, 32, 32)
    means = noise_averaged_means(model, x, 0.1, ("E2", "M"), n_noise=2, inputs=True)
    assert {k: tuple(v.shape) for k, v in means.items()} == {
        "E2": (2, 16),
        "E2.in": (2, 8),
        "M": (2, 64),
        "M.in": (2, 32),
    }


def test_compiled_blocks_compute_what_eager_blocks_do(model, tmp_path):
    # torch.compile fuses the normalizations' passes; the numbers must not change (float32),
    # for the inputs too and at a second batch and image size (dynamic shapes, no stale graph).
    for x in (torch.rand(3, 1, 32, 32), torch.rand(5, 1, 16, 16)):
        eager = noise_averaged_means(model, x, 0.1, ("E2", "M"), n_noise=2, inputs=True)
        compiled = noise_averaged_means(
            model, x, 0.1, ("E2", "M"), n_noise=2, inputs=True, compile=True
        )
        assert list(compiled) == list(eager)
        for k in eager:
            torch.testing.assert_close(compiled[k], eager[k], rtol=1e-5, atol=1e-6)
    # and represent --compile stores that phi
    ims = disks(5, 32, seed=0)
    stores = [
        represent(model, ims, tmp_path / f"s{c}", RepresentConfig(n_noise=2, compile=c))
        for c in (False, True)
    ]
    assert stores[1].meta["compile"] and not stores[0].meta["compile"]
    np.testing.assert_allclose(stores[1].phi(), stores[0].phi(), rtol=1e-5, atol=1e-6)


def test_bad_sigma_and_block(model):
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(UserError, match="sigma must be >= 0"):
        phi(model, x, -0.1)
    with pytest.raises(UserError, match="sigma must be >= 0"):
        phi(model, x, float("nan"))
    with pytest.raises(UserError, match="unknown block"):
        noise_averaged_means(model, x, 0.1, ("X9",))


def test_store_round_trip_and_model_check(model, tmp_path):
    ims = disks(20, 32, seed=0)
    cfg = RepresentConfig(sigmas=(0.0, 0.1), n_noise=2, blocks=("E3", "M"), chunk_size=8)
    store = represent(model, ims, tmp_path / "s", cfg)
    assert store.array("M").shape == (2, 20, 64) and store.array("E3").shape == (2, 20, 32)
    x = torch.from_numpy(ims.images[5:6].astype(np.float32) / 255)
    expected = phi(model, x, 0.1, n_noise=2, rows=[5])[0].numpy()
    np.testing.assert_allclose(store.phi(0.1)[5], expected, rtol=1e-5, atol=1e-7)
    assert store.names[5] == "disk:5"
    store.check_model(model)
    other = UNet(preset_config("tiny"))
    with pytest.raises(UserError, match="another model"):
        store.check_model(other)
    with pytest.raises(UserError, match="store exists"):
        represent(model, ims, tmp_path / "s", cfg)
    with pytest.raises(UserError, match="different model"):
        represent(other, ims, tmp_path / "s", cfg, resume=True)
    no_m = represent(model, ims, tmp_path / "e3", RepresentConfig(sigmas=(0.1,), blocks=("E3",)))
    with pytest.raises(UserError, match="no phi here: the middle block M was not stored"):
        no_m.phi()
    assert no_m.array("E3").shape == (1, 20, 32)


def _progress(path: Path) -> int:
    try:
        return int(np.load(path / "progress.npy").sum())
    except (OSError, ValueError, EOFError):
        return 0


def test_store_killed_and_resumed_equals_uninterrupted(model, tmp_path):
    run = tmp_path / "model"
    save_model(model, run)
    np.save(tmp_path / "d.npy", disks(96, 32, seed=3).images)
    args = [
        "represent",
        "--model",
        run,
        "--data",
        tmp_path / "d.npy",
        "--sigmas",
        "10,40",
        "--n-noise",
        "4",
        "--chunk-size",
        "4",
        "--batch-size",
        "4",
        "--blocks",
        "E2,M",
    ]
    args = [str(a) for a in args]
    run_cli([EXE, *args, "--out", str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen(
        [EXE, *args, "--out", str(tmp_path / "cut")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while _progress(tmp_path / "cut") < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _progress(tmp_path / "cut")
    assert 5 <= finished < 48, "the run was not cut in the middle"
    with pytest.raises(UserError, match="incomplete"):
        Store(tmp_path / "cut")
    again = run_cli([EXE, *args, "--out", str(tmp_path / "cut")], capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli(
        [EXE, *args, "--out", str(tmp_path / "cut"), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    full, cut = Store(tmp_path / "full"), Store(tmp_path / "cut")
    for key in ("E2", "M"):
        assert np.array_equal(full.array(key), cut.array(key))


def test_analyze_a_store_writes_figures_and_metrics(model, tmp_path):
    import json

    save_model(model, tmp_path / "m")
    args = [
        "represent",
        "--model",
        tmp_path / "m",
        "--data",
        "disks:48:32:1",
        "--out",
        tmp_path / "s",
        "--sigmas",
        "0,50,127.5",
        "--n-noise",
        "2",
        "--blocks",
        "all",
        "--inputs",
    ]
    run_cli([EXE, *map(str, args)], check=True, capture_output=True)
    p = run_cli(
        [
            EXE,
            "analyze",
            "--store",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "a"),
            "--model",
            str(tmp_path / "m"),
            "--map-images",
            "20",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    metrics = json.loads((tmp_path / "a/metrics.json").read_text())
    assert set(metrics["sparsity"]) == {
        "E1",
        "E2",
        "E2.in",
        "E3",
        "E3.in",
        "M",
        "M.in",
        "D3",
        "D3.in",
        "D2",
        "D2.in",
        "D1.in",
    }
    cos = metrics["stability"]["cosine"]["M"]
    assert len(cos) == 3 and cos[2] == pytest.approx(1.0)  # sigma_2 = sigma_1
    assert metrics["selectivity"]["channels"] == 64
    figs = (
        "fig1_sparsity",
        "fig2_stability",
        "fig3_channel_pr",
        "fig3_top_images",
        "fig4_specialized",
        "fig13_channel_stats",
    )
    assert metrics["channel_statistics"]["map_images"] == 20
    assert metrics["skipped"] == {"subspaces": "needs labels to form two groups"}
    assert 1 <= metrics["active_dimension"]["median"] <= 64
    claims = [f["claim"] for f in metrics["findings"]]
    assert len(claims) == 5
    # each verdict recomputed from the numbers metrics.json reports, against the claims' thresholds
    sp, st, sel = metrics["sparsity"], metrics["stability"], metrics["selectivity"]
    rho = metrics["channel_statistics"]["spearman_with_channel_pr"]
    others = [i for i, s in enumerate(st["sigmas"]) if abs(s - st["reference"]) > 1e-6]
    stable = {b: np.mean([c[i] for i in others]) for b, c in st["cosine"].items()}
    expected = [
        all(sp[b]["median"] < sp[f"{b}.in"]["median"] for b in ("M", "D3", "D2")),
        sp["M"]["median"] <= 0.3,
        max(stable, key=stable.get) == "M",
        sel["bimodality"] > 5 / 9 and min(sel["fraction_below"], sel["fraction_above"]) >= 0.1,
        rho["kurtosis"] < 0 and rho["spatial_pr"] > 0 and rho["pca_dim"] > 0,
    ]
    assert [f["holds"] for f in metrics["findings"]] == expected
    # this random-weights model does not sparsify in M and D2 (median PR 0.15 -> 0.27 and
    # 0.23 -> 0.63): the first claim is known not to hold
    assert metrics["findings"][0]["holds"] is False
    assert all(("[holds] " + c in p.stdout) or ("[does not hold] " + c in p.stdout) for c in claims)
    for fig in figs:
        assert (tmp_path / "a" / f"{fig}.png").stat().st_size > 5000
    p = run_cli(
        [
            EXE,
            "analyze",
            "--store",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "b"),
            "--query",
            "999",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "outside" in p.stderr and not (tmp_path / "b").exists()


def test_represent_under_torchrun_matches_one_process(model, tmp_path):
    import os

    save_model(model, tmp_path / "m")
    args = [
        "represent",
        "--model",
        tmp_path / "m",
        "--data",
        "disks:40:32:2",
        "--sigmas",
        "20",
        "--n-noise",
        "3",
        "--chunk-size",
        "6",
        "--blocks",
        "E3,M",
    ]
    args = [str(a) for a in args]
    run_cli([EXE, *args, "--out", str(tmp_path / "one")], check=True, capture_output=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        EXE,
        *args,
        "--out",
        str(tmp_path / "two"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    one, two = Store(tmp_path / "one"), Store(tmp_path / "two")
    for key in ("E3", "M"):
        np.testing.assert_allclose(one.array(key), two.array(key), rtol=1e-5, atol=1e-7)


def test_analyze_labelled_store_draws_the_union_of_subspaces(model, tmp_path):
    from denoiserlens.stages.analysis import AnalyzeConfig, analyze_store

    ims = disks(40, 32, seed=4)
    ims.labels = (ims.params[:, 0] > 8).astype(np.int64)  # small vs large disks
    represent(model, ims, tmp_path / "s", RepresentConfig(sigmas=(0.1,), n_noise=2))
    m = analyze_store(tmp_path / "s", tmp_path / "a", AnalyzeConfig(groups=(0, 1)))
    ch = m["subspaces"]["channels"]
    assert m["subspaces"]["groups"] == [0, 1] and len(set(ch.values())) == 3
    assert (tmp_path / "a/fig5_subspaces.png").stat().st_size > 5000
    with pytest.raises(UserError, match="two labels"):
        analyze_store(tmp_path / "s", tmp_path / "b", AnalyzeConfig(groups=(0, 7)))
