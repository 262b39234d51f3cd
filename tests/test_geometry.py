import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_cli
from denoiserlens import UserError
from denoiserlens.geometry import (
    JacobianOperator,
    asymmetry,
    full_jacobian,
    hutchinson_trace,
    top_eigenpairs,
)
from denoiserlens.models import UNet, preset_config


class Linear(nn.Module):
    """f(y) = M y on (1, 1, h, w) images: a denoiser whose Jacobian is M everywhere."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("m", m)

    def forward(self, y):
        return (y.reshape(len(y), -1) @ self.m.T).view(y.shape)


def _spd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    lam = torch.linspace(1.0, 0.0, n) ** 3  # a shrinkage: eigenvalues in [0, 1]
    return (q * lam) @ q.T


def test_eigensolver_returns_a_linear_denoisers_eigenpairs():
    m = _spd(64, 0)
    model, y = Linear(m), torch.rand(1, 1, 8, 8)
    op = JacobianOperator(model, y)
    vals, vecs = top_eigenpairs(op, k=6, tol=1e-8)
    ev, evec = torch.linalg.eigh(m.double())
    np.testing.assert_allclose(vals, ev.flip(0)[:6].numpy(), rtol=1e-4, atol=1e-6)
    for i in range(6):  # eigenvectors up to sign
        assert abs(float(torch.from_numpy(vecs[:, i]) @ evec[:, -1 - i])) > 0.999
    torch.testing.assert_close(full_jacobian(model, y), m)
    tr, se = hutchinson_trace(op, probes=400)
    assert abs(tr - float(m.trace())) < 4 * se + 1e-6
    assert asymmetry(op) < 1e-5
    skew = m + 0.1 * torch.triu(torch.ones(64, 64), 1)
    expected = float((skew - skew.T).norm() / skew.norm())
    assert asymmetry(JacobianOperator(Linear(skew), y), probes=400) == pytest.approx(
        expected, rel=0.15
    )


@pytest.fixture(scope="module")
def bias_free():
    torch.manual_seed(0)
    model = UNet(preset_config("tiny", bias=False, norm="batch")).eval()
    with torch.no_grad():  # non-trivial running statistics
        for mod in model.modules():
            if hasattr(mod, "running_sd"):
                mod.running_sd.uniform_(0.5, 2.0)
    return model


def test_matrix_free_and_full_jacobians_agree(bias_free):
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    full = full_jacobian(bias_free, y)
    op = JacobianOperator(bias_free, y)
    v = torch.randn(256, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.matvec(v), full @ v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(op.rmatvec(v), full.T @ v, rtol=1e-4, atol=1e-5)
    vals, _ = top_eigenpairs(op, k=5, tol=1e-8)
    exact = torch.linalg.eigvalsh((0.5 * (full + full.T)).double()).flip(0)[:5]
    np.testing.assert_allclose(vals, exact.numpy(), rtol=1e-3, atol=1e-5)
    # a bias-free network is homogeneous of degree 1: f(y) = J_y y
    torch.testing.assert_close(full @ y.reshape(-1), bias_free(y).reshape(-1), rtol=1e-4, atol=1e-5)


def test_full_jacobian_refuses_large_images(bias_free):
    with pytest.raises(UserError, match="too large for the full Jacobian"):
        full_jacobian(bias_free, torch.rand(1, 1, 96, 96))
    with pytest.raises(UserError, match="one image"):
        JacobianOperator(bias_free, torch.rand(2, 1, 16, 16))


def test_jacobian_command(tmp_path, bias_free):
    import json
    import sys
    from pathlib import Path

    from denoiserlens.data import disks
    from denoiserlens.models import save_model

    exe = str(Path(sys.executable).parent / "denoiserlens")
    save_model(bias_free, tmp_path / "m")
    np.save(tmp_path / "d.npy", disks(3, 16, seed=0).images)
    args = [
        exe,
        "jacobian",
        "--model",
        str(tmp_path / "m"),
        "--data",
        str(tmp_path / "d.npy"),
        "--rows",
        "1",
        "--sigmas",
        "25,50",
        "--k",
        "4",
        "--full",
        "--probes",
        "8",
        "--out",
        str(tmp_path / "j"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "j/jacobian.json").read_text())["results"]
    assert [r["sigma_255"] for r in res] == [25, 50]
    for r in res:
        assert len(r["eigenvalues"]) == 4 and r["eigenvalues"] == sorted(r["eigenvalues"])[::-1]
        assert r["homogeneity_error"] < 1e-4  # bias-free: J y = f(y)
        assert abs(r["trace_hutchinson"] - r["trace_exact"]) < 5 * r["trace_se"] + 1e-3
    for name in ("eigenvalues.png", "eigenvectors_row1_sigma25.png"):
        assert (tmp_path / "j" / name).stat().st_size > 3000
    big = tmp_path / "big.npy"
    np.save(big, disks(1, 96, seed=0).images)
    p = run_cli(
        [
            exe,
            "jacobian",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(big),
            "--full",
            "--k",
            "2",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "too large" in p.stderr and not (tmp_path / "x").exists()
    p = run_cli(
        args[:-4] + ["--probes", "1", "--out", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert (
        p.returncode == 2 and "--probes must be >= 2" in p.stderr and not (tmp_path / "x").exists()
    )


def test_psnr_slope_of_known_denoisers():
    from denoiserlens.geometry.slope import fit_slope, optimal_slope, psnr_curve

    assert optimal_slope(1.0) == 0.5 and optimal_slope(3.0) == 0.75
    x = 0.4 + 0.2 * torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    sigmas = [0.005, 0.01, 0.02, 0.04]  # no clipping: 0.6 + 5 sigma < 1
    p_in, p_out = psnr_curve(lambda y: y, x, sigmas)  # the identity: output = input
    assert fit_slope(p_in, p_out)[0] == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(p_in, -20 * np.log10(sigmas), atol=0.3)
    # the oracle projection onto a 16-dimensional subspace holding the images keeps 16 of the 256
    # noise dimensions: slope exactly 1, gain 10 log10(256 / 16) = 12 dB
    basis = torch.linalg.qr(torch.randn(256, 16, generator=torch.Generator().manual_seed(1)))[0]
    coef = 0.05 * torch.randn(128, 16, generator=torch.Generator().manual_seed(2))
    flat = (0.5 + coef @ basis.T).view(128, 1, 16, 16)
    assert flat.min() >= 0 and flat.max() <= 1
    proj = lambda y: (0.5 + ((y.reshape(len(y), -1) - 0.5) @ basis) @ basis.T).view(y.shape)  # noqa: E731
    p_in, p_out = psnr_curve(proj, flat, sigmas)
    assert fit_slope(p_in, p_out)[0] == pytest.approx(1.0, abs=0.05)
    assert np.median(p_out - p_in) == pytest.approx(10 * np.log10(256 / 16), abs=0.6)


def test_slope_command(tmp_path, bias_free):
    import json
    import sys
    from pathlib import Path

    from denoiserlens.models import save_model

    exe = str(Path(sys.executable).parent / "denoiserlens")
    save_model(bias_free, tmp_path / "m")
    p = run_cli(
        [
            exe,
            "slope",
            "--model",
            str(tmp_path / "m"),
            "--data",
            "c-alpha:6:16:0.5",
            "--alpha",
            "0.5",
            "--sigmas",
            "10,40",
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    c = json.loads((tmp_path / "s/slope.json").read_text())["curves"]["m"]
    assert len(c["psnr_in"]) == 2 and c["optimal_slope"] == pytest.approx(1 / 3)
    assert (tmp_path / "s/psnr_slope.png").stat().st_size > 3000
    p = run_cli(
        [
            exe,
            "slope",
            "--model",
            str(tmp_path / "m"),
            "--data",
            "c-alpha:6:16:0.5",
            "--sigmas",
            "0,40",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "all > 0" in p.stderr and not (tmp_path / "x").exists()


def test_disjoint_nested_subsets():
    from denoiserlens.geometry.generalization import disjoint_subsets

    s = disjoint_subsets(100, [1, 5, 20], seed=3)
    for n, (a, b) in s.items():
        assert len(a) == len(b) == n and not set(a) & set(b)
    assert set(s[5][0]) <= set(s[20][0]) and set(s[1][1]) <= set(s[5][1])
    with pytest.raises(ValueError, match="need 60"):
        disjoint_subsets(50, [30])


def test_similarity_measures():
    from denoiserlens.geometry.generalization import (
        nearest_training_similarity,
        paired_similarity,
    )

    rng = np.random.default_rng(0)
    a = rng.random((4, 1, 8, 8))
    assert np.allclose(paired_similarity(a, a, 0.5), 1.0)
    assert np.allclose(paired_similarity(a, 1.0 - a, 0.5), -1.0)  # mirrored about the mean
    train = np.concatenate([rng.random((6, 1, 8, 8)), a[2:3]])
    near = nearest_training_similarity(a, train, 0.5)
    assert near[2] == pytest.approx(1.0) and np.all(near[[0, 1, 3]] < 0.9)


def test_sweep_measures_only_samples_that_reached_sigma_L():
    from denoiserlens.geometry.generalization import measure_pair

    rng = np.random.default_rng(0)
    x_all = rng.integers(0, 256, (10, 1, 4, 4)).astype(np.float32)
    a = x_all[:3] / 255.0  # model a's samples: copies of its training images 0-2
    b = np.stack([a[0], rng.random((1, 4, 4)), a[2]])  # b's second sample is noise
    pair = {
        "a": a,
        "b": b,
        "finished_a": np.array([True, True, False]),
        "finished_b": np.array([True, False, True]),
    }
    r = measure_pair(pair, x_all, (np.arange(5), np.arange(5, 10)), 0.5)
    assert r["finished"] == [2, 2] and r["paired"] == pytest.approx([1.0])  # only sample 0
    assert r["nearest_training"][:2] == pytest.approx([1.0, 1.0])  # a's two finished copies
    none = {**pair, "finished_a": np.zeros(3, bool)}
    r = measure_pair(none, x_all, (np.arange(5), np.arange(5, 10)), 0.5)
    assert r["paired_median"] is None and r["paired"] == []


def test_generalization_command_runs_and_resumes(tmp_path):
    import json
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "denoiserlens")
    args = [
        exe,
        "generalization",
        "--data",
        "disks:40:16:0",
        "--sizes",
        "1,8",
        "--steps",
        "20",
        "--batch-size",
        "4",
        "--n-samples",
        "3",
        "--sigma-L",
        "20",
        "--out",
        str(tmp_path / "g"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "g/results.json").read_text())
    assert set(res["per_size"]) == {"1", "8"}
    # the cosines recomputed from the saved samples and each model's own training images (the
    # seeded disjoint subsets), centred on the data mean
    from denoiserlens.data import disks
    from denoiserlens.geometry.generalization import disjoint_subsets

    x = disks(40, 16, seed=0).images.astype(np.float64) / 255
    subsets = disjoint_subsets(40, [1, 8], seed=0)

    def unit(v):
        v = np.asarray(v, np.float64).reshape(len(v), -1) - x.mean()
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    for n, r in res["per_size"].items():
        with np.load(tmp_path / f"g/N{n}/samples.npz") as s:
            a, b, fa, fb = s["a"], s["b"], s["finished_a"], s["finished_b"]
        assert r["finished"] == [fa.sum(), fb.sum()]
        paired = (unit(a[fa & fb]) * unit(b[fa & fb])).sum(1)
        near = [
            (unit(v[f]) @ unit(x[rows]).T).max(1)
            for v, f, rows in zip((a, b), (fa, fb), subsets[int(n)], strict=True)
        ]
        assert r["paired"] == pytest.approx(paired.tolist(), abs=1e-9)
        assert r["nearest_training"] == pytest.approx(np.concatenate(near).tolist(), abs=1e-9)
        if len(paired):
            assert r["paired_median"] == pytest.approx(np.median(paired))
    weights = tmp_path / "g/N8/a/weights.safetensors"
    before = weights.stat().st_mtime_ns
    p = run_cli(args, capture_output=True, text=True)  # rerun: nothing retrained
    assert p.returncode == 0 and "training" not in p.stderr and weights.stat().st_mtime_ns == before
    assert json.loads((tmp_path / "g/results.json").read_text()) == res
    # killed before its first checkpoint: the run is started again, not "resumed" from nothing
    (tmp_path / "g/N8/a/train_state.safetensors").unlink()
    (tmp_path / "g/N8/a/weights.safetensors").unlink()
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "N = 8, model a: training" in p.stderr and "N = 8, model b" not in p.stderr
    # more steps than the runs had: they continue; the samples are drawn again
    samples = tmp_path / "g/N1/samples.npz"
    before = samples.stat().st_mtime_ns
    p = run_cli(args[:7] + ["30"] + args[8:], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "N = 1, model a: training" in p.stderr and samples.stat().st_mtime_ns != before
    after = samples.stat().st_mtime_ns
    p = run_cli(args[:5] + ["1,30"] + args[6:], capture_output=True, text=True)
    assert p.returncode == 2 and "need 60" in p.stderr
    # the same folder with another architecture: refused, nothing retrained or resampled
    p = run_cli(args + ["--norm", "none"], capture_output=True, text=True)
    assert p.returncode == 2 and "another architecture" in p.stderr
    assert samples.stat().st_mtime_ns == after
    p = run_cli(
        args[:5] + ["1"] + args[6:-1] + [str(tmp_path / "r"), "--residual"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    config = json.loads((tmp_path / "r/N1/a/config.json").read_text())
    assert config["model"]["residual"] is True and config["model"]["bias"] is False
