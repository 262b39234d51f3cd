import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli
from denoiserlens.models import UNet, preset_config, save_model
from denoiserlens.sampling import GaussianPrior, SamplerConfig, effective_sigma, sample

EXE = str(Path(sys.executable).parent / "denoiserlens")


@pytest.fixture(scope="module")
def prior():
    """A Gaussian on 8x8 images with 4 signal directions (std 0.07-0.22) in 60 of near-zero
    variance: as for images, the denoiser removes nearly all the noise, so ||residual|| ~ sigma."""
    n = 64
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.full((n,), 1e-6, dtype=torch.float64)
    lam[-4:] = torch.logspace(-2.3, -1.3, 4, dtype=torch.float64)
    return GaussianPrior(torch.full((n,), 0.5, dtype=torch.float64), (q * lam) @ q.T, (1, 8, 8))


def test_gaussian_prior_closed_forms(prior):
    g = torch.Generator().manual_seed(1)
    x = prior.draw(4000, g)
    emp = torch.cov(x.reshape(4000, -1).T)
    assert (emp - prior.cov).norm() / prior.cov.norm() < 0.06
    y = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    sig = prior.ml_sigma(y)
    assert abs(sig.mean().item() - 0.05) < 0.002 and sig.std().item() < 0.01
    # Tweedie: x_hat = y + sigma^2 score
    np.testing.assert_allclose(
        prior.denoise(y, 0.05), y + 0.05**2 * prior.score(y, 0.05), atol=1e-12
    )
    # the MMSE denoiser beats the identity and the blind one is as good as the oracle
    mse = lambda a: ((a - x) ** 2).mean().item()  # noqa: E731
    assert mse(prior.denoise(y, 0.05)) < 0.1 * mse(y)
    assert mse(prior.blind_denoise(y)) < 1.02 * mse(prior.denoise(y, 0.05))


def test_unconditional_samples_have_the_priors_mean_and_covariance(prior):
    n = 1500
    cfg = SamplerConfig(sigma_0=1.0, sigma_L=0.01, h0=0.02, beta=0.5, fixed_step=True)
    out = sample(lambda y: prior.blind_denoise(y).float(), (n, 1, 8, 8), cfg, seed=0)
    assert out.finished.all()
    x = out.images.double().reshape(n, -1)
    # mean: within sampling error (the norm of the error is about sqrt(tr Sigma / n))
    err = (x.mean(0) - prior.mean).norm() / (prior.eigvals.sum() / n).sqrt()
    assert err < 2.5
    # covariance: the variance along each signal direction within sampling error (sd ~ 0.04)
    v = ((x - x.mean(0)) @ prior.eigvecs).var(0)
    ratio = v[-4:] / prior.eigvals[-4:]
    assert torch.all((ratio > 0.88) & (ratio < 1.12)), ratio
    cov = torch.cov(x.T)
    assert (cov - prior.cov).norm() / prior.cov.norm() < 0.1


def test_default_adaptive_schedule_on_the_gaussian_prior(prior):
    """The default sampler (h_t = h0 t / (1 + h0 (t - 1)), h0 0.01, beta 0.5): the noise falls by
    (1 - beta h_t) per step, so from sigma_0 = 1 it passes sigma_L = 0.01 at the first T with
    prod_{t <= T} (1 - beta h_t) < 0.01, T = 47; the samples have the prior's mean, and the
    growing steps leave them under-dispersed (module docstring): 0.82-0.91 of the variance along
    the signal directions over two seeds, within 0.75-0.97 here."""
    assert SamplerConfig().step_size(1) == 0.01 and SamplerConfig().step_size(10**6) > 0.9999
    level, expected = 1.0, None
    for t in range(1, 1000):
        level *= 1 - 0.5 * SamplerConfig().step_size(t)
        if level < 0.01:
            expected = t
            break
    n = 1500
    out = sample(lambda y: prior.blind_denoise(y).float(), (n, 1, 8, 8), SamplerConfig(), seed=0)
    assert out.finished.all() and abs(out.steps.float().median().item() - expected) <= 2
    x = out.images.double().reshape(n, -1)
    assert (x.mean(0) - prior.mean).norm() / (prior.eigvals.sum() / n).sqrt() < 2.5
    ratio = ((x - x.mean(0)) @ prior.eigvecs).var(0)[-4:] / prior.eigvals[-4:]
    assert torch.all((ratio > 0.75) & (ratio < 0.97)), ratio


@pytest.mark.parametrize("ancestral", [True, False])
def test_the_loop_composes_a_fixed_schedule_with_the_blind_denoiser(prior, ancestral):
    """Composed samplers (one loop, any schedule): Algorithm 1's fixed levels drive the
    unconditional sampler too. With the ancestral step the samples have the prior's covariance;
    with the step as printed, the variance of well-resolved directions halves (its fixed point
    lambda / 2, ``reconstruct`` docstring), as it does under guidance."""
    from denoiserlens.sampling.reconstruct import Levels

    n = 1500
    levels = Levels(tuple(torch.logspace(0, -2, 200).tolist()), ancestral=ancestral)
    out = sample(lambda y: prior.blind_denoise(y).float(), (n, 1, 8, 8), levels, seed=2)
    assert out.finished.all() and (out.steps == 200).all()
    x = out.images.double().reshape(n, -1)
    assert (x.mean(0) - prior.mean).norm() / (prior.eigvals.sum() / n).sqrt() < 2.5
    ratio = ((x - x.mean(0)) @ prior.eigvecs).var(0)[-4:] / prior.eigvals[-4:]
    low, high = (0.88, 1.12) if ancestral else (0.4, 0.6)
    assert torch.all((ratio > low) & (ratio < high)), ratio


def test_sampling_is_seeded_and_finished_samples_cost_nothing(prior):
    calls = []

    def denoise(y):
        calls.append(len(y))
        return prior.blind_denoise(y).float()

    cfg = SamplerConfig(sigma_0=1.0, sigma_L=0.02, h0=0.05)
    a = sample(denoise, (16, 1, 8, 8), cfg, seed=3)
    n_calls = list(calls)
    b = sample(denoise, (16, 1, 8, 8), cfg, seed=3)
    c = sample(lambda y: prior.blind_denoise(y).float(), (16, 1, 8, 8), cfg, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    # each step evaluates only the unfinished samples; the batch shrinks as they finish
    assert sum(n_calls) == int(a.steps.sum()) and n_calls == sorted(n_calls, reverse=True)
    assert len(set(a.steps.tolist())) > 1  # samples finished at different steps
    for i in range(16):
        t = int(a.steps[i])
        sig = a.sigmas[:, i]
        assert torch.isfinite(sig[:t]).all() and torch.isnan(sig[t:]).all()
        assert sig[t - 1] < cfg.sigma_L <= sig[: t - 1].min()


def test_a_diverging_ascent_stops_unfinished_with_its_last_finite_estimate():
    """A denoiser that expands instead of contracting sends the ascent to infinity: the samples
    stop once their noise level passes DIVERGED sigma_0, unfinished, with their last estimate
    below it, instead of running to max_steps (or to NaN)."""
    from denoiserlens.sampling.loop import DIVERGED

    cfg = SamplerConfig(sigma_0=1.0, sigma_L=0.02, h0=0.5, fixed_step=True, max_steps=1000)
    s = sample(lambda y: 3 * y, (4, 1, 8, 8), cfg, seed=0)
    assert not s.finished.any() and (s.steps < 20).all()
    last = s.sigmas[s.steps - 1, torch.arange(4)]
    before = s.sigmas[s.steps - 2, torch.arange(4)]
    assert (last > DIVERGED).all() and (before <= DIVERGED).all()  # stopped at the first excess
    # the estimate returned is the previous step's: 3 y, with y's residual 2 y below the limit
    assert torch.isfinite(s.images).all()
    assert (s.images.flatten(1).norm(dim=1) / 8 <= 1.5 * DIVERGED).all()


def test_effective_sigma_of_a_residual():
    z = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(effective_sigma(0.3 * z), [0.3] * 3, rtol=0.02)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(sigma_L=2.0), "sigma_L"),
        (dict(h0=0.0), "h0"),
        (dict(beta=1.5), "beta"),
        (dict(max_steps=0), "max_steps"),
    ],
)
def test_sampler_config_is_validated(kw, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**kw)


def test_sample_command(tmp_path):
    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny", bias=False, norm="batch")).eval(), tmp_path / "m")
    args = [
        EXE,
        "sample",
        "--model",
        str(tmp_path / "m"),
        "--n",
        "4",
        "--size",
        "16",
        "--mean",
        "0.5",
        "--out",
        str(tmp_path / "s"),
        "--seed",
        "1",
        "--max-steps",
        "30",
    ]
    no_mean = run_cli(args[:8] + args[10:], capture_output=True, text=True)
    assert_user_error(no_mean, "records no training data mean")  # save_model records none
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    samples = np.load(tmp_path / "s/samples.npy")
    info = json.loads((tmp_path / "s/sampling.json").read_text())
    assert samples.shape == (4, 1, 16, 16) and samples.dtype == np.float32
    assert len(info["steps"]) == 4 and max(info["steps"]) <= 30
    from PIL import Image

    with Image.open(tmp_path / "s/samples.png") as grid:  # 4 tiles of 16 in one row, 2 px apart
        assert grid.size == (4 * 18 + 2, 20)
    p = run_cli(args[:-2] + ["--max-steps", "30"], capture_output=True, text=True)
    assert p.returncode == 0  # the same seed again: the same samples
    assert np.array_equal(np.load(tmp_path / "s/samples.npy"), samples)
    bad = run_cli(args[:7] + ["12"] + args[8:], capture_output=True, text=True)
    assert bad.returncode == 2 and "divisible by 8" in bad.stderr
    bad = run_cli(args + ["--sigma-L", "800"], capture_output=True, text=True)
    assert bad.returncode == 2 and "sigma_L" in bad.stderr


def test_sampler_presets_and_the_recorded_data_mean(tmp_path):
    """The representation preset is the authors' settings; a trained run starts at its training
    images' per-channel mean, --data at those images' own mean."""
    from denoiserlens.data import disks
    from denoiserlens.sampling import SAMPLER_PRESETS
    from denoiserlens.train import TrainConfig, train

    rep = SAMPLER_PRESETS["representation"]
    assert (rep.sigma_0, rep.sigma_L, rep.h0, rep.beta, rep.fixed_step, rep.max_steps) == (
        3.0,
        0.04,
        0.01,
        0.05,
        True,
        20000,
    )
    images = disks(64, 16, seed=3)
    cfg = TrainConfig(steps=2, batch_size=8, eval_every=2, checkpoint_every=2, test_fraction=0.25)
    train(preset_config("tiny").to_dict(), images, cfg, tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run/config.json").read_text())["data"]["channel_means"]
    from denoiserlens.data import split_indices

    train_rows, _ = split_indices(64, 0.25, 0)
    want = np.mean([images[int(i)].mean() for i in train_rows]) / 255
    assert recorded == pytest.approx([want], abs=1e-9)
    base = [
        EXE,
        "sample",
        "--model",
        str(tmp_path / "run"),
        "--n",
        "2",
        "--size",
        "16",
        "--max-steps",
        "2",
        "--preset",
        "representation",
    ]
    p = run_cli(base + ["--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "a/sampling.json").read_text())
    assert info["mean"] == recorded and info["config"]["sigma_0"] == 3.0
    assert info["config"]["fixed_step"] is True and info["config"]["beta"] == 0.05
    np.save(tmp_path / "flat.npy", np.full((3, 16, 16), 51, dtype=np.uint8))
    p = run_cli(
        base + ["--data", str(tmp_path / "flat.npy"), "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "b/sampling.json").read_text())["mean"] == pytest.approx([0.2])


def _aligned_target(prior):
    """phi = A x with A two of the prior's signal eigenvectors, and a target image."""
    a = prior.eigvecs[:, [-4, -2]].T.float()
    xc = prior.draw(1, torch.Generator().manual_seed(5)).float()
    s, sig = a.double(), prior.cov
    k = sig @ s.T @ torch.linalg.inv(s @ sig @ s.T)
    mean_c = prior.mean + k @ (s @ (xc.double().flatten() - prior.mean))
    return a, xc, mean_c, sig - k @ s @ sig


@pytest.mark.parametrize("variant", ["ancestral", "adaptive", "paper"])
def test_reconstruction_with_a_linear_phi_samples_the_conditional_gaussian(prior, variant):
    from denoiserlens.sampling.reconstruct import GuidanceConfig, reconstruct

    a, xc, mean_c, cov_c = _aligned_target(prior)
    n = 1200
    kw = dict(
        guidance=GuidanceConfig(lr=0.5, max_iter=3, tol=1e-6, matcher="descent"), n_noise=20, seed=1
    )
    if variant == "adaptive":
        kw["adaptive"] = SamplerConfig(sigma_0=1.0, sigma_L=0.01, h0=0.02, fixed_step=True)
    else:
        kw.update(sigmas=torch.logspace(0, -2, 200), ancestral=variant == "ancestral")
    r = reconstruct(
        lambda x: x.flatten(1) @ a.T, lambda y: prior.blind_denoise(y).float(), xc, n, **kw
    )
    x = r.images.double().reshape(n, -1)
    assert r.cosine.min() > 0.999 and r.relative_error.max() < 0.05  # phi is matched
    lam, vec = torch.linalg.eigh(cov_c)
    ratio = ((x - x.mean(0)) @ vec[:, -2:]).var(0) / lam[-2:]  # the two free directions
    if variant == "paper":
        # Algorithm 1 as printed: the variance of well-resolved directions halves (docstring)
        assert torch.all((ratio > 0.4) & (ratio < 0.6)), ratio
        return
    assert (x.mean(0) - mean_c).norm() / (cov_c.trace() / n).sqrt() < 2.5
    assert torch.all((ratio > 0.88) & (ratio < 1.12)), ratio
    assert (torch.cov(x.T) - cov_c).norm() / cov_c.norm() < 0.1
    # Figure 20: the matching step leaves the noise level as it was
    before, after = r.sigma_before.flatten(), r.sigma_after.flatten()
    ok = torch.isfinite(before)
    assert ((after[ok] - before[ok]).abs() / before[ok]).median() < 0.02


def test_guidance_stops_each_sample_on_its_own():
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    a = torch.tensor([[1.0, 0.0], [0.0, 0.3]])  # error along the second row converges slower
    phi_fn = lambda x: x.flatten(1) @ a.T  # noqa: E731
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).view(3, 1, 1, 2)
    target = torch.zeros(3, 2)
    out, info = guidance_step(
        phi_fn, x, target, GuidanceConfig(lr=0.2, max_iter=100, tol=0.01, matcher="descent")
    )
    it = info["iterations"].tolist()
    assert it[2] == 0 and torch.equal(out[2], x[2])  # already matched: never moved
    assert 0 < it[0] < it[1] < 100
    assert torch.all(info["final_loss"][:2] <= 0.01 * info["initial_loss"][:2])


def test_guidance_patience_stops_a_stalled_descent():
    """loss = ||x||^2 + 1 (an unreachable part of the target): step 1/4 halves x, the loss
    approaches 1 and the 1% target is never met. With patience 3 a sample stops at the first
    iteration whose loss is within 1% of the loss 3 iterations earlier: iteration 8 here."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    def phi_fn(v):
        return torch.cat([v.flatten(1), torch.ones(len(v), 1)], 1)

    x = torch.tensor([[2.0, 0.0], [0.0, 0.0]]).view(2, 1, 1, 2)  # the second starts at the floor
    target = torch.tensor([[0.0, 0.0, 2.0]]).expand(2, 3)
    _, stalled = guidance_step(
        phi_fn, x, target, GuidanceConfig(0.25, 50, 0.01, patience=3, matcher="descent")
    )
    _, paper = guidance_step(phi_fn, x, target, GuidanceConfig(0.25, 50, 0.01, matcher="descent"))
    assert stalled["iterations"].tolist() == [8, 3] and paper["iterations"].tolist() == [50, 50]
    torch.testing.assert_close(stalled["final_loss"], torch.tensor([1 + 4 / 4**8, 1.0]))
    with pytest.raises(ValueError, match="patience"):
        GuidanceConfig(patience=-1)


def test_guidance_momentum_speeds_an_ill_conditioned_descent():
    """phi = diag(1, 0.1) x, target 0, step 0.5: gradient descent zeroes the first coordinate in
    one step and shrinks the second by 0.99 per step (loss 0.01 * 0.99^100 after 50 steps);
    heavy-ball steps with momentum 0.9 reach a loss a thousand times lower."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    scale = torch.tensor([1.0, 0.1])

    def phi_fn(v):
        return v.flatten(1) * scale

    x, target = torch.ones(1, 1, 1, 2), torch.zeros(1, 2)
    _, plain = guidance_step(phi_fn, x, target, GuidanceConfig(0.5, 50, 0.0, matcher="descent"))
    _, heavy = guidance_step(
        phi_fn, x, target, GuidanceConfig(0.5, 50, 0.0, momentum=0.9, matcher="descent")
    )
    torch.testing.assert_close(plain["final_loss"], torch.tensor([0.01 * 0.99**100]))
    assert heavy["final_loss"] < 1e-3 * plain["final_loss"]
    with pytest.raises(ValueError, match="momentum"):
        GuidanceConfig(momentum=1.0)


def test_adam_matcher_is_the_authors_adam_on_the_per_image_mean_loss():
    """Five steps of the adam matcher equal Adam written out by hand (lr 0.01 by default,
    betas 0.9 / 0.999, eps 1e-8, bias-corrected) on the gradient of the batch mean of the
    per-image mean over channels of (phi(x) - target)^2; losses are reported as sums."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    a = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.3, 2.0]])
    phi_fn = lambda v: v.flatten(1) @ a.T  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x0, target = torch.randn(2, 1, 1, 3, generator=g), torch.randn(2, 2, generator=g)
    cfg = GuidanceConfig(max_iter=5, tol=0.0, matcher="adam")
    assert cfg.lr == 0.01
    out, info = guidance_step(phi_fn, x0, target, cfg)
    x, m, v = x0.clone(), torch.zeros_like(x0), torch.zeros_like(x0)
    for t in range(1, 6):
        r = phi_fn(x) - target  # d(mean_b mean_c r^2)/dx = (2 / (B * C)) r @ a
        grad = (2 / (2 * 2) * r @ a).view_as(x)
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        x = x - 0.01 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(info["initial_loss"], (phi_fn(x0) - target).pow(2).sum(1))
    torch.testing.assert_close(info["final_loss"], (phi_fn(x) - target).pow(2).sum(1))
    assert info["iterations"].tolist() == [5, 5]


def test_adam_matcher_steps_the_whole_batch_until_every_image_is_matched():
    """The authors' stopping rule: the batch stops once every image is below tol of its first
    loss; an image matched from the start keeps stepping with the others (ours would not)."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    phi_fn = lambda v: v.flatten(1)  # noqa: E731
    x = torch.tensor([[0.5, -0.5], [0.05, 0.05]]).view(2, 1, 1, 2)
    target = torch.zeros(2, 2)
    out, info = guidance_step(phi_fn, x, target, GuidanceConfig(0.01, 500, 0.01, matcher="adam"))
    n = info["iterations"].tolist()
    _, alone = guidance_step(
        phi_fn, x[1:], target[1:], GuidanceConfig(0.01, 500, 0.01, matcher="adam")
    )
    assert n[0] == n[1] and 0 < alone["iterations"].item() < n[0] / 3 and n[0] < 500
    assert torch.all(info["final_loss"] <= 0.01 * info["initial_loss"])
    _, ours = guidance_step(phi_fn, x, target, GuidanceConfig(0.5, 500, 0.01, matcher="descent"))
    assert ours["iterations"].tolist() == [1, 1]  # descent at step 1/2 lands on 0 at once
    with pytest.raises(ValueError, match="descent matcher"):
        GuidanceConfig(matcher="adam", momentum=0.9)


def test_bf16_guidance_reports_its_match_in_float32():
    """GuidanceConfig.bf16 runs only the matching passes (Algorithm 2) in bf16: the target phi
    and the phi match a reconstruction reports are float32."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, middle_means, reconstruct

    torch.manual_seed(0)
    model = UNet(preset_config("tiny")).eval()
    middle = middle_means(model)
    dtypes = []

    def phi_fn(v: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.linear(v.flatten(1), torch.ones(2, v[0].numel()))
        dtypes.append(out.dtype)
        return torch.cat([out.float(), middle(v)], 1)

    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    r = reconstruct(
        phi_fn,
        model.denoise,
        x,
        2,
        torch.logspace(0, -1.5, 4),
        guidance=GuidanceConfig(max_iter=3, bf16=True),
        n_noise=2,
        seed=1,
        record_noise=False,
    )
    # target phi at each level and the final match in float32, the matching passes in bf16
    assert dtypes[0] == dtypes[-1] == dtypes[-2] == torch.float32 and torch.bfloat16 in dtypes
    with torch.no_grad():
        got, want = phi_fn(r.images), phi_fn(x)
    torch.testing.assert_close(r.relative_error, (got - want).norm(dim=1) / want.norm())


def test_guidance_halves_a_step_size_that_overshoots():
    """phi = 3 x: plain gradient descent with step 1 multiplies the error by -17 per step; the
    guidance undoes each step that raised the loss and halves that sample's step size."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    x = torch.tensor([[1.0, -2.0], [0.5, 0.5]]).view(2, 1, 1, 2)
    out, info = guidance_step(
        lambda v: 3 * v.flatten(1),
        x,
        torch.zeros(2, 2),
        GuidanceConfig(lr=1.0, max_iter=40, tol=1e-4, matcher="descent"),
    )
    assert torch.all(info["final_loss"] <= 1e-4 * info["initial_loss"])
    assert torch.all(info["iterations"] < 40) and out.abs().max() < 0.01
    # a step size that never overshoots is left as it is: the same path as plain descent
    out2, info2 = guidance_step(
        lambda v: 3 * v.flatten(1),
        x,
        torch.zeros(2, 2),
        GuidanceConfig(lr=0.05, max_iter=3, tol=0.0, matcher="descent"),
    )
    assert torch.allclose(out2, x * (1 - 0.05 * 18) ** 3)


def test_guidance_without_steps_reports_the_loss_it_leaves():
    from denoiserlens.sampling.reconstruct import GuidanceConfig, guidance_step

    phi_fn = lambda x: x.flatten(1)  # noqa: E731
    x = torch.tensor([[3.0, 4.0]]).view(1, 1, 1, 2)
    out, info = guidance_step(
        phi_fn, x, torch.zeros(1, 2), GuidanceConfig(max_iter=0, matcher="descent")
    )
    assert torch.equal(out, x) and info["iterations"].item() == 0
    assert info["initial_loss"].item() == info["final_loss"].item() == 25.0


def test_a_fixed_schedule_denoises_at_every_level_down_to_the_last(prior):
    """Algorithm 1 ends with the estimate at sigma_0: T + 1 levels give T + 1 denoisings."""
    from denoiserlens.sampling.reconstruct import GuidanceConfig, reconstruct

    calls = []

    def denoise(y):
        calls.append(y.shape[0])
        return prior.blind_denoise(y).float()

    phi_fn = lambda x: x.flatten(1)[:, :2]  # noqa: E731
    targets = prior.draw(2, torch.Generator().manual_seed(0)).float()
    sigmas = torch.logspace(0, -2, 5)
    r = reconstruct(
        phi_fn,
        denoise,
        targets,
        3,
        sigmas,
        guidance=GuidanceConfig(max_iter=2),
        n_noise=2,
        seed=1,
        record_noise=False,
    )
    assert r.sigma_after.shape == (5, 6) and len(calls) == 5
    # the last estimate is taken at sigma_0 = 0.01: its effective noise is below sigma_1 = 0.03
    assert r.sigma_after[-1].max() < float(sigmas[-2])


def test_reconstruct_command(tmp_path):
    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), tmp_path / "m")
    from denoiserlens.data import disks

    np.save(tmp_path / "d.npy", disks(6, 16, seed=1).images)
    args = [
        EXE,
        "reconstruct",
        "--model",
        str(tmp_path / "m"),
        "--data",
        str(tmp_path / "d.npy"),
        "--rows",
        "0,3",
        "--n-samples",
        "3",
        "--steps",
        "6",
        "--max-iter",
        "3",
        "--matcher",
        "descent",
        "--patience",
        "2",
        "--n-noise",
        "2",
        "--out",
        str(tmp_path / "r"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "r/reconstruct.json").read_text())
    assert info["rows"] == [0, 3] and np.array(info["phi_cosine"]).shape == (2, 3)
    assert info["levels"] == 7  # --steps 6: sigma_max .. sigma_min, 7 levels
    assert info["guidance"]["patience"] == 2
    assert np.load(tmp_path / "r/samples.npy").shape == (6, 1, 16, 16)
    for fig in ("fig7_reconstructions", "fig20_noise_levels"):
        assert (tmp_path / "r" / f"{fig}.png").stat().st_size > 3000
    p = run_cli(
        args[:7] + ["0,9"] + args[8:-2] + ["--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "outside" in p.stderr and not (tmp_path / "x").exists()
    # targets the model cannot take: colour images for a gray model, sizes not divisible by 8
    np.save(tmp_path / "rgb.npy", np.zeros((2, 16, 16, 3), np.uint8))
    np.save(tmp_path / "odd.npy", np.zeros((2, 12, 12), np.uint8))
    for data, message in (("rgb.npy", "3-channel image"), ("odd.npy", "not divisible by 8")):
        p = run_cli(
            args[:5]
            + [str(tmp_path / data)]
            + args[6:-2]
            + ["--rows", "0", "--out", str(tmp_path / "x")],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 2 and message in p.stderr, p.stderr
        assert not (tmp_path / "x").exists()


def test_eq4_estimator_matches_the_closed_form_symmetrized_kl():
    from denoiserlens.sampling.distance import gaussian_kl, symmetrized_distance

    p1 = GaussianPrior.random((1, 4, 4), 0.01, 0.1, seed=1)
    p2 = GaussianPrior.random((1, 4, 4), 0.02, 0.08, seed=2)
    p2.mean = p2.mean + 0.05 * torch.linspace(-1, 1, 16, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    s1, s2 = p1.draw(4000, g), p2.draw(4000, g)
    d2, integrand = symmetrized_distance(
        s1, s2, p1.denoise, p2.denoise, torch.logspace(-3, 1.5, 60), g
    )
    exact = gaussian_kl(p1.mean, p1.cov, p2.mean, p2.cov) + gaussian_kl(
        p2.mean, p2.cov, p1.mean, p1.cov
    )
    assert d2 == pytest.approx(exact, rel=0.1), (d2, exact)
    assert integrand[0] < 1e-3 * integrand.max() and integrand[-1] < 1e-2 * integrand.max()
    # the same density: distance zero
    same, _ = symmetrized_distance(s1, s1, p1.denoise, p1.denoise, torch.logspace(-3, 1, 10), g)
    assert same == 0.0


def _distance_args(tmp_path, n_data: int) -> list[str]:
    """`distance` on 3 of ``n_data`` disks with a tiny random UNet, 2 matching steps, 2 draws."""
    from denoiserlens.data import disks

    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), tmp_path / "m")
    np.save(tmp_path / "d.npy", disks(n_data, 16, seed=2).images)
    model, data = str(tmp_path / "m"), str(tmp_path / "d.npy")
    return [
        EXE,
        "distance",
        "--model",
        model,
        "--data",
        data,
        "--images",
        "3",
        "--max-iter",
        "2",
        "--n-noise",
        "2",
    ]


def test_distance_command_tilted(tmp_path):
    args = _distance_args(tmp_path, 12) + [
        "--n-samples",
        "1",
        "--steps",
        "3",
        "--grid",
        "4",
        "--out",
        str(tmp_path / "r"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    study = json.loads((tmp_path / "r/distance.json").read_text())
    assert study["estimator"] == "tilted" and len(study["d_sq"]) == 3
    # the default grid: 0.255 to 255 / 10^(1/3) of 255; above it the data's Gaussian posterior
    expected = [10 ** (-3 + k * (8 / 3) / 3) for k in range(4)]
    assert study["sigmas"] == pytest.approx(expected, rel=1e-5)
    assert "gaussian_share" in study and 0 < study["tail_share"] < 1
    # tau read off the samples, and Eq. 4's closed form for tilted densities beside the estimate
    assert study["tau"] > 0 and len(study["d_sq_closed_form"]) == 3
    assert all(d > 0 for d in study["d_sq"]) and "spread" in study["constants"]
    assert "B/A over resampled pairs" in p.stdout
    # an explicit tau halved: the forms grow, d^2 rises (M^-1 with a smaller tau^2 I)
    half = args[:-1] + [str(tmp_path / "h"), "--tau", str(study["tau"] / 2)]
    assert run_cli(half, capture_output=True, text=True).returncode == 0
    halved = json.loads((tmp_path / "h/distance.json").read_text())
    assert all(b > a for a, b in zip(study["d_sq"], halved["d_sq"], strict=True))


def test_embedding_constants():
    from denoiserlens.sampling.distance import embedding_constants

    phi_sq = np.array([1.0, 2.0, 4.0, 8.0])
    c = embedding_constants(phi_sq, 3 * phi_sq * np.array([1.0, 2.0, 1.5, 1.0]))
    assert c["A"] == pytest.approx(3) and c["B"] == pytest.approx(6) and c["B_over_A"] == 2


def test_distance_command(tmp_path):
    options = "--n-samples 2 --steps 4 --grid 3 --matcher descent --patience 1 --bf16"
    options += " --estimator matching --sigma-min 2.55"
    args = _distance_args(tmp_path, 10) + options.split() + ["--out", str(tmp_path / "r")]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    study = json.loads((tmp_path / "r/distance.json").read_text())
    assert len(study["pairs"]) == 3 and len(study["d_sq"]) == 3
    # every pair of the 3 rows, and Eq. 4's grid: 3 levels log-spaced from 2.55/255 to 255/255
    (r0, r1, r2) = rows = study["rows"]
    assert len(set(rows)) == 3 and study["pairs"] == [[r0, r1], [r0, r2], [r1, r2]]
    assert study["sigmas"] == pytest.approx([0.01, 0.1, 1.0], rel=1e-6)
    assert study["phi_sigma"] == pytest.approx(25 / 255, rel=1e-6)
    # d^2 is the trapezoid rule in log sigma over each pair's integrand; at the lowest level the
    # guided denoisers of distinct targets differ (~1e-4; ~1e-15 at sigma 1, bf16), so d^2 > 0
    f, logs = np.array(study["integrands"]), np.log(study["sigmas"])
    assert f.shape == (3, 3) and np.all(f[:, 0] > 0) and all(v > 0 for v in study["phi_sq"])
    d_sq, phi_sq = np.array(study["d_sq"]), np.array(study["phi_sq"])
    np.testing.assert_allclose(d_sq, (0.5 * (f[:, 1:] + f[:, :-1]) * np.diff(logs)).sum(1), 1e-12)
    # the constants of inequality (3) by hand: the smallest and largest ratio d^2 / ||dphi||^2,
    # the 5th and 95th percentiles of three values (positions 0.1 and 1.9), Pearson's r
    lo, mid, hi = np.sort(d_sq / phi_sq)
    dx, dy = phi_sq - phi_sq.mean(), d_sq - d_sq.mean()
    expected = {"A": lo, "B": hi, "B_over_A": hi / lo}
    expected["B_over_A_5_95"] = (mid + 0.9 * (hi - mid)) / (lo + 0.1 * (mid - lo))
    expected["pearson"] = dx @ dy / np.sqrt((dx @ dx) * (dy @ dy))
    assert {k: study["constants"][k] for k in expected} == pytest.approx(expected, rel=1e-9)
    assert study["guidance"] == {
        "lr": 1.0,
        "max_iter": 2,
        "tol": 0.05,
        "patience": 1,
        "bf16": True,
        "momentum": 0.0,
        "matcher": "descent",
    }
    # the integral cut at the grid's first level is the whole integral
    (first,) = study["by_lower_limit"]  # a grid of 3 levels: one cut that keeps 2+ levels
    assert first["sigma_min"] == pytest.approx(min(study["sigmas"]))
    assert first["B_over_A"] == pytest.approx(study["constants"]["B_over_A"])
    assert "B/A with the integral from sigma_min up" in p.stdout
    assert (tmp_path / "r/fig8_distance.png").stat().st_size > 3000
    p = run_cli(
        args[:-2] + ["--momentum", "1.5", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert_user_error(p, "momentum")
    assert not (tmp_path / "x").exists()
    p = run_cli(
        args[:-2] + ["--images", "50", "--out", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert p.returncode == 2 and "exceeds" in p.stderr
    p = run_cli(
        args[:-2] + ["--images", "2", "--out", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert p.returncode == 2 and "--images >= 3" in p.stderr and not (tmp_path / "x").exists()


def test_group_targets_combine_the_phi_of_their_images():
    from denoiserlens.sampling.reconstruct import GroupTargets, ImageTargets

    torch.manual_seed(0)
    model = UNet(preset_config("tiny")).eval()
    from denoiserlens.sampling.reconstruct import middle_means

    phi_fn = middle_means(model)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    each = ImageTargets(phi_fn, x, 4, 0).phi(torch.zeros(3))
    union = GroupTargets(phi_fn, [x[:2], x[1:]], "max", 4, 0).phi(torch.zeros(2))
    centroid = GroupTargets(phi_fn, [x], "mean", 4, 0).phi(torch.zeros(1))
    torch.testing.assert_close(union[0], torch.maximum(each[0], each[1]))
    torch.testing.assert_close(union[1], torch.maximum(each[1], each[2]))
    torch.testing.assert_close(centroid[0], each.mean(0))
    with pytest.raises(ValueError, match="combine"):
        GroupTargets(phi_fn, [x], "median", 4, 0)
    # at a noise level, a centroid of 3 members with 4 draws costs 2 draws per member (6 passes)
    seen = []
    counting = lambda y: seen.append(len(y)) or phi_fn(y)  # noqa: E731
    GroupTargets(counting, [x], "mean", 4, 0).phi(torch.full((1,), 0.1))
    GroupTargets(counting, [x[:2]], "max", 4, 0).phi(torch.full((1,), 0.1))
    assert seen == [6, 8]


def test_reconstruct_from_unions_and_cluster_centroids(tmp_path):
    from denoiserlens.data import disks

    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), tmp_path / "m")
    np.save(tmp_path / "d.npy", disks(12, 16, seed=3).images)
    common = ["--model", str(tmp_path / "m"), "--data", str(tmp_path / "d.npy")]
    run = lambda *a: run_cli([EXE, *a], capture_output=True, text=True)  # noqa: E731
    fast = ["--n-samples", "2", "--steps", "3", "--max-iter", "2", "--n-noise", "2"]
    p = run("reconstruct", *common, *fast, "--union", "0+1,2+3", "--out", str(tmp_path / "u"))
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "u/reconstruct.json").read_text())
    assert info["targets"] == "union" and info["groups"] == [[0, 1], [2, 3]]
    assert (
        run(
            "represent", *common, "--sigmas", "25", "--n-noise", "1", "--out", str(tmp_path / "s")
        ).returncode
        == 0
    )
    assert (
        run(
            "cluster",
            "--store",
            str(tmp_path / "s"),
            "--k",
            "2",
            "--n-init",
            "1",
            "--out",
            str(tmp_path / "c"),
        ).returncode
        == 0
    )
    p = run(
        "reconstruct",
        *common,
        *fast,
        "--clusters-from",
        str(tmp_path / "c"),
        "--clusters",
        "0,1",
        "--members",
        "3",
        "--out",
        str(tmp_path / "k"),
    )
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "k/reconstruct.json").read_text())
    assignment = np.load(tmp_path / "c/assignments.npy")
    assert info["targets"] == "cluster" and len(info["groups"]) == 2
    assert all(assignment[r] == c for c, gr in enumerate(info["groups"]) for r in gr)
    np.save(tmp_path / "other.npy", disks(12, 16, seed=4).images)
    p = run(
        "reconstruct",
        "--model",
        str(tmp_path / "m"),
        "--data",
        str(tmp_path / "other.npy"),
        "--clusters-from",
        str(tmp_path / "c"),
        "--clusters",
        "0",
        "--out",
        str(tmp_path / "x"),
    )
    assert p.returncode == 2 and "not the images" in p.stderr and not (tmp_path / "x").exists()


def test_one_phi_in_the_store_the_reconstruction_targets_and_eq4(tmp_path):
    """For one seed and row, the stored phi, Algorithm 1's target and the phi of Eq. 4's pairs
    are the same numbers: one noise convention (represent.noisy_copies)."""
    from denoiserlens.data import disks, to_float
    from denoiserlens.represent import RepresentConfig, represent
    from denoiserlens.sampling.distance import distance_study
    from denoiserlens.sampling.reconstruct import GuidanceConfig, ImageTargets, middle_means

    torch.manual_seed(0)
    model = UNet(preset_config("tiny")).eval()
    ims = disks(12, 16, seed=4)
    store = represent(model, ims, tmp_path / "s", RepresentConfig(sigmas=(0.1,), n_noise=4, seed=3))
    rows = [9, 2, 5]
    x = to_float(np.stack([ims[r] for r in rows]))
    phi_fn = middle_means(model)
    target = ImageTargets(phi_fn, x, 4, 3, rows).phi(torch.full((3,), 0.1))
    np.testing.assert_allclose(target.numpy(), store.phi(0.1)[rows], rtol=1e-5, atol=1e-7)
    study = distance_study(
        phi_fn,
        model.denoise,
        x,
        [(0, 1), (1, 2)],
        torch.tensor([0.1, 0.5]),
        x.repeat_interleave(1, 0),
        1,
        GuidanceConfig(max_iter=1),
        4,
        0.1,
        3,
        rows,
    )
    stored = store.phi(0.1)
    want = [float(((stored[a] - stored[b]) ** 2).sum()) for a, b in ((9, 2), (2, 5))]
    np.testing.assert_allclose(study["phi_sq"], want, rtol=1e-4)


class _ReluOfLinear(torch.nn.Module):
    """A 'denoiser' whose middle block is ReLU(w_c y) per pixel and channel c (a 1x1 conv)."""

    block_names = ["E", "M", "D"]
    middle_block = "M"
    image_channels, size_multiple = 1, 1

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def blocks_until(self, y, stop):
        from denoiserlens.models.base import BlockIO

        m = torch.relu(y * self.w.view(1, -1, 1, 1))
        return {"E": BlockIO("E", y, y), "M": BlockIO("M", y, m)}


def test_phi_of_a_relu_of_a_linear_map_has_its_closed_form():
    """E[ReLU(a + s z)] = a Phi(a / s) + s phi(a / s) with a = w x, s = |w| sigma: phi is the
    pixel mean of that; the estimate from 400 draws of 64 pixels is within 4 sd of it."""
    from scipy.stats import norm

    from denoiserlens.represent import phi

    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.linspace(-0.5, 0.8, 64).view(1, 1, 8, 8)
    sigma = 0.3
    got = phi(_ReluOfLinear(w), x, sigma, n_noise=400, seed=1)[0].double()
    a = (w.view(-1, 1) * x.flatten()).double()
    s = (w.abs() * sigma).double().view(-1, 1)
    want = (a * torch.from_numpy(norm.cdf(a / s)) + s * torch.from_numpy(norm.pdf(a / s))).mean(1)
    sd = s.squeeze(1) / (64 * 400) ** 0.5
    assert torch.all((got - want).abs() < 4 * sd), (got, want, sd)


def test_samples_do_not_depend_on_the_batch_nor_reconstructions_on_the_target_order(prior):
    from denoiserlens.sampling.reconstruct import GuidanceConfig, ImageTargets, reconstruct

    denoise = lambda y: prior.blind_denoise(y).float()  # noqa: E731
    cfg = SamplerConfig(sigma_0=1.0, sigma_L=0.05)
    whole = sample(denoise, (4, 1, 8, 8), cfg, seed=2)
    parts = [sample(denoise, (2, 1, 8, 8), cfg, seed=2, ids=ids) for ids in ([0, 1], [2, 3])]
    torch.testing.assert_close(torch.cat([p.images for p in parts]), whole.images, rtol=0, atol=0)
    phi_fn = lambda v: v.flatten(1)[:, :3]  # noqa: E731
    xc = prior.draw(2, torch.Generator().manual_seed(0)).float()
    kw = dict(guidance=GuidanceConfig(max_iter=2), n_noise=2, seed=4, record_noise=False)
    sig = torch.logspace(0, -1, 4)
    ab = reconstruct(phi_fn, denoise, ImageTargets(phi_fn, xc, 2, 4, [5, 7]), 2, sig, **kw)
    ba = reconstruct(phi_fn, denoise, ImageTargets(phi_fn, xc.flip(0), 2, 4, [7, 5]), 2, sig, **kw)
    torch.testing.assert_close(ab.images[:2], ba.images[2:], rtol=0, atol=0)
    torch.testing.assert_close(ab.images[2:], ba.images[:2], rtol=0, atol=0)
