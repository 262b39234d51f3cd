"""uint8 images to float batches, in DataLoader workers (nothing float is kept in memory)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from denoiserlens.data.imageset import ImageSet


class UInt8Images(Dataset):
    """The rows ``index`` of a fixed-size :class:`ImageSet`, yielding uint8 tensors (C, H, W).

    Nothing is copied: a memory-mapped array stays on disk and each item is read when asked for,
    so a data set larger than RAM (ImageNet64: 14.7 GB as uint8) trains in bounded memory.
    """

    def __init__(self, images: ImageSet, index: np.ndarray | None = None) -> None:
        self.images = images.as_array()
        self.index = np.arange(len(self.images)) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[self.index[i]], dtype=np.uint8, copy=True))


def collate_to_float(batch: list[torch.Tensor]) -> torch.Tensor:
    """Stack uint8 images and scale to float32 in [0, 1] (runs in the loader worker)."""
    return torch.stack(batch).float().div_(255.0)


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) or (C, H, W) array -> float32 tensor in [0, 1]; a float array (the
    images of :meth:`ImageSet.from_tensor`, already in [0, 1]) is taken as it is, unquantized."""
    a = np.asarray(images)
    if np.issubdtype(a.dtype, np.floating):
        return torch.from_numpy(np.array(a, dtype=np.float32))
    return torch.from_numpy(a.astype(np.float32) / 255.0)
