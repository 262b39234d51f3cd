"""What a reader sees in generated images, as numbers (issue 19): pixel statistics against the data,
the Frechet distance in a classifier's features (with the data-vs-data floor at the same n), and the
class agreement of reconstructions with their targets.

A phi cosine of 0.997 can sit beside a reconstruction of the wrong garment: these measures say
whether samples look like the data (Figure 19) and reconstructions like their target (Figure 7).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import scipy.stats
import torch

from denoiserlens.errors import UserError
from denoiserlens.quality.classifier import Classifier


def frechet_from_moments(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray
) -> float:
    """Frechet (2-Wasserstein) distance squared between Gaussians N(mu1, cov1) and N(mu2, cov2):
    ||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)) (Dowson & Landau 1982; the FID)."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    with warnings.catch_warnings():  # dead ReLU features make the product singular: fine here
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov1 @ cov2)
        if not np.all(np.isfinite(covmean)):  # regularize, as FID code does
            eps = 1e-6 * np.eye(len(cov1))
            covmean = scipy.linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))
    return max(value, 0.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between two feature sets (N, F), each summarized by its mean and covariance."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise UserError("the Frechet distance needs at least 2 images on each side")
    return frechet_from_moments(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )


@dataclass(frozen=True)
class PixelStats:
    """Pixel statistics of float images in [0, 1]: mean and std over every pixel, the mean over
    images of each image's max, and the same for its min."""

    mean: float
    std: float
    max: float
    min: float


def pixel_stats(images: np.ndarray) -> PixelStats:
    """:class:`PixelStats` of images (N, C, H, W)."""
    x = np.asarray(images, np.float64)
    flat = x.reshape(len(x), -1)
    return PixelStats(
        float(x.mean()), float(x.std()), float(flat.max(1).mean()), float(flat.min(1).mean())
    )


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein (earth mover's) distance between the pixel-value distributions of two image
    sets, in pixel units (0.01 = the histograms are 2.55 grey levels apart on average)."""
    return float(scipy.stats.wasserstein_distance(np.ravel(a), np.ravel(b)))


@dataclass(frozen=True)
class SampleQuality:
    """Generated images against held-out data (Figure 19's claim: samples look like the data).

    ``frechet`` is the Frechet distance of n generated vs n reference images in the classifier's
    features; ``frechet_floor`` the same between two disjoint sets of n reference images (what
    perfect samples would score at this n). ``class_shares`` the share of samples put in each class."""

    n: int
    samples: PixelStats
    data: PixelStats
    histogram_distance: float
    frechet: float | None = None
    frechet_floor: float | None = None
    class_shares: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """What a person reads: one line per measure."""
        s, d = self.samples, self.data
        out = [
            f"pixels (samples vs data): mean {s.mean:.3f} vs {d.mean:.3f} ({_rel(s.mean, d.mean)}), "
            f"std {s.std:.3f} vs {d.std:.3f} ({_rel(s.std, d.std)}), per-image max {s.max:.3f} "
            f"vs {d.max:.3f}; histogram distance {self.histogram_distance:.4f}",
        ]
        if self.frechet is not None:
            ratio = self.frechet / self.frechet_floor if self.frechet_floor else float("inf")
            out.append(
                f"Frechet distance (classifier features, n = {self.n}): {self.frechet:.3f}; "
                f"data vs data {self.frechet_floor:.3f} ({ratio:.1f}x the floor)"
            )
        return out


def _rel(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.0f}%" if b else "n/a"


def check_reference(
    n: int, shape: tuple[int, ...], reference: np.ndarray, with_classifier: bool
) -> int:
    """The number of reference images that :func:`sample_quality` needs for ``n`` samples of
    ``shape`` (C, H, W): n, and n more for the Frechet floor; a UserError if ``reference`` (N, C, H,
    W) is too small or of another shape. Callers check before they spend time sampling."""
    if n < 2:
        raise UserError("quality measures need at least 2 generated images")
    if tuple(shape) != tuple(reference.shape[1:]):
        raise UserError(
            f"samples are {tuple(shape)} but the reference images are {tuple(reference.shape[1:])}"
        )
    need = 2 * n if with_classifier else n
    if len(reference) < need:
        raise UserError(
            f"{n} samples need {need} reference images (n for the comparison"
            + (", n more for the data-vs-data floor" if with_classifier else "")
            + f"); the reference has {len(reference)}"
        )
    return need


def sample_quality(
    samples: np.ndarray,
    reference: np.ndarray,
    classifier: Classifier | None = None,
    seed: int = 0,
) -> SampleQuality:
    """Measure ``samples`` (N, C, H, W) in [0, 1] against ``reference`` images (held-out data).

    Pixel statistics use n = len(samples) reference images; the Frechet distance (when a
    classifier is given) compares the samples with n reference images and, for its floor, those
    with n other reference images, so ``reference`` needs 2n images (chosen at random by ``seed``)."""
    n = len(samples)
    need = check_reference(n, tuple(samples.shape[1:]), reference, classifier is not None)
    pick = np.random.default_rng(seed).permutation(len(reference))[:need]
    ref_a = reference[np.sort(pick[:n])]
    out = dict(
        n=n,
        samples=pixel_stats(samples),
        data=pixel_stats(ref_a),
        histogram_distance=histogram_distance(samples, ref_a),
    )
    if classifier is not None:
        f_s, p_s = classifier.embed(samples)
        f_a, _ = classifier.embed(ref_a)
        f_b, _ = classifier.embed(reference[np.sort(pick[n:])])
        counts = np.bincount(p_s, minlength=len(classifier.class_names)) / n
        out.update(
            frechet=frechet_distance(f_s, f_a),
            frechet_floor=frechet_distance(f_b, f_a),
            class_shares={c: float(v) for c, v in zip(classifier.class_names, counts, strict=True)},
        )
    return SampleQuality(**out)


@dataclass(frozen=True)
class ReconstructionQuality:
    """Reconstructions against their targets (Figure 7's claim: samples conditioned on phi of an
    image are images of the same kind). ``agreement`` is the share of all reconstructions that the
    classifier puts in their target's class (chance: 1 / classes); ``per_target`` that share per
    target; ``target_classes`` the class of each target (its label, else the classifier's
    prediction of the target itself, ``from_labels`` says which)."""

    agreement: float
    chance: float
    per_target: list[float]
    target_classes: list[str]
    predicted: list[list[str]]
    from_labels: bool
    samples: PixelStats
    targets: PixelStats

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        k = len(self.per_target)
        return [
            f"class agreement: {100 * self.agreement:.0f}% of {k} x "
            f"{len(self.predicted[0]) if k else 0} reconstructions in their target's class "
            f"(chance {100 * self.chance:.0f}%; target classes from "
            f"{'labels' if self.from_labels else 'the classifier'})",
            f"pixels (reconstructions vs targets): mean {self.samples.mean:.3f} vs "
            f"{self.targets.mean:.3f}, std {self.samples.std:.3f} vs {self.targets.std:.3f}",
        ]


def reconstruction_quality(
    samples: np.ndarray,
    targets: np.ndarray,
    classifier: Classifier,
    labels: np.ndarray | None = None,
) -> ReconstructionQuality:
    """Class agreement of ``samples`` (K * n, C, H, W; sample j of target t at row t * n + j) with
    their ``targets`` (K, C, H, W). ``labels`` (K,) are the targets' classes when known."""
    k = len(targets)
    if k == 0 or len(samples) % k:
        raise UserError(f"{len(samples)} reconstructions do not split evenly over {k} targets")
    n = len(samples) // k
    pred = classifier.predict(samples).reshape(k, n)
    from_labels = labels is not None
    cls = np.asarray(labels, np.int64) if from_labels else classifier.predict(targets)
    names = classifier.class_names
    if cls.max(initial=0) >= len(names) or cls.min(initial=0) < 0:
        raise UserError(
            f"target labels {sorted(set(cls.tolist()))} do not fit the classifier's "
            f"{len(names)} classes"
        )
    hits = pred == cls[:, None]
    return ReconstructionQuality(
        agreement=float(hits.mean()),
        chance=1 / len(names),
        per_target=[float(v) for v in hits.mean(1)],
        target_classes=[names[c] for c in cls],
        predicted=[[names[c] for c in row] for row in pred],
        from_labels=from_labels,
        samples=pixel_stats(samples),
        targets=pixel_stats(targets),
    )


def shrinkage_slopes(
    denoise, images: torch.Tensor, sigmas: list[float], seed: int = 0
) -> list[float]:
    """The denoiser's shrinkage towards the mean at each noise level (issue 19, item 2): the
    least-squares slope of x_hat(x + sigma z) on x over every pixel of ``images`` (N, C, H, W),
    cov(x_hat, x) / var(x). 1: no shrinkage; an estimator x_hat = m + a (y - m) has slope a.
    A sampler's partial steps compound a slope below 1 into dim samples."""
    x = images.double()
    xc = x - x.mean()
    out = []
    for k, s in enumerate(sigmas):
        g = torch.Generator(device=images.device).manual_seed(seed * 1_000_003 + 104_729 + k)
        z = torch.randn(images.shape, generator=g, device=images.device)
        with torch.no_grad():
            est = denoise(images + s * z).double()
        out.append(float(((est - est.mean()) * xc).sum() / xc.pow(2).sum()))
    return out
