"""Synthetic images with few degrees of freedom (slides: geometry-adaptive harmonic representations).

- :func:`disks`: one disk per image (radius, centre x/y, foreground and background: 5 degrees).
- :func:`c_alpha`: a closed contour of Hoelder regularity alpha separating two backgrounds of
  regularity alpha (by default).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from denoiserlens.data.imageset import ImageSet


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)


def disks(n: int, size: int = 32, seed: int = 0) -> ImageSet:
    """``n`` disk images (N, 1, size, size): radius ~ U[3, size/2 - 3], centre uniform where the
    disk fits, foreground and background intensities ~ U[0, 1]."""
    if size < 14:
        raise ValueError("disk images need size >= 14")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.empty((n, 1, size, size), np.uint8)
    params = np.empty((n, 5))
    for i in range(n):
        r = rng.uniform(3, size / 2 - 3)
        cy, cx = rng.uniform(r, size - r, 2)
        fg, bg = rng.uniform(0, 1, 2)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        out[i, 0] = _to_uint8(np.where(inside, fg, bg))
        params[i] = (r, cy, cx, fg, bg)
    names = [f"disk:{i}" for i in range(n)]
    ims = ImageSet(out, names, source=f"disks(n={n}, size={size}, seed={seed})")
    ims.params = params  # type: ignore[attr-defined]  # (radius, cy, cx, fg, bg) per image
    return ims


def fractal_noise_1d(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Periodic white noise filtered by 1/|f|^exponent, zero mean, unit max-abs."""
    f = np.fft.rfftfreq(n, d=1.0 / n)
    spec = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    spec[1:] /= f[1:] ** exponent
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-12)


def fractal_noise_2d(size: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """White noise filtered by 1/|f|^exponent in 2D, rescaled to [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**exponent
    spec[0, 0] = 0
    x = np.fft.irfft2(spec, (size, size))
    return (x - x.min()) / (x.max() - x.min() + 1e-12)


def c_alpha(
    n: int,
    size: int = 32,
    alpha: float = 1.0,
    beta: float | None = None,
    blur: float = 0.5,
    seed: int = 0,
) -> ImageSet:
    """``n`` C-alpha images (N, 1, size, size): regular contours on regular backgrounds (the
    class of Peyre & Mallat 2008 used by Kadkhodaie et al. 2024, whose optimal denoiser's PSNR
    slope is alpha / (alpha + 1)).

    The contour is r(theta) = r0 (1 + 0.3 b(theta)), b periodic noise with amplitude spectrum
    1/|f|^(alpha + 1/2) (a Hoelder-alpha curve, as fractional Brownian motion of index alpha); the
    two regions are 2D noise with amplitude spectrum 1/|f|^(beta + 1) (regularity beta, by default
    alpha: the whole image becomes more regular as alpha grows), each rescaled to a random
    intensity range; a Gaussian blur of std ``blur`` pixels smooths the edge.
    """
    beta = alpha if beta is None else beta
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.empty((n, 1, size, size), np.uint8)
    n_theta = 4 * size
    contours = np.empty((n, n_theta))
    params = np.empty((n, 3))
    for i in range(n):
        cy, cx = rng.uniform(0.4 * size, 0.6 * size, 2)
        r0 = rng.uniform(0.2 * size, 0.3 * size)
        b = fractal_noise_1d(n_theta, alpha + 0.5, rng)
        contours[i], params[i] = b, (cy, cx, r0)
        theta = np.arctan2(yy - cy, xx - cx) % (2 * np.pi)
        radius = r0 * (1 + 0.3 * b[(theta / (2 * np.pi) * n_theta).astype(int) % n_theta])
        inside = np.hypot(yy - cy, xx - cx) <= radius
        regions = []
        for _ in range(2):
            lo, hi = np.sort(rng.uniform(0, 1, 2))
            regions.append(lo + (hi - lo) * fractal_noise_2d(size, beta + 1, rng))
        img = np.where(inside, regions[0], regions[1])
        if blur > 0:
            img = gaussian_filter(img, blur, mode="reflect")
        out[i, 0] = _to_uint8(img)
    names = [f"c-alpha:{i}" for i in range(n)]
    ims = ImageSet(out, names, source=f"c_alpha(n={n}, size={size}, alpha={alpha}, seed={seed})")
    ims.params = params  # type: ignore[attr-defined]  # (cy, cx, r0) per image
    ims.contours = contours  # type: ignore[attr-defined]  # b(theta): r = r0 (1 + 0.3 b)
    return ims
