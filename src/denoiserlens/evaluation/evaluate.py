"""Denoising performance: PSNR and SSIM over a grid of noise levels, our models vs baselines.

Every method sees the same noisy images: the noise of image i at noise level sigma is drawn from
a generator seeded by (seed, sigma, i), whatever the other noise levels of the run. Noisy images
are not clipped (the standard Gaussian benchmark); estimates are clipped to [0, 1] before scoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from denoiserlens.data import ImageSet, pad_to_multiple, to_float
from denoiserlens.errors import UserError
from denoiserlens.evaluation.metrics import psnr, ssim
from denoiserlens.models import Denoiser

Method = Callable[[torch.Tensor, float], torch.Tensor]  # (noisy (1, C, H, W), sigma) -> estimate


def noisy_image(x: torch.Tensor, sigma: float, seed: int, i: int) -> torch.Tensor:
    """x + sigma z with z drawn from a generator seeded by (seed, sigma in 1/100 of 255, i).

    The noise is drawn on the CPU and moved to ``x``'s device: the same draw on every device."""
    level = int(round(sigma * 255 * 100))
    g = torch.Generator().manual_seed(seed * 1_000_003 + level * 10_007 + i)
    return x + sigma * torch.randn(x.shape, generator=g).to(x.device, x.dtype)


def model_method(model: Denoiser, pad: bool = False, device: str | torch.device = "cpu") -> Method:
    """A blind denoiser as a method: sigma is *not* given to it."""

    def run(y: torch.Tensor, sigma: float) -> torch.Tensor:
        h, w = y.shape[-2:]
        if pad:
            y, _ = pad_to_multiple(y, model.size_multiple)
        with torch.no_grad():
            return model(y.to(device)).cpu()[..., :h, :w]

    return run


def bm3d_method(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D (Dabov et al. 2007; the ``bm3d`` package, Makinen et al. 2020), given the true sigma."""
    import bm3d

    z = y[0].permute(1, 2, 0).double().numpy()
    if z.shape[2] == 1:
        est = bm3d.bm3d(z[:, :, 0], sigma_psd=sigma)[:, :, None]
    else:
        est = bm3d.bm3d_rgb(z, sigma_psd=sigma)
    return torch.from_numpy(np.ascontiguousarray(est)).permute(2, 0, 1)[None].float()


@dataclass
class EvalResult:
    """Per-image scores: psnr[method][k] and ssim[method][k] are arrays over images."""

    sigmas: list[float]
    names: list[str]
    psnr: dict[str, list[np.ndarray]]
    ssim: dict[str, list[np.ndarray]]
    seconds: dict[str, float]

    def table(self) -> list[dict]:
        """One row per (method, sigma): mean PSNR (dB) and SSIM."""
        return [
            {
                "method": m,
                "sigma_255": round(s * 255, 4),
                "psnr": float(self.psnr[m][k].mean()),
                "ssim": float(self.ssim[m][k].mean()),
            }
            for m in self.psnr
            for k, s in enumerate(self.sigmas)
        ]

    def format_table(self) -> str:
        head = f"{'method':<28}" + "".join(f"  sigma {s * 255:>5g}   " for s in self.sigmas)
        lines = [head, f"{'':<28}" + "  PSNR   SSIM    " * len(self.sigmas)]
        for m in self.psnr:
            cells = "".join(
                f"{self.psnr[m][k].mean():7.2f} {self.ssim[m][k].mean():.4f}  "
                for k in range(len(self.sigmas))
            )
            lines.append(f"{m:<28}{cells}")
        return "\n".join(lines)


def evaluate(
    methods: dict[str, Method],
    images: ImageSet,
    sigmas: list[float],
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """PSNR and SSIM of every method on every image at every sigma (one seeded noise draw each)."""
    for s in sigmas:
        if not s >= 0:
            raise UserError(f"noise levels must be >= 0, got {s}")
    res = EvalResult(list(sigmas), list(images.names), {}, {}, {})
    for name, method in methods.items():
        t0 = time.time()
        res.psnr[name], res.ssim[name] = [], []
        for sigma in sigmas:
            p, q = [], []
            for i in range(len(images)):
                x = to_float(images[i])[None]
                est = method(noisy_image(x, sigma, seed, i), sigma).clamp(0, 1)
                p.append(float(psnr(est, x)[0]))
                q.append(float(ssim(est, x)[0]))
            res.psnr[name].append(np.array(p))
            res.ssim[name].append(np.array(q))
            if progress:
                progress(f"{name}: sigma {sigma * 255:g}: PSNR {np.mean(p):.2f} dB")
        res.seconds[name] = time.time() - t0
    return res
