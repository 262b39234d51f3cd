"""Image quality: PSNR and SSIM for images in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from denoiserlens.errors import UserError


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, 10 log10(1 / MSE), for (N, C, H, W) images in [0, 1]; shape (N,)."""
    mse = (x_hat.float() - x.float()).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004; scikit-image, Gaussian window as in the paper), shape (N,)."""
    if min(x.shape[-2:]) < 11:
        raise UserError(
            f"SSIM needs images of at least 11x11 pixels (its Gaussian window), "
            f"got {x.shape[-2]}x{x.shape[-1]}"
        )
    out = []
    for a, b in zip(x_hat.float().cpu().numpy(), x.float().cpu().numpy(), strict=True):
        out.append(
            structural_similarity(
                a,
                b,
                data_range=1.0,
                channel_axis=0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
    return np.array(out)
