"""Pixel-level transforms on uint8 (C, H, W) images: channels, centre crop and resize, patches, padding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from denoiserlens.data.imageset import ImageSet
from denoiserlens.errors import UserError


def convert_channels(im: np.ndarray, channels: int) -> np.ndarray:
    """Gray <-> colour: ITU-R 601 luminance (as PIL's "L") or replication of the gray channel."""
    if im.shape[0] == channels:
        return im
    if channels == 1:
        w = np.array([299, 587, 114], dtype=np.float64)[:, None, None] / 1000.0
        return np.round((im.astype(np.float64) * w).sum(0, keepdims=True)).astype(np.uint8)
    return np.repeat(im, 3, axis=0)


RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC}


def center_crop_resize(im: np.ndarray, size: int, resample: str = "lanczos") -> np.ndarray:
    """The largest centred square, resized to ``size`` x ``size`` by ``resample`` ("lanczos", or
    "bicubic" as the authors made their 80x80 sets)."""
    if resample not in RESAMPLING:
        raise UserError(f"resampling is one of {sorted(RESAMPLING)}, not {resample!r}")
    _, h, w = im.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = im[:, top : top + s, left : left + s]
    if s == size:
        return np.ascontiguousarray(crop)
    planes = [
        np.asarray(Image.fromarray(c).resize((size, size), RESAMPLING[resample])) for c in crop
    ]
    return np.stack(planes)


def pad_center(ims: np.ndarray, size: int) -> np.ndarray:
    """Centre (..., C, H, W) images on a black ``size`` x ``size`` canvas (e.g. 28x28 -> 32x32)."""
    h, w = ims.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}: they are larger")
    top, left = (size - h) // 2, (size - w) // 2
    widths = [(0, 0)] * (ims.ndim - 2) + [(top, size - h - top), (left, size - w - left)]
    return np.pad(ims, widths)


def extract_patches(
    ims: ImageSet, size: int, mode: str = "grid", per_image: int | None = None, seed: int = 0
) -> ImageSet:
    """Cut size x size patches from every image: a non-overlapping ``grid`` or ``random`` positions.

    Each patch's label is the index of its source image (or the source's label if it has one);
    ``per_image`` caps the count per image (random mode draws exactly that many, seeded).
    """
    rng = np.random.default_rng(seed)
    patches, names, labels = [], [], []
    for i in range(len(ims)):
        im = ims[i]
        _, h, w = im.shape
        if h < size or w < size:
            continue
        if mode == "grid":
            tops = [
                (t, le) for t in range(0, h - size + 1, size) for le in range(0, w - size + 1, size)
            ]
            if per_image is not None and len(tops) > per_image:
                tops = [tops[j] for j in sorted(rng.choice(len(tops), per_image, replace=False))]
        elif mode == "random":
            n = per_image or max(1, (h // size) * (w // size))
            tops = list(
                zip(rng.integers(0, h - size + 1, n), rng.integers(0, w - size + 1, n), strict=True)
            )
        else:
            raise ValueError(f"patch mode must be 'grid' or 'random', not {mode!r}")
        for t, le in tops:
            patches.append(im[:, t : t + size, le : le + size])
            names.append(f"{ims.names[i]}@{t},{le}")
            labels.append(i if ims.labels is None else int(ims.labels[i]))
    if not patches:
        raise ValueError(f"no image is at least {size}x{size}")
    return ImageSet(
        np.stack(patches),
        names,
        np.array(labels, np.int64),
        label_names=ims.label_names if ims.labels is not None else list(ims.names),
        source=f"{ims.source} [{mode} patches {size}]",
    )


def pad_to_multiple(y: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to a multiple; returns the original (H, W)."""
    h, w = y.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return y, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(y, (0, pw, 0, ph), mode=mode), (h, w)
