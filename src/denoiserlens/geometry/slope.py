"""Denoising performance against noise level, and its slope (companion work, C-alpha images).

For images of regularity alpha (C-alpha: Hoelder-alpha contours on regular backgrounds), the
optimal denoiser's MSE decays as sigma^(2 alpha / (alpha + 1)) (Korostelev & Tsybakov 1993), so
output PSNR grows with input PSNR with slope alpha / (alpha + 1). A denoiser that adapts to the
geometry of the images (as bandlets do) reaches that slope; a fixed basis does not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from denoiserlens.evaluation.evaluate import noisy_image
from denoiserlens.evaluation.metrics import psnr


def optimal_slope(alpha: float) -> float:
    """alpha / (alpha + 1): the slope of the optimal denoiser on C-alpha images."""
    return alpha / (alpha + 1)


def psnr_curve(
    denoise: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    sigmas: list[float],
    seed: int = 0,
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean input and output PSNR (dB) over ``images`` (N, C, H, W) at each sigma (seeded noise,
    the same draws as ``evaluate``). Output images are clipped to [0, 1]."""
    p_in, p_out = [], []
    for s in sigmas:
        a, b = [], []
        for b0 in range(0, len(images), batch):
            x = images[b0 : b0 + batch]
            y = torch.cat([noisy_image(x[i : i + 1], s, seed, b0 + i) for i in range(len(x))])
            with torch.no_grad():
                est = denoise(y).float().clamp(0, 1)
            a.append(psnr(y, x))
            b.append(psnr(est, x))
        p_in.append(float(torch.cat(a).mean()))
        p_out.append(float(torch.cat(b).mean()))
    return np.array(p_in), np.array(p_out)


def fit_slope(p_in: np.ndarray, p_out: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of output PSNR against input PSNR."""
    slope, intercept = np.polyfit(np.asarray(p_in), np.asarray(p_out), 1)
    return float(slope), float(intercept)
