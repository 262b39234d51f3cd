"""Evaluation: PSNR/SSIM over noise levels, against BM3D and imported peer models."""

from denoiserlens.evaluation.evaluate import (
    EvalResult,
    bm3d_method,
    evaluate,
    model_method,
    noisy_image,
)
from denoiserlens.evaluation.metrics import psnr, ssim

__all__ = [
    "EvalResult",
    "bm3d_method",
    "evaluate",
    "model_method",
    "noisy_image",
    "psnr",
    "ssim",
]
