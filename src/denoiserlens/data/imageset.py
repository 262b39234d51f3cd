"""The in-memory form of every data source: uint8 images (memory-mapped when large) and labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from denoiserlens.errors import UserError


@dataclass
class ImageSet:
    """Images as uint8 (C, H, W) arrays: one (N, C, H, W) array (possibly a memmap) or a list.

    ``names`` identifies each image (file path, or source:index); ``labels`` are optional integers
    and ``label_names`` their meaning. Images stay uint8 here; they become floats per batch.
    """

    images: np.ndarray | list[np.ndarray]
    names: list[str]
    labels: np.ndarray | None = None
    label_names: list[str] | None = None
    source: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.images):
            raise ValueError("one name per image")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("one label per image")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) if every image has the same size, else None."""
        if isinstance(self.images, np.ndarray):
            return int(self.images.shape[2]), int(self.images.shape[3])
        sizes = {im.shape[1:] for im in self.images}
        return tuple(int(s) for s in sizes.pop()) if len(sizes) == 1 else None  # type: ignore

    def as_array(self) -> np.ndarray:
        """All images as one (N, C, H, W) uint8 array (they must share a size)."""
        if isinstance(self.images, np.ndarray):
            return self.images
        if self.fixed_size is None:
            raise UserError(f"{self.source}: images differ in size; crop, resize or cut patches")
        return np.stack(self.images)

    def channel_means(self, max_images: int = 4096, index: np.ndarray | None = None) -> list[float]:
        """Per-channel mean pixel values in [0, 1] (averages of per-image means over at most
        ``max_images`` evenly spaced images, of ``index`` if given): where the samplers and
        Algorithm 1 start."""
        index = np.arange(len(self)) if index is None else np.asarray(index)
        pick = np.unique(np.linspace(0, len(index) - 1, min(len(index), max_images)).round())
        per_image = [self[int(index[int(r)])].mean(axis=(1, 2), dtype=np.float64) for r in pick]
        return [float(v) / 255 for v in np.mean(per_image, axis=0)]

    def mean_intensity(self, max_images: int = 4096) -> float:
        """The images' mean pixel value in [0, 1], over all channels (see :meth:`channel_means`)."""
        return float(np.mean(self.channel_means(max_images)))

    def subset(self, index: np.ndarray | list[int]) -> ImageSet:
        """The images at ``index``, in that order (a copy of the selected rows)."""
        index = np.asarray(index, dtype=np.int64)
        if isinstance(self.images, np.ndarray):
            images: np.ndarray | list[np.ndarray] = self.images[index]
        else:
            images = [self.images[i] for i in index]
        return ImageSet(
            images=images,
            names=[self.names[i] for i in index],
            labels=None if self.labels is None else self.labels[index],
            label_names=self.label_names,
            source=self.source,
        )

    @property
    def fingerprint(self) -> str:
        """BLAKE2b hash of the pixels, shapes and labels, in row order (16 hex digits)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=8)
            if isinstance(self.images, np.ndarray):
                h.update(repr(self.images.shape).encode())
                for start in range(0, len(self.images), 4096):  # bounded memory for memmaps
                    h.update(np.ascontiguousarray(self.images[start : start + 4096]).tobytes())
            else:
                for im in self.images:
                    h.update(repr(im.shape).encode())
                    h.update(np.ascontiguousarray(im).tobytes())
            if self.labels is not None:
                h.update(np.asarray(self.labels, dtype=np.int64).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """JSON-able provenance: source, count, size, channels, fingerprint."""
        return {
            "source": self.source,
            "count": len(self),
            "size": self.fixed_size,
            "channels": self.channels,
            "labels": self.labels is not None,
            "fingerprint": self.fingerprint,
        }
