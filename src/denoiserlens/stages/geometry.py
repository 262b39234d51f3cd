"""The companion work's geometry as stages: the Jacobian's eigenbasis and effective dimension,
the PSNR slope of C-alpha images, memorization vs generalization. Configs in the command line's
units (noise levels of 255); the ``jacobian``, ``slope`` and ``generalization`` commands and the
report's Jacobian section call these functions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoiserlens.data import ImageSet, to_float
from denoiserlens.errors import UserError
from denoiserlens.fileio import atomic_path, read_json, write_json
from denoiserlens.models import Denoiser, build_model, load_model, preset_config
from denoiserlens.settings import setting
from denoiserlens.stages.common import SIGMA_HELP, check_images

# --- the Jacobian's eigenbasis ----------------------------------------------------------------


@dataclass(frozen=True)
class JacobianConfig:
    """Top-k eigenpairs of the symmetric part of the denoiser's Jacobian at noisy ``rows``, its
    trace by ``probes`` Hutchinson probes, and (``asymmetry``) ||J - J^T|| / ||J||."""

    rows: tuple[int, ...] = setting((0,), "Comma list of image rows.", kind="rows")
    sigmas: tuple[float, ...] = setting((25.0,), f"Comma list, {SIGMA_HELP}.", kind="sigmas")
    k: int = setting(16, "Top eigenpairs.", kind="count")
    full: bool = setting(False, "Also build the full Jacobian (small images only).")
    probes: int = setting(32, "Hutchinson probes of the trace.", kind="count")
    asymmetry: bool = setting(True, "Measure ||J - J^T|| / ||J|| (power iterations).")
    seed: int = setting(0, "Seed of the noise, the probes and the eigen-solver.", kind="int")

    def __post_init__(self) -> None:
        if self.probes < 2:
            raise UserError("--probes must be >= 2 (the trace's standard error needs two)")
        if self.k < 1 or not self.sigmas or not self.rows:
            raise UserError("need --k >= 1, one --sigmas and one --rows at least")


@dataclass
class JacobianResult:
    """One entry per (row, sigma): eigenvalues, trace and its standard error, asymmetry, the
    homogeneity error |J y - f(y)| / |f(y)|; and the eigenvectors (k, C, H, W) of each."""

    cfg: JacobianConfig
    entries: list[dict]
    vectors: list[torch.Tensor]
    shape: tuple[int, ...]

    def label(self, e: dict) -> str:
        return f"row {e['row']}, sigma {e['sigma_255']:g}"

    def summary(self) -> list[str]:
        out = []
        for e in self.entries:
            line = (
                f"{self.label(e)}: top eigenvalue {e['eigenvalues'][0]:.3f}, trace "
                f"{e['trace_hutchinson']:.1f} +- {e['trace_se']:.1f}"
            )
            if "asymmetry" in e:
                line += f", asymmetry {e['asymmetry']:.3f}"
            out.append(line + f", |Jy - f(y)|/|f(y)| {e['homogeneity_error']:.2e}")
        return out

    def save_eigenvalues(self, path: str | Path) -> None:
        from denoiserlens.figures.common import save_figure
        from denoiserlens.figures.geometry import plot_eigenvalues

        curves = {self.label(e): np.asarray(e["eigenvalues"]) for e in self.entries}
        save_figure(path, lambda ax: plot_eigenvalues(ax, curves))

    def save_eigenvectors(self, path: str | Path, i: int) -> None:
        """The eigenvectors of entry ``i`` as one panel."""
        from denoiserlens.figures.common import save_figure
        from denoiserlens.figures.geometry import plot_eigenvectors

        k, cols = len(self.vectors[i]), min(8, len(self.vectors[i]))
        vals = np.asarray(self.entries[i]["eigenvalues"])
        save_figure(
            path,
            lambda axes: plot_eigenvectors(axes, self.vectors[i], self.shape, vals),
            figsize=(1.1 * cols, 1.2 * -(-k // cols)),
            nrows=-(-k // cols),
            ncols=cols,
        )

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """eigenvalues.png, eigenvectors_row*_sigma*.png, jacobian.json."""
        out = Path(out)
        for i, e in enumerate(self.entries):
            self.save_eigenvectors(
                out / f"eigenvectors_row{e['row']}_sigma{e['sigma_255']:g}.png", i
            )
        self.save_eigenvalues(out / "eigenvalues.png")
        record = {"model": model, "k": self.cfg.k, "seed": self.cfg.seed, "results": self.entries}
        write_json(out / "jacobian.json", record)
        return ["eigenvalues.png", "eigenvectors_*.png", "jacobian.json"]


def run_jacobian(
    model: Denoiser,
    images: ImageSet,
    cfg: JacobianConfig,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> JacobianResult:
    """The Jacobian at each row of ``cfg.rows`` with noise of each of ``cfg.sigmas`` (seeded
    per (seed, row)); ``log`` gets each entry's line once measured."""
    from denoiserlens.evaluation import noisy_image
    from denoiserlens.geometry import (
        JacobianOperator,
        asymmetry,
        full_jacobian,
        hutchinson_trace,
        top_eigenpairs,
    )
    from denoiserlens.geometry.jacobian import MAX_FULL_PIXELS

    bad = [r for r in cfg.rows if not 0 <= r < len(images)]
    if bad:
        raise UserError(f"rows {bad} are outside the data's {len(images)} images")
    check_images(model, images.subset(list(cfg.rows)))
    if cfg.full and any(images[r].size > MAX_FULL_PIXELS for r in cfg.rows):
        raise UserError(
            f"images of more than {MAX_FULL_PIXELS} values are too large for the full "
            "Jacobian; drop --full (the eigen-solver is matrix-free)"
        )
    result = JacobianResult(cfg, [], [], tuple(images[cfg.rows[0]].shape))
    for r in cfg.rows:
        x = to_float(images[r])[None].to(device)
        for sig in cfg.sigmas:
            y = noisy_image(x, sig / 255, cfg.seed, r)
            op = JacobianOperator(model, y)
            vals, vecs = top_eigenpairs(op, cfg.k, seed=cfg.seed)
            tr, se = hutchinson_trace(op, cfg.probes, cfg.seed)
            entry = {
                "row": r,
                "name": images.names[r],
                "sigma_255": round(sig, 3),
                "eigenvalues": vals.tolist(),
                "trace_hutchinson": tr,
                "trace_se": se,
            }
            if cfg.asymmetry:
                entry["asymmetry"] = asymmetry(op, seed=cfg.seed)
            entry["homogeneity_error"] = op.homogeneity_error()
            if cfg.full:
                jac = full_jacobian(model, y)
                entry["trace_exact"] = float(jac.trace())
                entry["asymmetry_exact"] = float((jac - jac.T).norm() / jac.norm())
            result.entries.append(entry)
            result.vectors.append(vecs)
            if log is not None:
                log(result.summary()[-1])
    return result


# --- the PSNR slope of C-alpha images ---------------------------------------------------------


@dataclass(frozen=True)
class SlopeConfig:
    """Output PSNR against input PSNR at ``sigmas``, and its fitted slope; ``alpha`` the images'
    regularity (C-alpha), whose optimal denoiser has slope alpha / (alpha + 1)."""

    sigmas: tuple[float, ...] = setting(
        (5.0, 10.0, 20.0, 40.0, 80.0), f"Comma list, {SIGMA_HELP}.", kind="sigmas"
    )
    alpha: float | None = setting(
        None, "Regularity of the images (C-alpha): draw the optimal slope alpha/(alpha+1)."
    )
    seed: int = setting(0, "Seed of the noise.", kind="int")

    def __post_init__(self) -> None:
        if len(self.sigmas) < 2 or min(self.sigmas) <= 0:
            raise UserError(
                "a slope needs at least two noise levels, all > 0 (PSNR is infinite at 0)"
            )


@dataclass
class SlopeResult:
    cfg: SlopeConfig
    curves: dict[str, dict]  # per model: psnr_in, psnr_out, slope, intercept (optimal_slope)

    def summary(self) -> list[str]:
        from denoiserlens.geometry.slope import optimal_slope

        a = self.cfg.alpha
        best = "" if a is None else f" (optimal for alpha {a:g}: {optimal_slope(a):.3f})"
        return [f"{name}: slope {c['slope']:.3f}{best}" for name, c in self.curves.items()]

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """psnr_slope.png and slope.json."""
        from denoiserlens.figures.common import save_figure
        from denoiserlens.figures.geometry import plot_psnr_curves

        out = Path(out)
        save_figure(
            out / "psnr_slope.png", lambda ax: plot_psnr_curves(ax, self.curves), figsize=(5, 4)
        )
        c = self.cfg
        record = {
            "sigmas_255": list(c.sigmas),
            "alpha": c.alpha,
            "seed": c.seed,
            "curves": self.curves,
        }
        write_json(out / "slope.json", record)
        return ["psnr_slope.png", "slope.json"]


def run_slope(
    models: dict[str, Denoiser],
    images: ImageSet,
    cfg: SlopeConfig,
    device: str | torch.device = "cpu",
) -> SlopeResult:
    """The PSNR curve and slope of each named model on ``images`` (all in memory)."""
    from denoiserlens.geometry.slope import fit_slope, optimal_slope, psnr_curve

    curves = {}
    for name, model in models.items():
        check_images(model, images)
        x = to_float(np.asarray(images.as_array())).to(device)
        p_in, p_out = psnr_curve(model.denoise, x, [s / 255 for s in cfg.sigmas], cfg.seed)
        s, b = fit_slope(p_in, p_out)
        c = {"psnr_in": p_in.tolist(), "psnr_out": p_out.tolist(), "slope": s, "intercept": b}
        if cfg.alpha is not None:
            c["optimal_slope"] = optimal_slope(cfg.alpha)
        curves[name] = c
    return SlopeResult(cfg, curves)


# --- memorization vs generalization -----------------------------------------------------------


@dataclass(frozen=True)
class GeneralizationConfig:
    """For each size N of ``sizes``, two bias-free models trained on disjoint sets of N images
    (``steps`` each), ``n_samples`` samples from each with the same seeds (sigma_0 = 1)."""

    sizes: tuple[int, ...] = setting(
        (1, 10, 100, 1000), "Training set sizes N (two disjoint sets of each).", kind="rows"
    )
    preset: str = setting("tiny", "Architecture of every model of the sweep.")
    residual: bool = setting(False, "x_hat = y + net(y) (trains faster on a budget).")
    norm: str = setting(
        "batch", "Normalization of the bias-free models.", choices=("batch", "none")
    )
    steps: int = setting(2000, "Training steps per model.", kind="count")
    batch_size: int = setting(32, "Training batch size.", kind="count")
    lr: float = setting(1e-3, "Adam learning rate.", kind="positive")
    n_samples: int = setting(
        16, "Samples drawn from each model (the same seeds for both).", kind="count"
    )
    sigma_L: float = setting(  # noqa: N815 (the paper's name)
        2.55, f"The sampler stops below this, {SIGMA_HELP}.", kind="sigma", name="sigma-L"
    )
    bf16: bool = setting(False, "bf16 autocast for training.")
    seed: int = setting(0, "Seed of the subsets, the models and the samples.", kind="int")

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise UserError("training set sizes must be >= 1")
        object.__setattr__(self, "sizes", tuple(sorted(set(self.sizes))))

    def train_config(self):
        """Every model's training: noise uniform on [0, 255], no held-out split."""
        from denoiserlens.train import TrainConfig

        try:
            return TrainConfig(
                steps=self.steps,
                batch_size=self.batch_size,
                lr=self.lr,
                test_fraction=0.0,
                sigma_dist="uniform",
                sigma_min=0.0,
                sigma_max=1.0,
                bf16=self.bf16,
                seed=self.seed,
                checkpoint_every=max(1, self.steps // 4),
                eval_every=self.steps,
            )
        except ValueError as e:
            raise UserError(str(e)) from None

    def sampler(self):
        from denoiserlens.sampling import SamplerConfig

        try:
            return SamplerConfig(sigma_0=1.0, sigma_L=self.sigma_L / 255)
        except ValueError as e:
            raise UserError(str(e)) from None


@dataclass
class GeneralizationResult:
    cfg: GeneralizationConfig
    results: dict[str, Any]  # as results.json holds it

    def summary(self) -> list[str]:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines = []
        for n in self.cfg.sizes:
            r = self.results["per_size"][str(n)]
            lines.append(
                f"N = {n}: paired samples {fmt(r['paired_median'])}, nearest training image "
                f"{fmt(r['nearest_training_median'])} (median cosine; samples that reached "
                f"sigma_L: {r['finished'][0]} and {r['finished'][1]} of {self.cfg.n_samples})"
            )
        at = self.results["generalizes_at"]
        return lines + [
            "paired samples first nearly identical (median cosine > 0.95) at N = "
            + (str(at) if at else "- (not reached)")
        ]

    def save(self, out: str | Path, model: str = "") -> list[str]:
        """results.json (written as the sweep goes) and generalization.png."""
        from denoiserlens.figures.common import save_figure
        from denoiserlens.figures.geometry import plot_sweep

        path = Path(out) / "generalization.png"
        save_figure(path, lambda ax: plot_sweep(ax, self.results), figsize=(5, 3.5))
        return ["results.json", "generalization.png"]


def _repeat_to(images: ImageSet, rows: np.ndarray, at_least: int) -> ImageSet:
    reps = -(-at_least // len(rows))
    return images.subset(np.tile(rows, reps))


def _samples_current(path: Path, key_path: Path, key: dict[str, Any]) -> bool:
    """Whether saved samples exist, were drawn with ``key``, and carry their finished flags."""
    if not path.exists() or not key_path.exists() or read_json(key_path) != key:
        return False
    with np.load(path) as saved:
        return "finished_a" in saved.files


def run_generalization(
    images: ImageSet,
    cfg: GeneralizationConfig,
    out_dir: str | Path,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
) -> GeneralizationResult:
    """Train the model pairs, sample, and measure (``geometry.generalization``); writes
    results.json. Resumable: every model is a run directory (``train`` resumes it from its last
    checkpoint) and every size's samples are saved once computed, with a key (both models'
    weights, the sampler, the seed) that says when they must be drawn again."""
    from denoiserlens.geometry.generalization import disjoint_subsets, measure_pair
    from denoiserlens.models.checkpoint import CONFIG
    from denoiserlens.represent.store import weights_hash
    from denoiserlens.sampling import sample
    from denoiserlens.train import check_training_images, train
    from denoiserlens.train.state import TRAIN_STATE, train_state_step

    sizes, seed = list(cfg.sizes), cfg.seed
    if 2 * sizes[-1] > len(images):
        raise UserError(
            f"two disjoint sets of {sizes[-1]} images need {2 * sizes[-1]}; the data has "
            f"{len(images)}"
        )
    try:
        arch = preset_config(
            cfg.preset,
            image_channels=images.channels,
            bias=False,
            norm=cfg.norm,
            residual=cfg.residual,
        ).to_dict()
    except ValueError as e:
        raise UserError(str(e)) from None
    train_cfg, sampler = cfg.train_config(), cfg.sampler()
    out = Path(out_dir)
    check_training_images(images, build_model(arch, seed=0))  # before any run is written
    subsets = disjoint_subsets(len(images), sizes, seed)
    x_all = np.asarray(images.as_array())  # the sizes of a sweep: in memory
    mean = float(x_all.mean() / 255)
    arch_json = json.loads(json.dumps(arch))  # as config.json holds it (lists, not tuples)
    results = {
        "sizes": sizes,
        "seed": seed,
        "n_samples": cfg.n_samples,
        "data": images.source,
        "train": {"steps": train_cfg.steps, "batch_size": train_cfg.batch_size},
        "per_size": {},
    }
    for n in sizes:
        runs = []
        for tag, rows in zip("ab", subsets[n], strict=True):
            run = out / f"N{n}" / tag
            runs.append(run)
            checkpointed = (run / TRAIN_STATE).exists()
            if checkpointed:
                if read_json(run / CONFIG)["model"] != arch_json:
                    raise UserError(f"{run}: a model of another architecture; use another --out")
                if train_state_step(run / TRAIN_STATE) >= train_cfg.steps:
                    continue
            if run.exists() and not checkpointed:  # stopped before its first checkpoint
                shutil.rmtree(run)
            log(f"N = {n}, model {tag}: training on {n} images")
            data = _repeat_to(images, rows, train_cfg.batch_size)
            train(arch, data, train_cfg, run, resume=checkpointed, device=device, progress=False)
        path, key_path = out / f"N{n}" / "samples.npz", out / f"N{n}" / "samples.json"
        models = [load_model(run, device) for run in runs]
        key = {
            "models": [weights_hash(m) for m in models],
            "sampler": asdict(sampler),
            "n_samples": cfg.n_samples,
            "seed": seed,
            "mean": mean,
        }
        if not _samples_current(path, key_path, key):
            log(f"N = {n}: sampling {cfg.n_samples} images from each model, same seeds")
            shape = (cfg.n_samples, *x_all.shape[1:])
            drawn = [
                sample(m.denoise, shape, sampler, mean=mean, seed=seed, device=device)
                for m in models
            ]
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(
                    f,
                    a=drawn[0].images.cpu().numpy(),
                    b=drawn[1].images.cpu().numpy(),
                    finished_a=drawn[0].finished.cpu().numpy(),
                    finished_b=drawn[1].finished.cpu().numpy(),
                )
            write_json(key_path, key)
        with np.load(path) as pair:
            results["per_size"][str(n)] = measure_pair(pair, x_all, subsets[n], mean)
    results["generalizes_at"] = next(
        (n for n in sizes if (results["per_size"][str(n)]["paired_median"] or 0) > 0.95),
        None,
    )
    write_json(out / "results.json", results)
    return GeneralizationResult(cfg, results)
