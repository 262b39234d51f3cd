"""The report's sections, in the paper's order. Each computes its figures and numbers with the
library's functions into ``OUT/<name>/`` and returns a :class:`Section`: a title, the figures, the
numbers, and one paragraph that says what the figures show, with the paper's values where it
gives them. A section whose inputs are missing returns ``skipped`` with the reason.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoiserlens.data import DataSpec, ImageSet, to_float
from denoiserlens.models import Denoiser
from denoiserlens.report.config import ReportConfig


@dataclass
class Section:
    name: str
    title: str
    text: str = ""
    figures: list[str] = field(default_factory=list)  # paths relative to the report folder
    numbers: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What every section reads: the model, the data (its first ``cfg.images`` rows) and where
    the report goes. ``store`` is the representation store once the representation has run."""

    model: Denoiser
    model_path: str
    images: ImageSet
    spec: DataSpec
    cfg: ReportConfig
    out: Path
    device: torch.device
    store_key: str = "0"  # what the representation store depends on (report.run.section_key)

    @property
    def store(self) -> Path:
        return self.out / "representation" / f"store-{self.store_key}"

    @cached_property
    def data_mean(self) -> torch.Tensor:
        """The images' per-channel means (C, 1, 1), where Algorithm 1 and the sampler start."""
        return torch.tensor(self.images.channel_means(), device=self.device).view(-1, 1, 1)

    def x(self, rows) -> torch.Tensor:
        return to_float(np.stack([self.images[int(r)] for r in rows])).to(self.device)


def _rel(ctx: Context, path: Path) -> str:
    return str(path.relative_to(ctx.out))


def _s(v: float) -> float:
    return v / 255


def _drop_other_stores(store: Path) -> None:
    """Delete the stores beside ``store`` that earlier settings made (their names differ only
    in the key): derived data of this report folder, replaced rather than resumed."""
    prefix = store.name.rsplit("-", 1)[0]
    for other in store.parent.glob(f"{prefix}-*"):
        if other != store and other.is_dir():
            shutil.rmtree(other)


def denoising(ctx: Context) -> Section:
    from denoiserlens.evaluation import bm3d_method, evaluate, model_method
    from denoiserlens.stages.evaluation import write_results

    cfg, sec = ctx.cfg, Section("denoising", "Denoising performance")
    n = min(cfg.eval_images, len(ctx.images))
    images = ctx.images.subset(np.arange(n))
    methods = {"model": model_method(ctx.model, pad=True, device=ctx.device)}
    sigmas = [_s(v) for v in cfg.eval_sigmas]
    res = evaluate(methods, images, sigmas, cfg.seed)
    table = res.table()
    out = ctx.out / "denoising"
    write_results(res, out, {"model": ctx.model_path})
    sec.figures = [_rel(ctx, out / "psnr.png")]
    if cfg.bm3d_images > 0:  # same images and noise for both methods, in their own figure
        few = images.subset(np.arange(min(cfg.bm3d_images, n)))
        both = evaluate({"model": methods["model"], "BM3D": bm3d_method}, few, sigmas, cfg.seed)
        table += [dict(r, method=f"{r['method']} (first {len(few)} images)") for r in both.table()]
        write_results(both, out / "vs-bm3d", {"model": ctx.model_path})
        sec.figures.append(_rel(ctx, out / "vs-bm3d" / "psnr.png"))
    sec.numbers = {"table": table}
    cells = ", ".join(
        f"{r['psnr']:.2f} dB at sigma {r['sigma_255']:g}" for r in table if r["method"] == "model"
    )
    sec.text = (
        f"Mean PSNR of the blind denoiser on the first {n} images, one seeded noise draw "
        f"per image and level: {cells}."
    )
    if cfg.bm3d_images > 0:
        sec.text += (
            " BM3D (given the true sigma) on the first images is in the table and the "
            "second figure, with the model on the same images and noise."
        )
    return sec


def representation(ctx: Context) -> Section:
    from denoiserlens.represent import RepresentConfig, represent
    from denoiserlens.stages.analysis import AnalyzeConfig, analyze_store

    cfg = ctx.cfg
    sec = Section("representation", "Sparsity, stability and selectivity of phi (Figures 1-5, 13)")
    rc = RepresentConfig(
        sigmas=tuple(_s(v) for v in cfg.representation_sigmas),
        n_noise=cfg.n_noise,
        blocks=tuple(ctx.model.block_names),
        inputs=True,
        seed=cfg.seed,
        batch_size=32,
        bf16=cfg.bf16,
        channels_last=cfg.bf16,
    )
    _drop_other_stores(ctx.store)
    resume = (ctx.store / "meta.json").exists()
    represent(
        ctx.model,
        ctx.images,
        ctx.store,
        rc,
        resume=resume,
        model_path=ctx.model_path,
        data_spec=ctx.spec.to_dict(),
    )
    out = ctx.out / "representation"
    acfg = AnalyzeConfig(
        _s(cfg.sigma), _s(cfg.reference), cfg.queries[0], min(256, len(ctx.images))
    )
    m = analyze_store(ctx.store, out, acfg, ctx.model)
    sec.figures = [_rel(ctx, p) for p in sorted(out.glob("fig*.png"))]
    sel = m["selectivity"]
    sec.numbers = {
        k: m[k]
        for k in ("sparsity", "selectivity", "active_dimension", "findings", "skipped")
        if k in m
    }
    holds = [f for f in m["findings"] if f["holds"]]
    sec.text = (
        f"phi has {sel['channels']} channels; {sel['fraction_below']:.0%} are selective "
        f"(participation ratio across images < 0.3) and {sel['fraction_above']:.0%} common "
        f"(> 0.6). Of the paper's section-2 findings, {len(holds)} of {len(m['findings'])} hold "
        "for this model: "
        + "; ".join(
            f"{f['claim']}: {'holds' if f['holds'] else 'does not hold'} ({f['measured']})"
            for f in m["findings"]
        )
        + "."
    )
    return sec


def neighbours(ctx: Context) -> Section:
    from denoiserlens.stages.semantics import NeighboursConfig, neighbours_figure

    sec = Section("neighbours", "Nearest neighbours in phi and in pixels (Figures 5, 14)")
    queries = [q for q in ctx.cfg.queries if q < len(ctx.images)]
    ncfg = NeighboursConfig(tuple(queries), 8, _s(ctx.cfg.sigma))
    r = neighbours_figure(ctx.store, ctx.out / "neighbours", ncfg)
    sec.figures = [_rel(ctx, ctx.out / "neighbours" / "fig14_neighbours.png")]
    sec.numbers = {"queries": r["queries"]}
    sec.text = (
        "For each query (first column), its 8 nearest images by cosine similarity in phi "
        "(top row) and in pixels (bottom row). Queries: "
        + ", ".join(q["name"] for q in r["queries"])
        + "."
    )
    if "same_label_phi" in r["queries"][0]:
        a = np.mean([q["same_label_phi"] for q in r["queries"]])
        b = np.mean([q["same_label_pixels"] for q in r["queries"]])
        sec.text += f" Neighbours sharing the query's label: {a:.0%} in phi, {b:.0%} in pixels."
    return sec


def clusters(ctx: Context) -> Section:
    from denoiserlens.stages.semantics import ClusterConfig, cluster_store

    sec = Section("clusters", "Emergent clusters (Figure 6)")
    k = min(ctx.cfg.clusters, len(ctx.images) // 2)
    ccfg = ClusterConfig(k, _s(ctx.cfg.sigma), ctx.cfg.seed)
    r = cluster_store(ctx.store, ctx.out / "clusters", ccfg)
    sec.figures = [_rel(ctx, p) for p in sorted((ctx.out / "clusters").glob("fig6_*.png"))]
    sec.numbers = {
        key: r[key]
        for key in ("k", "sizes", "cluster_separation", "class_separation", "labels")
        if key in r
    }
    cs = r["cluster_separation"]
    sec.text = (
        f"K-means with {k} clusters on phi. {cs['fraction_separated']:.0%} of "
        f"{cs['pairs']} cluster pairs have centroids more than 2 standard deviations "
        "apart (the paper: all of 100 pairs, on ImageNet)."
    )
    if "class_separation" in r:
        cl, lab = r["class_separation"], r["labels"]
        sec.text += (
            f" For labelled classes, {cl['fraction_separated']:.0%} of pairs (the paper: "
            f"classes overlap more than clusters). Clusters against labels: NMI "
            f"{lab['nmi']:.2f}, ARI {lab['ari']:.2f}, purity {lab['purity']:.2f}."
        )
    return sec


def probe(ctx: Context) -> Section:
    from denoiserlens.models import build_model
    from denoiserlens.represent import RepresentConfig, Store, represent
    from denoiserlens.stages.semantics import probe_stores

    sec = Section("probe", "Labels from phi, from pixels, and from random weights")
    if Store(ctx.store).labels is None:
        sec.skipped = "the data has no labels"
        return sec
    control = ctx.out / "probe" / f"store-random-weights-{ctx.store_key}"
    _drop_other_stores(control)
    random_model = build_model(ctx.model.arch_config(), seed=ctx.cfg.seed + 1).to(ctx.device)
    rc = RepresentConfig(
        sigmas=(_s(ctx.cfg.sigma),), n_noise=ctx.cfg.n_noise, seed=ctx.cfg.seed, bf16=ctx.cfg.bf16
    )
    represent(
        random_model,
        ctx.images,
        control,
        rc,
        resume=(control / "meta.json").exists(),
        model_path=f"{ctx.model_path} (random weights)",
        data_spec=ctx.spec.to_dict(),
    )
    r = probe_stores({"trained": ctx.store, "random weights": control}, ctx.out / "probe")
    rows = [row for row in r["rows"] if row["sigma_255"] in (None, round(ctx.cfg.sigma, 3))]
    sec.numbers = {"rows": rows, "k": r["k"], "queries": r["queries"]}
    sec.text = (
        "Label accuracy on held-out rows (kNN with k = 10, cosine; linear probe): "
        + "; ".join(
            f"{row['representation']}: kNN {row['knn']:.3f}, linear {row['linear']:.3f}"
            for row in rows
        )
        + ". The random-weights control shows what training adds."
    )
    return sec


def samples(ctx: Context) -> Section:
    from denoiserlens.figures.common import save_image_grid
    from denoiserlens.stages import run_sample

    sec = Section("samples", "Unconditional samples (Figure 19)")
    h, w = ctx.images.fixed_size
    if h != w:
        sec.skipped = f"the sampler draws square images; these are {h}x{w}"
        return sec
    cfg = ctx.cfg.sample_config(h)
    s = run_sample(ctx.model, cfg, ctx.device, mean=ctx.images.channel_means())
    path = ctx.out / "samples" / "fig19_samples.png"
    save_image_grid(path, s.images)
    sec.figures = [_rel(ctx, path)]
    q = _sample_quality(ctx, s.images)
    sec.numbers = {
        "median_steps": int(np.median(s.steps)),
        "finished": int(sum(s.finished)),
        "quality": q.to_dict(),
    }
    sec.text = (
        f"{ctx.cfg.samples} samples drawn by the blind stochastic sampler (the noise level "
        f"read off the residual), median {sec.numbers['median_steps']} steps, with the quick "
        "ks2021 preset; the authors' slower `sample --preset representation` matches "
        "the data's brightness better (BENCHMARKS.md, Sampler presets). The paper "
        "(Figure 19): samples look like images of the training set. Here, against "
        f"{q.n} of the report's images: " + "; ".join(q.lines()) + ". At so few samples "
        "the Frechet distance is mostly its bias, which the floor shows; `benchmarks/"
        "quality.sh` measures it at n = 200 and more."
    )
    return sec


def _sample_quality(ctx: Context, x: np.ndarray):
    """Samples against the report's images (held out from training when the data is a test set):
    pixel statistics, and the Frechet distance when a classifier takes such images and the data
    has 2n of them."""
    from denoiserlens.quality import fitting_classifier, images_as_float, sample_quality

    n = len(x)
    clf = fitting_classifier(None, x.shape[1:])
    if clf is not None and len(ctx.images) < 2 * n:
        clf = None
    ref = images_as_float(ctx.images, np.arange(min(len(ctx.images), 4 * n)))
    return sample_quality(x, ref, clf, ctx.cfg.seed)


def reconstructions(ctx: Context) -> Section:
    from denoiserlens.figures.sampling import plot_noise_levels, plot_reconstructions
    from denoiserlens.stages import run_reconstruct

    sec = Section("reconstructions", "Stochastic reconstruction from phi (Figures 7, 20)")
    rows = tuple(r for r in ctx.cfg.targets if r < len(ctx.images))
    result = run_reconstruct(ctx.model, ctx.images, ctx.cfg.reconstruct_config(rows), ctx.device)
    r = result.rec
    out = ctx.out / "reconstructions"
    plot_reconstructions(out / "fig7_reconstructions.png", result.shown, result.images, 8)
    plot_noise_levels(
        out / "fig20_noise_levels.png", r.sigma_before.cpu().numpy(), r.sigma_after.cpu().numpy()
    )
    sec.figures = [
        _rel(ctx, out / "fig7_reconstructions.png"),
        _rel(ctx, out / "fig20_noise_levels.png"),
    ]
    before, after = r.sigma_before.flatten(), r.sigma_after.flatten()
    ok = torch.isfinite(before)
    change = float(((after[ok] - before[ok]).abs() / before[ok]).median())
    sec.numbers = {
        "phi_cosine_median": float(r.cosine.median()),
        "phi_relative_error_median": float(r.relative_error.median()),
        "noise_level_change_median": change,
    }
    sec.text = (
        f"Each panel: a target (centre) and 8 samples whose phi was matched to it at every "
        f"noise level. Final phi match: median cosine {sec.numbers['phi_cosine_median']:.3f},"
        f" relative error {sec.numbers['phi_relative_error_median']:.3f}. The matching "
        f"step changes the effective noise level by a median {change:.1%} (the paper: it "
        "does not change it)."
    )
    if result.quality is not None:
        sec.numbers["quality"] = result.quality.to_dict()
        sec.text += (
            " The paper (Figure 7): the samples are images of the target's kind, "
            "though no pixel is shared. Here: " + "; ".join(result.quality.lines()) + "."
        )
    return sec


def distance(ctx: Context) -> Section:
    from denoiserlens.stages import run_distance

    sec = Section("distance", "Distances between conditional densities (Eq. 4, Figure 8)")
    n = min(ctx.cfg.distance_images, len(ctx.images))
    if n < 3:
        sec.skipped = f"needs at least 3 images; the data has {len(ctx.images)}"
        return sec
    result = run_distance(ctx.model, ctx.images, ctx.cfg.distance_config(n), ctx.device)
    study, pairs = result.study, result.study["pairs"]
    path = ctx.out / "distance" / "fig8_distance.png"
    result.save_figure(path)
    sec.figures = [_rel(ctx, path)]
    c = study["constants"]
    spread = c["spread"]
    sec.numbers = {
        "constants": c,
        "pairs": len(pairs),
        "tau": study["tau"],
        "tail_share": study["tail_share"],
        "d_sq": study["d_sq"],
    }
    sec.text = (
        f"For {len(pairs)} pairs of images, d^2 between the densities their phi induce (Eq. 4; "
        f"tilted densities p(x) exp(-||phi(x) - phi_i||^2 / 2 tau^2), tau = {study['tau']:.3g} "
        f"read off Algorithm 1's samples) against ||phi_1 - phi_2||^2: B/A = "
        f"{c['B_over_A']:.2f} (over resampled pairs: median {spread['bootstrap_median']:.2f}, "
        f"5-95% {spread['bootstrap_5']:.2f}-{spread['bootstrap_95']:.2f}; the paper: 2.9), "
        f"Pearson r = {c['pearson']:.2f}. Where the samples pin phi within tau, tilted densities "
        f"give d^2 close to ||phi_1 - phi_2||^2 / tau^2 by construction, so B/A near 1 says the "
        f"estimator is consistent more than that phi is an isometric embedding "
        f"(BENCHMARKS.md, 'Eq. 4 with tilted conditionals')."
    )
    return sec


def jacobian(ctx: Context) -> Section:
    from denoiserlens.stages.geometry import JacobianConfig, run_jacobian

    sec = Section("jacobian", "The Jacobian's eigenbasis (geometry-adaptive harmonic bases)")
    sigmas = (ctx.cfg.sigma / 2, ctx.cfg.sigma, 2 * ctx.cfg.sigma)
    cfg = JacobianConfig(
        rows=(0,),
        sigmas=sigmas,
        k=ctx.cfg.jacobian_k,
        probes=16,
        asymmetry=False,
        seed=ctx.cfg.seed,
    )
    result = run_jacobian(ctx.model, ctx.images, cfg, ctx.device)
    out = ctx.out / "jacobian"
    result.save_eigenvalues(out / "eigenvalues.png")
    result.save_eigenvectors(out / "eigenvectors.png", 1)  # at sigma
    sec.figures = [_rel(ctx, out / "eigenvalues.png"), _rel(ctx, out / "eigenvectors.png")]
    entries = {f"{s:g}": e for s, e in zip(sigmas, result.entries, strict=True)}
    traces = {s: e["trace_hutchinson"] for s, e in entries.items()}
    homogeneity = {s: e["homogeneity_error"] for s, e in entries.items()}
    sec.numbers = {
        "eigenvalues": {f"sigma {s}": e["eigenvalues"] for s, e in entries.items()},
        "trace": traces,
        "homogeneity_error": homogeneity,
    }
    worst = max(homogeneity.values())
    if worst < 1e-2:
        basis = (
            f"f(y) = J y holds (relative error at most {worst:.1e}: the network is bias-free), "
            "so these are the adaptive basis in which the denoiser shrinks."
        )
    else:
        basis = (
            f"This network has biases: f(y) differs from J y by up to {worst:.0%}, so J is "
            "the local linearization of an affine map, not the map itself, and the "
            "eigenvectors are not exactly a basis in which the denoiser shrinks."
        )
    sec.text = (
        "Top eigenvalues of the symmetric part of the denoiser's Jacobian at the first "
        f"image, at three noise levels, and the eigenvectors at sigma {ctx.cfg.sigma:g}. "
        + basis
        + " Effective dimension (trace of the Jacobian): "
        + ", ".join(f"{v:.1f} at sigma {s}" for s, v in traces.items())
        + "."
    )
    return sec


SECTION_FUNCTIONS = {
    "denoising": denoising,
    "representation": representation,
    "neighbours": neighbours,
    "clusters": clusters,
    "probe": probe,
    "samples": samples,
    "reconstructions": reconstructions,
    "distance": distance,
    "jacobian": jacobian,
}
NEEDS_STORE = ("neighbours", "clusters", "probe")
