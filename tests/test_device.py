"""GPU readiness (issue 21, item 4). Where no GPU is lent, what can be checked on the CPU is: the
loops of phi, guidance and sampling copy nothing from the device to the host per step (counted
by intercepting every way a tensor's values reach Python), the GPU check script's plan holds
(its dry run), and the CUDA tests below skip cleanly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from denoiserlens.models import UNet, preset_config
from denoiserlens.represent import phi
from denoiserlens.sampling import SamplerConfig, sample
from denoiserlens.sampling.reconstruct import GuidanceConfig, middle_means, reconstruct

ROOT = Path(__file__).resolve().parents[1]
TO_HOST = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__index__")


def cuda(test):
    """A CUDA test: marked (``pytest -m cuda``, run by benchmarks/gpu_check.sh), skipped without one."""
    return pytest.mark.cuda(
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test)
    )


class HostCopies:
    """Counts the calls that copy a tensor's values to the host (on a GPU: a device-to-host
    transfer and a wait). Not counted, and still a wait on a GPU: truth tests (``if t.any()``)
    and ``nonzero`` / boolean masks (shapes that depend on the data), with which per-sample
    stopping picks the unfinished samples, a few per step; gpu_check.py counts every
    synchronization on a GPU."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in TO_HOST:
            original = getattr(torch.Tensor, name)

            def counted(t, *a, _original=original, **kw):
                caller = sys._getframe(1).f_code.co_filename
                # torch's Adam keeps its step count on the host (capturable=False, the default):
                # reading it copies nothing from a device
                self.count += f"torch{os.sep}optim" not in caller
                return _original(t, *a, **kw)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return UNet(preset_config("tiny")).eval()


def _copies(monkeypatch, fn) -> int:
    with monkeypatch.context() as m:
        counter = HostCopies(m)
        fn()
        return counter.count


def test_the_sampler_copies_nothing_to_the_host_per_step(monkeypatch, tiny):
    def run(steps):
        cfg = SamplerConfig(sigma_0=1.0, sigma_L=1e-4, fixed_step=True, h0=0.01, max_steps=steps)
        return lambda: sample(tiny.denoise, (3, 1, 16, 16), cfg, seed=0)

    few, many = _copies(monkeypatch, run(3)), _copies(monkeypatch, run(9))
    assert many == few, f"{(many - few) / 6:.1f} host copies per sampler step"


@pytest.mark.parametrize("matcher", ["adam", "descent"])
def test_algorithm_1_copies_nothing_to_the_host_per_level(monkeypatch, tiny, matcher):
    targets = torch.rand(2, 1, 16, 16)
    guidance = GuidanceConfig(matcher=matcher, max_iter=3, tol=1e-9)

    def run(levels):
        sigmas = torch.logspace(0, -2, levels)
        return lambda: reconstruct(
            middle_means(tiny),
            tiny.denoise,
            targets,
            2,
            sigmas=sigmas,
            guidance=guidance,
            n_noise=2,
            seed=0,
        )

    few, many = _copies(monkeypatch, run(3)), _copies(monkeypatch, run(7))
    assert many == few, f"{(many - few) / 4:.1f} host copies per level"


def test_phi_copies_nothing_to_the_host_per_draw(monkeypatch, tiny):
    x = torch.rand(4, 1, 16, 16)
    few = _copies(monkeypatch, lambda: phi(tiny, x, sigma=0.1, n_noise=2, seed=0))
    many = _copies(monkeypatch, lambda: phi(tiny, x, sigma=0.1, n_noise=8, seed=0))
    assert many == few


def test_the_gpu_check_plan_holds_without_a_gpu():
    env = {**os.environ, "PYTHON": sys.executable}  # this interpreter, whatever PYTHON says
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "plan holds" in proc.stdout


@cuda
def test_training_on_cuda_in_bf16_lowers_the_loss(tmp_path):
    from denoiserlens.data import disks
    from denoiserlens.train import TrainConfig, train

    cfg = TrainConfig(
        steps=60,
        batch_size=16,
        bf16=True,
        eval_every=60,
        checkpoint_every=60,
        test_fraction=0.1,
        sigma_max=0.4,
    )
    r = train(
        preset_config("tiny").to_dict(),
        disks(200, 32, seed=1),
        cfg,
        tmp_path / "r",
        device="cuda",
        progress=False,
    )
    assert r["finished"] and r["eval_psnr"]["25"] > 20.17 + 1  # above the noisy input's PSNR


@cuda
def test_phi_and_samples_on_cuda_equal_the_cpu_ones(tiny):
    x = torch.rand(4, 1, 16, 16)
    try:
        a = phi(tiny.cpu(), x, sigma=0.0, n_noise=1, seed=0)  # noise-free: the same numbers
        b = phi(tiny.cuda(), x.cuda(), sigma=0.0, n_noise=1, seed=0).cpu()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        cfg = SamplerConfig(sigma_0=1.0, sigma_L=0.05, max_steps=200)
        s1 = sample(tiny.denoise, (4, 1, 16, 16), cfg, seed=3, device="cuda")
        s2 = sample(tiny.denoise, (4, 1, 16, 16), cfg, seed=3, device="cuda")
        assert s1.images.is_cuda and torch.equal(s1.images, s2.images)  # seeded on the device
    finally:
        tiny.cpu()
