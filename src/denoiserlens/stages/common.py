"""What every stage shares: the noise-level units of the command line, and the check that a
model takes a set of images."""

from __future__ import annotations

from denoiserlens.data import ImageSet
from denoiserlens.errors import UserError
from denoiserlens.models import Denoiser

SIGMA_HELP = "in [0, 255] units (sigma 25 = 25/255 in [0, 1] pixel units)"


def check_images(model: Denoiser, images: ImageSet, pad: bool = False) -> None:
    """Refuse a wrong channel count, and sizes not divisible by the model's multiple unless pad."""
    for i in range(len(images)):
        c, h, w = images[i].shape
        if c != model.image_channels:
            raise UserError(
                f"{images.names[i]}: {c}-channel image, the model takes "
                f"{model.image_channels} (use --channels)"
            )
        m = model.size_multiple
        if not pad and (h % m or w % m):
            raise UserError(f"{images.names[i]}: size {h}x{w} is not divisible by {m} (use --pad)")
