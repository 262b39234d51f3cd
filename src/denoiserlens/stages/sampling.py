"""Section 3 as stages: unconditional samples (Figure 19), reconstructions from phi (Algorithms 1
and 2, Figures 7 and 20). Each stage is a config (every default once, noise levels in [0, 255]
units as on the command line), a function that runs it and a result that saves itself; the
``sample`` and ``reconstruct`` commands and the report's sections call the same functions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from denoiserlens.data import ImageSet, read_source, to_float
from denoiserlens.errors import UserError
from denoiserlens.fileio import atomic_path, read_json, write_json
from denoiserlens.models import Denoiser
from denoiserlens.sampling import SAMPLER_PRESETS, SamplerConfig, sample
from denoiserlens.sampling.distance import (
    ESTIMATORS,
    MAX_PRIOR_VALUES,
    distance_experiment,
    gaussian_prior,
)
from denoiserlens.sampling.reconstruct import (
    GroupTargets,
    GuidanceConfig,
    ImageTargets,
    Reconstruction,
    middle_means,
    reconstruct,
)
from denoiserlens.settings import setting
from denoiserlens.stages.common import SIGMA_HELP, check_images


def recorded_mean(model_path: str | Path, channels: int) -> list[float]:
    """The training data's per-channel mean recorded in a run directory's config.json."""
    config = Path(model_path) / "config.json"
    recorded = read_json(config).get("data", {}).get("channel_means") if config.is_file() else None
    if recorded is None:
        raise UserError(
            f"{model_path} records no training data mean: give --data (images like "
            "the training set) or --mean"
        )
    if len(recorded) != channels:
        raise UserError(f"{config}: {len(recorded)} channel means for a {channels}-channel model")
    return recorded


# --- Figure 19 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleConfig:
    """Unconditional samples: ``preset``'s sampler, its settings overridden where given."""

    n: int = setting(16, "Number of samples.", kind="count")
    size: int = setting(32, "Height and width.", kind="int")
    preset: str = setting(
        "representation",
        "representation: the authors' samples of this paper, sigma_0 765, fixed h 0.01, beta "
        "0.05, sigma_L 10.2, 20000 steps at most; ks2021: sigma_0 255, adaptive h, beta 0.5, "
        "sigma_L 2.55 (Kadkhodaie & Simoncelli 2021: quick). Their samples compared: "
        "BENCHMARKS.md, Sampler presets. The options below override it.",
        choices=tuple(SAMPLER_PRESETS),
    )
    mean_data: str | None = setting(
        None, "Start at the per-channel mean of these images (a --data source).", name="data"
    )
    mean: float | None = setting(
        None,
        "Start at this mean, in [0, 1] [default: the training data's, from the run directory, "
        "or that of --data].",
    )
    sigma_0: float | None = setting(None, f"Initial noise level, {SIGMA_HELP}.", kind="sigma")
    sigma_L: float | None = setting(  # noqa: N815 (the paper's name)
        None, f"Stop below this effective noise level, {SIGMA_HELP}.", kind="sigma", name="sigma-L"
    )
    h0: float | None = setting(None, "Initial step size.")
    beta: float | None = setting(None, "1 - injected noise.")
    fixed_step: bool | None = setting(
        None,
        "h_t = h0 at every step (slower, less biased), or growing steps.",
        off="adaptive-step",
    )
    max_steps: int | None = setting(None, "Steps at most.", kind="count")
    batch_size: int = setting(
        64, "Samples per batch (the samples do not depend on it).", kind="count"
    )
    bf16: bool = setting(False, "bf16 autocast for the network.")
    reference: str | None = setting(
        None,
        "Held-out images (a --data source, e.g. fashion-mnist:test): print and save pixel "
        "statistics and the Frechet distance in --classifier's features, with the data-vs-data "
        "floor at the same n (needs 2 x --n images).",
    )
    classifier: str | None = setting(
        None,
        "Frechet distance and class shares by this `denoiserlens classifier` folder [default: "
        "the bundled Fashion-MNIST one, for 32x32 gray images].",
        kind="path",
    )
    seed: int = setting(0, "Seed: sample i draws its noise from (seed, i).", kind="int")

    def __post_init__(self) -> None:
        self.sampler()  # validated now, before any work
        if self.size < 1 or self.n < 1 or self.batch_size < 1:
            raise UserError("--n, --size and --batch-size must be >= 1")
        if self.mean is not None and not 0 <= self.mean <= 1:
            raise UserError(f"--mean must be in [0, 1], got {self.mean}")

    def sampler(self) -> SamplerConfig:
        """The preset, with the settings given here; noise levels in [0, 1] units."""
        given = dict(
            sigma_0=self.sigma_0 and self.sigma_0 / 255,
            sigma_L=self.sigma_L and self.sigma_L / 255,
            h0=self.h0,
            beta=self.beta,
            fixed_step=self.fixed_step,
            max_steps=self.max_steps,
        )
        try:
            return dataclasses.replace(
                SAMPLER_PRESETS[self.preset], **{k: v for k, v in given.items() if v is not None}
            )
        except ValueError as e:
            raise UserError(str(e)) from None

    def start_mean(self, channels: int, model_path: str | Path | None) -> list[float]:
        """Where the sampler starts, per channel: ``mean``, else the mean of ``mean_data``'s
        images, else the training data's mean recorded in the run directory ``model_path``."""
        if self.mean is not None:
            return [self.mean] * channels
        if self.mean_data is not None:
            images = read_source(self.mean_data, channels=channels)
            if len(images) == 0:
                raise UserError(f"{self.mean_data}: no images")
            return images.channel_means()
        if model_path is None:
            raise UserError("give --data (images like the training set) or --mean")
        return recorded_mean(model_path, channels)


@dataclass
class SampleResult:
    """Samples (N, C, H, W) float32 in [0, 1], each one's steps, whether it reached sigma_L, its
    last effective noise level; where the sampler started; the quality measures if asked."""

    cfg: SampleConfig
    images: np.ndarray
    steps: list[int]
    finished: list[bool]
    final_sigma: list[float]
    mean: list[float]
    quality: object | None = None  # quality.SampleQuality
    judged_by: str | None = None  # the classifier's folder, "bundled", or None

    def summary(self) -> list[str]:
        lines = [
            f"{len(self.images)} samples ({sum(self.finished)} reached sigma_L), median "
            f"{int(np.median(self.steps))} steps"
        ]
        return lines + (self.quality.lines() if self.quality is not None else [])

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """samples.npy, samples.png, sampling.json (and quality.json); the names written."""
        from denoiserlens.figures.common import save_image_grid

        out = Path(out)
        with atomic_path(out / "samples.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, self.images)
        save_image_grid(out / "samples.png", self.images)
        s = self.cfg.sampler()
        record = {
            "model": model,
            "seed": self.cfg.seed,
            "mean": self.mean,
            "size": self.cfg.size,
            "preset": self.cfg.preset,
            "config": dataclasses.asdict(s),
            "steps": self.steps,
            "finished": self.finished,
            "final_sigma": self.final_sigma,
        }
        write_json(out / "sampling.json", record)
        names = ["samples.png", "samples.npy", "sampling.json"]
        if self.quality is not None:
            q = {"reference": self.cfg.reference, "classifier": self.judged_by}
            write_json(out / "quality.json", q | self.quality.to_dict())
            names.append("quality.json")
        return names


def _sample_judge(cfg: SampleConfig, shape: tuple[int, ...], warn: Callable[[str], None]):
    """(classifier or None, reference images) for ``cfg.reference``, checked before any
    sampling: the classifier must take images of ``shape``, the reference hold enough images."""
    from denoiserlens.quality import check_reference, fitting_classifier, open_reference

    clf = fitting_classifier(cfg.classifier, shape)
    if clf is None:
        warn(
            "no classifier takes these images: pixel statistics only (train one with "
            "`denoiserlens classifier`)"
        )
    ref = open_reference(cfg.reference, clf)
    try:
        check_reference(cfg.n, shape, ref, clf is not None)
    except UserError as e:
        raise UserError(f"--reference {cfg.reference}: {e}") from None
    return clf, ref


def run_sample(
    model: Denoiser,
    cfg: SampleConfig,
    device: str | torch.device = "cpu",
    model_path: str | Path | None = None,
    mean: list[float] | None = None,
    progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] = lambda m: None,
) -> SampleResult:
    """``cfg.n`` samples (Figure 19) in batches of ``cfg.batch_size`` from ``mean`` (default:
    :meth:`SampleConfig.start_mean`); sample i is seeded by (seed, i), so any batch size gives
    the same samples. ``progress(k)``: k more samples are done."""
    if cfg.size % model.size_multiple:
        raise UserError(f"--size {cfg.size} is not divisible by {model.size_multiple}")
    sampler = cfg.sampler()
    c = model.image_channels
    means = mean if mean is not None else cfg.start_mean(c, model_path)
    start = torch.tensor(means, device=device, dtype=torch.float32).view(-1, 1, 1)
    shape = (c, cfg.size, cfg.size)
    judge = None if cfg.reference is None else _sample_judge(cfg, shape, warn)

    def denoise(y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16):
            return model.denoise(y).float()

    images, steps, finished, last = [], [], [], []
    for b0 in range(0, cfg.n, cfg.batch_size):
        n = min(cfg.batch_size, cfg.n - b0)
        done = [0]

        def tick(k: int, total: int, done: list = done) -> None:
            if progress is not None:
                progress(k - done[0])
            done[0] = k

        out = sample(
            denoise, (n, *shape), sampler, start, cfg.seed, range(b0, b0 + n), device, tick
        )
        images.append(out.images.cpu().numpy().astype(np.float32))
        steps += out.steps.tolist()
        finished += out.finished.tolist()
        hist = out.sigmas.cpu().numpy()
        last += [float(hist[int(t) - 1, i]) for i, t in enumerate(out.steps.tolist())]
    x = np.concatenate(images)
    quality = judged_by = None
    if judge is not None:
        from denoiserlens.quality import sample_quality

        quality = sample_quality(x, judge[1], judge[0], cfg.seed)
        judged_by = str(cfg.classifier or "bundled") if judge[0] else None
    return SampleResult(cfg, x, steps, finished, last, list(means), quality, judged_by)


# --- Figures 7 and 20 -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReconstructConfig:
    """Algorithm 1 (its guidance, Algorithm 2, in ``guidance``) for targets given as data rows
    (``rows``), unions of two images' active channels (``unions``) or cluster centroids
    (``clusters_from``, ``clusters``)."""

    rows: tuple[int, ...] = setting((0,), "Comma list of target rows.", kind="rows")
    unions: tuple[tuple[int, int], ...] | None = setting(
        None,
        "Comma list of A+B row pairs: condition on the union of the active channels of images "
        "A and B (elementwise max of their phi), instead of --rows.",
        kind="pairs",
        name="union",
    )
    clusters_from: str | None = setting(
        None,
        "A `cluster` output folder: condition on the centroids (mean phi of members) of "
        "--clusters, instead of --rows; --data must be the store's images.",
        kind="path",
    )
    clusters: tuple[int, ...] | None = setting(
        None, "Comma list of cluster ids (--clusters-from).", kind="rows"
    )
    members: int = setting(16, "Random members per cluster whose phi are averaged.", kind="count")
    n_samples: int = setting(8, "Samples per target.", kind="count")
    sigma_max: float = setting(255.0, f"Initial noise level, {SIGMA_HELP}.", kind="sigma")
    sigma_min: float = setting(2.55, f"Final noise level, {SIGMA_HELP}.", kind="sigma")
    steps: int = setting(100, "Geometric schedule length (fixed schedule).", kind="count")
    ancestral: bool = setting(
        True,
        "Score step: exact Gaussian posterior step, or Algorithm 1 as printed (which halves "
        "the variance of well-resolved directions).",
        off="paper-step",
    )
    adaptive: bool = setting(False, "Adaptive steps of the unconditional sampler.")
    h0: float = setting(0.02, "Adaptive: step size.")
    beta: float = setting(0.5, "Adaptive: noise.")
    guidance: GuidanceConfig = GuidanceConfig(max_iter=20, tol=0.05)
    n_noise: int = setting(20, "Noise draws averaged in each target phi.", kind="count")
    classifier: str | None = setting(
        None,
        "Class agreement of --rows targets with their reconstructions, by this `denoiserlens "
        "classifier` folder [default: the bundled Fashion-MNIST one, for 32x32 gray images].",
        kind="path",
    )
    record_noise: bool = setting(
        True, "Measure the noise level before each matching step too (Figure 20)."
    )
    seed: int = setting(0, "Seed of the targets' noise and of every sample's.", kind="int")

    def __post_init__(self) -> None:
        if min(self.n_samples, self.n_noise, self.steps, self.members) < 1:
            raise UserError("--n-samples, --n-noise, --steps and --members must be >= 1")
        if not 0 < self.sigma_min < self.sigma_max:
            raise UserError("need 0 < --sigma-min < --sigma-max")
        if self.unions and self.clusters_from:
            raise UserError("give --union or --clusters-from, not both")
        self.schedule()

    def schedule(self) -> tuple[torch.Tensor | None, SamplerConfig | None]:
        """(Algorithm 1's levels, None) or (None, the adaptive sampler), in [0, 1] units."""
        hi, lo = self.sigma_max / 255, self.sigma_min / 255
        if not self.adaptive:
            return torch.logspace(math.log10(hi), math.log10(lo), self.steps + 1), None
        try:
            return None, SamplerConfig(sigma_0=hi, sigma_L=lo, h0=self.h0, beta=self.beta)
        except ValueError as e:
            raise UserError(str(e)) from None

    def target_groups(self, images: ImageSet) -> tuple[list[list[int]], str, str]:
        """([rows of each target group], combine, kind) of ``images``."""
        if self.clusters_from is not None:
            return _cluster_groups(images, Path(self.clusters_from), self), "mean", "cluster"
        if self.unions:
            groups, combine, kind = [list(p) for p in self.unions], "max", "union"
        else:
            groups, combine, kind = [[r] for r in self.rows], "mean", "rows"
        n = len(images)
        bad = sorted({r for gr in groups for r in gr if not 0 <= r < n})
        if bad:
            raise UserError(f"rows {bad} are outside the data's {n} images")
        return groups, combine, kind


def _cluster_groups(images: ImageSet, folder: Path, cfg: ReconstructConfig) -> list[list[int]]:
    """``cfg.members`` random members (seeded) of each of ``cfg.clusters`` in a cluster folder."""
    from denoiserlens.represent import Store

    if not (folder / "clusters.json").is_file():
        raise UserError(f"{folder}: not a cluster output folder (no clusters.json)")
    info = read_json(folder / "clusters.json")
    store = Store(info["store"])
    if images.fingerprint != store.meta["data"]["fingerprint"]:
        raise UserError(f"--data is not the images of the clustered store {info['store']}")
    assignment = np.load(folder / "assignments.npy")
    if not cfg.clusters:
        raise UserError("--clusters-from needs --clusters (comma list of cluster ids)")
    rng = np.random.default_rng(cfg.seed)
    groups = []
    for c in cfg.clusters:
        rows = np.flatnonzero(assignment == c)
        if len(rows) == 0:
            raise UserError(f"cluster {c} has no members (k = {info['k']})")
        groups.append(sorted(rng.choice(rows, min(cfg.members, len(rows)), replace=False).tolist()))
    return groups


@dataclass
class ReconstructResult:
    """Reconstructions (K * n_samples, C, H, W), target-major; the targets' groups of rows and
    the image shown for each; the phi match of every sample; class agreement where measured."""

    cfg: ReconstructConfig
    kind: str
    groups: list[list[int]]
    names: list[str]
    shown: list  # per target: its image (C, H, W), or the images of its union
    rec: Reconstruction
    quality: object | None = None  # quality.ReconstructionQuality

    @property
    def images(self) -> np.ndarray:
        return self.rec.images.cpu().numpy().astype(np.float32)

    @property
    def rows(self) -> list[int]:
        return [gr[0] for gr in self.groups]

    def match(self) -> tuple[list[list[float]], list[list[float]]]:
        """(phi cosine, phi relative error) per target, per sample."""
        k, n = len(self.groups), self.cfg.n_samples
        return self.rec.cosine.view(k, n).tolist(), self.rec.relative_error.view(k, n).tolist()

    def summary(self) -> list[str]:
        cos, rel = self.match()
        lines = [
            f"{self.kind} target {i} (row {row}): phi cosine {np.median(cos[i]):.3f}, relative "
            f"error {np.median(rel[i]):.3f} (median of {self.cfg.n_samples} samples)"
            for i, row in enumerate(self.rows)
        ]
        return lines + (self.quality.lines() if self.quality is not None else [])

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """fig7_reconstructions.png, fig20_noise_levels.png, samples.npy, reconstruct.json."""
        from denoiserlens.figures.sampling import plot_noise_levels, plot_reconstructions

        out = Path(out)
        x = self.images
        with atomic_path(out / "samples.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, x)
        title = {"rows": "target", "union": "union of A | B", "cluster": "a member"}[self.kind]
        plot_reconstructions(
            out / "fig7_reconstructions.png", self.shown, x, self.cfg.n_samples, title
        )
        r = self.rec
        plot_noise_levels(
            out / "fig20_noise_levels.png",
            r.sigma_before.cpu().numpy(),
            r.sigma_after.cpu().numpy(),
        )
        cos, rel = self.match()
        c = self.cfg
        write_json(
            out / "reconstruct.json",
            {
                "quality": self.quality and self.quality.to_dict(),
                "model": model,
                "targets": self.kind,
                "groups": self.groups,
                "rows": self.rows,
                "names": self.names,
                "n_samples": c.n_samples,
                "seed": c.seed,
                "adaptive": c.adaptive,
                "ancestral": c.ancestral,
                "sigma_max_255": c.sigma_max,
                "sigma_min_255": c.sigma_min,
                "levels": len(r.sigma_after),
                "guidance": dataclasses.asdict(c.guidance),
                "n_noise": c.n_noise,
                "phi_cosine": cos,
                "phi_relative_error": rel,
            },
        )
        return [
            "fig7_reconstructions.png",
            "fig20_noise_levels.png",
            "samples.npy",
            "reconstruct.json",
        ]


def run_reconstruct(
    model: Denoiser, images: ImageSet, cfg: ReconstructConfig, device: str | torch.device = "cpu"
) -> ReconstructResult:
    """``cfg.n_samples`` reconstructions of each target of ``images`` from its phi (Algorithm
    1), starting from the data's per-channel mean (not the target's); class agreement of image
    targets by the classifier where one takes such images."""
    from denoiserlens.quality import fitting_classifier, reconstruction_quality

    groups, combine, kind = cfg.target_groups(images)
    check_images(model, images.subset(sorted({r for gr in groups for r in gr})))
    picked = [gr[0] for gr in groups]  # the image shown at the centre of each panel
    targets = to_float(images.subset(picked).as_array()).to(device)
    sigmas, adaptive = cfg.schedule()
    mean = torch.tensor(images.channel_means(), device=device).view(-1, 1, 1)
    phi_fn = middle_means(model)
    target = ImageTargets(phi_fn, targets, cfg.n_noise, cfg.seed, picked)  # noise seeded by row
    if kind != "rows":
        members = [to_float(images.subset(gr).as_array()).to(device) for gr in groups]
        target = GroupTargets(phi_fn, members, combine, cfg.n_noise, cfg.seed, groups)
    rec = reconstruct(
        phi_fn,
        model.denoise,
        target,
        cfg.n_samples,
        sigmas,
        adaptive,
        cfg.guidance,
        cfg.n_noise,
        mean,
        cfg.seed,
        ancestral=cfg.ancestral,
        record_noise=cfg.record_noise,
    )
    shown = list(targets.cpu().numpy())  # the first image of each group
    if kind == "union":  # both images of each union, side by side
        shown = [list(to_float(images.subset(gr).as_array()).numpy()) for gr in groups]
    quality = None
    x = rec.images.cpu().numpy()
    clf = fitting_classifier(cfg.classifier, x.shape[1:]) if kind == "rows" else None
    if clf is not None:
        labels = None if images.labels is None else images.labels[picked]
        quality = reconstruction_quality(x, targets.cpu().numpy(), clf, labels)
    names = [images.names[i] for i in picked]
    return ReconstructResult(cfg, kind, groups, names, shown, rec, quality)


# --- Eq. 4, Figure 8 (right) ----------------------------------------------------------------


TILTED_GRID_TOP = 118.361  # of 255: the tilted estimator's network grid ends here (DistanceConfig)


@dataclass(frozen=True)
class DistanceConfig:
    """Figure 8 (right) as one experiment. ``rows`` None: ``images`` rows of the data drawn with
    ``seed``. Algorithm 1 draws ``n_samples`` of each conditional on ``steps`` + 1 levels
    log-spaced from 255 to 2.55; Eq. 4 runs on ``grid`` levels from ``sigma_min`` to
    ``sigma_max``. The tilted estimator's integral above the grid uses the mean and covariance
    of ``prior_images`` images of the data drawn with ``seed`` (images of at most
    ``MAX_PRIOR_VALUES`` values; beyond, the sigma^-2 tail). The grid stops below sigma 1, the
    edge of the training range, where the network's Tweedie covariance sigma^2 J is no longer
    a covariance and its integrand depends on the noise draw; the Gaussian posterior, exact as
    sigma grows, takes over there (BENCHMARKS.md, "Eq. 4 with tilted conditionals")."""

    images: int = setting(
        10, "Random images of the data; every pair of them is measured.", kind="count"
    )
    rows: tuple[int, ...] | None = setting(
        None, "Comma list of data rows to pair (instead of --images).", kind="rows"
    )
    n_samples: int = setting(2, "Samples of each conditional density (Monte Carlo).", kind="count")
    steps: int = setting(60, "Reconstruction steps.", kind="count")
    grid: int = setting(10, "Sigmas of the integral.", kind="count")
    sigma_min: float = setting(0.255, f"Lowest level of the grid, {SIGMA_HELP}.", kind="sigma")
    sigma_max: float | None = setting(
        None,
        f"Highest level of the grid, {SIGMA_HELP} [default: 118.361 = 255 / 10^(1/3) for tilted, "
        "the Gaussian posterior above; 255 for matching, which has no continuation].",
        kind="sigma",
    )
    phi_sigma: float = setting(25.0, f"phi at this noise level, {SIGMA_HELP}.", kind="sigma")
    n_noise: int = setting(  # the Jacobian of phi costs d x n_noise backward passes per image
        4, "Noise draws averaged in each phi.", kind="count"
    )
    estimator: str = setting(
        "tilted",
        "tilted: Kalman-corrected denoisers of p(x) exp(-|phi(x) - phi_i|^2 / 2 tau^2); "
        "matching: Algorithm 2's matching step at each level.",
        choices=ESTIMATORS,
    )
    tau: float | None = setting(
        None, "The tilt's width (tilted); default: the rms of phi(sample) - phi(target)."
    )
    guidance: GuidanceConfig = GuidanceConfig(max_iter=10, tol=0.05)
    seed: int = setting(0, "Seed of the pairs, the noise and the samples.", kind="int")
    prior_images: int = setting(
        20000, "Images of the data whose mean and covariance continue the integral.", kind="count"
    )

    def __post_init__(self) -> None:
        if self.sigma_max is None:  # where the network hands over to the Gaussian (docstring)
            top = TILTED_GRID_TOP if self.estimator == "tilted" else 255.0
            object.__setattr__(self, "sigma_max", top)
        count = self.images if self.rows is None else len(self.rows)
        if count < 3 or self.n_samples < 1 or self.steps < 1 or self.grid < 2:
            raise UserError("need --images >= 3, --n-samples >= 1, --steps >= 1, --grid >= 2")
        if not 0 < self.sigma_min < self.sigma_max:
            raise UserError("need 0 < --sigma-min < --sigma-max")
        if self.tau is not None and not (self.tau > 0 and math.isfinite(self.tau)):
            raise UserError(f"--tau must be a positive number, got {self.tau}")
        if self.estimator not in ESTIMATORS:
            raise UserError(f"unknown estimator {self.estimator!r}; choose from {list(ESTIMATORS)}")

    def pick_rows(self, n: int) -> list[int]:
        """The data rows paired, of a data set of ``n`` images."""
        if self.rows is not None:
            bad = [r for r in self.rows if not 0 <= r < n]
            if bad:
                raise UserError(f"rows {bad} are outside the data's {n} images")
            return list(self.rows)
        if n < self.images:
            raise UserError(f"--images {self.images} exceeds the data's {n} images")
        return sorted(
            np.random.default_rng(self.seed).choice(n, self.images, replace=False).tolist()
        )


@dataclass
class DistanceResult:
    """The Eq. 4 study (``sampling.distance``): d^2 and ||dphi||^2 per pair (pairs as data rows),
    the constants A, B of inequality (3), and the estimator's diagnostics."""

    cfg: DistanceConfig
    study: dict

    def summary(self) -> list[str]:
        st, c = self.study, self.study["constants"]
        lines = [
            f"{len(st['pairs'])} pairs: A = {c['A']:.4g}, B = {c['B']:.4g}, B/A = "
            f"{c['B_over_A']:.2f} (5-95%: {c['B_over_A_5_95']:.2f}; the paper: 2.9), Pearson r = "
            f"{c['pearson']:.2f}"
        ]
        if self.cfg.estimator == "matching":
            cuts = st["by_lower_limit"]
            by = ", ".join(f"{r['sigma_min'] * 255:.3g}: {r['B_over_A']:.2f}" for r in cuts)
            return lines + [f"B/A with the integral from sigma_min up: {by}"]
        s = c["spread"]
        return lines + [
            f"tau = {st['tau']:.3g}; B/A over resampled pairs: median {s['bootstrap_median']:.2f}"
            f", 5-95% {s['bootstrap_5']:.2f}-{s['bootstrap_95']:.2f}; the tails beyond the grid "
            f"carry {st['tail_share']:.0%} of d^2"
        ]

    def save_figure(self, path: str | Path) -> None:
        from denoiserlens.figures.common import save_figure
        from denoiserlens.figures.sampling import plot_distance_study

        save_figure(path, lambda ax: plot_distance_study(ax, self.study), figsize=(4.5, 4))

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """distance.json and fig8_distance.png."""
        self.save_figure(Path(out) / "fig8_distance.png")
        write_json(Path(out) / "distance.json", {**self.study, "model": model})
        return ["distance.json", "fig8_distance.png"]


def run_distance(
    model: Denoiser,
    images: ImageSet,
    cfg: DistanceConfig,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> DistanceResult:
    """:func:`~denoiserlens.sampling.distance.distance_experiment` on the rows of ``images``
    that ``cfg`` picks, Algorithm 1 starting from the data's channel means. ``log`` is told
    what will be computed, once the inputs are checked."""
    check_images(model, images.subset([0]))  # the model takes them, before counting
    rows = cfg.pick_rows(len(images))
    chosen = images.subset(rows)
    if chosen.fixed_size is None:
        raise UserError(f"{images.source}: the images differ in size; use --size or --pad-to")
    check_images(model, chosen)
    if log is not None:
        n = len(rows)
        log(
            f"{cfg.n_samples} reconstructions of each of {n} images, then Eq. 4 for "
            f"{n * (n - 1) // 2} pairs on {cfg.grid} noise levels"
        )
    x = to_float(chosen.as_array()).to(device)
    prior = None
    if cfg.estimator == "tilted" and x[0].numel() <= MAX_PRIOR_VALUES:
        pick = np.random.default_rng(cfg.seed).permutation(len(images))[: cfg.prior_images]
        prior = gaussian_prior(to_float(images.subset(sorted(pick.tolist())).as_array()))
    mean = torch.tensor(images.channel_means(), device=device).view(-1, 1, 1)
    lo, hi = math.log10(cfg.sigma_min / 255), math.log10(cfg.sigma_max / 255)
    study = distance_experiment(
        model,
        x,
        torch.logspace(0, -2, cfg.steps + 1),
        torch.logspace(lo, hi, cfg.grid),
        cfg.n_samples,
        cfg.guidance,
        cfg.n_noise,
        cfg.phi_sigma / 255,
        mean,
        cfg.seed,
        rows,
        cfg.estimator,
        cfg.tau,
        prior,
    )
    study.update(
        rows=rows,
        names=[images.names[r] for r in rows],
        n_samples=cfg.n_samples,
        seed=cfg.seed,
        guidance=dataclasses.asdict(cfg.guidance),
    )
    study["pairs"] = [[rows[i], rows[j]] for i, j in study["pairs"]]
    return DistanceResult(cfg, study)
