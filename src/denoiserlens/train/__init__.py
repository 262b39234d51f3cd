"""Training: noise-level distributions, the loop, exact resume, DDP."""

from denoiserlens.train.loop import (
    TrainConfig,
    check_training_images,
    evaluate_psnr,
    init_distributed,
    train,
)
from denoiserlens.train.noise import SIGMA_DISTRIBUTIONS, add_noise, sample_sigma

__all__ = [
    "SIGMA_DISTRIBUTIONS",
    "TrainConfig",
    "add_noise",
    "check_training_images",
    "evaluate_psnr",
    "init_distributed",
    "sample_sigma",
    "train",
]
