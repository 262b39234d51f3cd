"""The in-memory form of every data source: uint8 images (memory-mapped or read from disk per row
when large) and labels."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from denoiserlens.errors import UserError


def read_npy_header(f, where: object) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the ``.npy`` header at ``f``'s position, refusing
    object arrays; ``where`` names the array in errors."""
    try:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
    except ValueError as e:
        raise UserError(f"{where}: not a numpy array inside ({e})") from None
    if dtype.hasobject:
        raise UserError(f"{where}: holds Python objects; refusing to unpickle them")
    return shape, fortran, dtype


def _row_index(key, n: int, kind: str) -> int | np.ndarray:
    """A row key of an (n, ...) array as numpy reads it: a row number in [0, n), or an int64 array
    of them (from a slice or a 1-d array of ints, negative rows counted from the end)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not -n <= key < n:
            raise IndexError(f"row {key} out of range for {n} rows")
        return int(key) % n
    rows = np.arange(n)[key] if isinstance(key, slice) else np.asarray(key)
    if rows.dtype.kind not in "iu" or rows.ndim != 1:
        raise TypeError(f"{kind} takes an int, a slice or a 1-d array of ints")
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"row out of range for {n} rows")
    return np.where(rows < 0, rows + n, rows).astype(np.int64)


class FileRows:
    """The rows of an uncompressed (N, ...) array at ``offset`` in a file, read with ``pread`` when
    asked for and never memory-mapped: a process reading all of a large set (ImageNet64: 14.7 GB)
    keeps only the rows in use resident, where a memory map keeps every page it touched. Pickles as
    its path (DataLoader workers reopen the file). Indexing returns numpy arrays."""

    def __init__(
        self, path: str | os.PathLike, offset: int, shape: tuple[int, ...], dtype=np.uint8
    ):
        self.path, self.offset = os.fspath(path), int(offset)
        self.shape, self.dtype = tuple(int(v) for v in shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def from_npy(
        cls,
        file: str | os.PathLike,
        start: int = 0,
        length: int | None = None,
        where: object = None,
        row_shape: tuple[int, ...] | None = None,
    ) -> FileRows:
        """The rows of the ``.npy`` of ``length`` bytes at byte ``start`` of ``file`` (a zip
        member's bytes, or by default the whole file), checked whole and C-ordered; ``row_shape``
        reads each row in another shape (ImageNet64's 12288 values as 3 x 64 x 64)."""
        where = file if where is None else where
        with open(file, "rb") as f:
            f.seek(start)
            shape, fortran, dtype = read_npy_header(f, where)
            offset = f.tell()
        end = start + (os.path.getsize(file) - start if length is None else length)
        if fortran or offset + int(np.prod(shape)) * dtype.itemsize > end:
            raise UserError(f"{where}: the array is cut short or not C-ordered")
        return cls(file, offset, (shape[0], *(row_shape or shape[1:])), dtype)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, count: int) -> np.ndarray:
        if self._fd is None or self._pid != os.getpid():  # opened once per process
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        out = np.empty((count, *self.shape[1:]), self.dtype)
        if out.size == 0:
            return out
        view, done = memoryview(out).cast("B"), 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], self.offset + start * self.row_bytes + done)
            if got == 0:
                raise UserError(f"{self.path}: cut short (rows {start}..{start + count - 1})")
            done += got
        return out

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):  # one read
            start, stop, _ = key.indices(len(self))
            return self._read(start, max(0, stop - start))
        rows = _row_index(key, len(self), "FileRows")
        if isinstance(rows, int):
            return self._read(rows, 1)[0]
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for i, r in enumerate(rows):
            out[i] = self._read(int(r), 1)[0]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._read(0, len(self))  # everything in memory: only for small sets
        return out if dtype is None else out.astype(dtype)


class StackedRows:
    """Several (N_k, C, H, W) arrays (memory maps, typically) read as one, along the rows, without
    concatenating them: what a data set spread over many files (ImageNet64's ten training batches)
    needs to stay on disk. Indexing by an int, a slice or an array of ints returns a numpy array.
    """

    def __init__(self, parts: list[np.ndarray | FileRows]) -> None:
        if not parts or len({(tuple(p.shape[1:]), p.dtype) for p in parts}) != 1:
            raise ValueError("parts must share their image shape and dtype")
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        part = np.searchsorted(self.starts, rows, side="right") - 1
        return part, rows - self.starts[part]

    def __getitem__(self, key):
        rows = _row_index(key, len(self), "StackedRows")
        if isinstance(rows, int):
            part, row = self._locate(np.asarray([rows]))
            return self.parts[int(part[0])][int(row[0])]
        part, local = self._locate(rows)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for k in np.unique(part):  # one fancy index per file, in the order asked
            at = np.flatnonzero(part == k)
            out[at] = self.parts[int(k)][local[at]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate(self.parts)  # everything in memory: only for small sets
        return out if dtype is None else out.astype(dtype)


def is_array(images: object) -> bool:
    """Whether an :class:`ImageSet`'s images are one (N, C, H, W) array (not a list of images)."""
    return isinstance(images, (np.ndarray, FileRows, StackedRows))


@dataclass
class ImageSet:
    """Images as uint8 (C, H, W) arrays: one (N, C, H, W) array (possibly a memmap) or a list.

    ``names`` identifies each image (file path, or source:index); ``labels`` are optional integers
    and ``label_names`` their meaning. Images stay uint8 here; they become floats per batch.
    Float images in [0, 1] (:meth:`from_tensor`, :meth:`from_dataset`: a user's own tensors,
    never quantized) are float32 arrays instead; ``to_float`` takes them as they are.
    """

    images: np.ndarray | FileRows | StackedRows | list[np.ndarray]
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
        if is_array(self.images):
            return int(self.images.shape[2]), int(self.images.shape[3])
        sizes = {im.shape[1:] for im in self.images}
        return tuple(int(s) for s in sizes.pop()) if len(sizes) == 1 else None  # type: ignore

    def as_array(self) -> np.ndarray | FileRows | StackedRows:
        """All images as one (N, C, H, W) uint8 array (they must share a size)."""
        if is_array(self.images):
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
        scale = 1.0 if self.is_float else 255.0
        return [float(v) / scale for v in np.mean(per_image, axis=0)]

    @property
    def is_float(self) -> bool:
        """Float images in [0, 1] (from a user's tensors), not uint8."""
        return bool(len(self)) and np.issubdtype(np.asarray(self.images[0]).dtype, np.floating)

    @classmethod
    def from_tensor(
        cls,
        x: torch.Tensor | np.ndarray,
        labels: Sequence[int] | None = None,
        source: str = "tensor",
    ) -> ImageSet:
        """Images (N, C, H, W) from memory: uint8 as they are, floats in [0, 1] kept as float32
        (not quantized to 8 bits). Names are ``source:index``."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if a.ndim != 4:
            raise UserError(f"{source}: expected images of shape (N, C, H, W), got {a.shape}")
        if np.issubdtype(a.dtype, np.floating):
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
                raise UserError(
                    f"{source}: float images must be finite and in [0, 1] (pixel units), "
                    f"got values in [{lo:.3g}, {hi:.3g}]; rescale them"
                )
        elif a.dtype != np.uint8:
            raise UserError(f"{source}: images must be uint8 or float in [0, 1], got {a.dtype}")
        lab = None if labels is None else np.asarray(labels, dtype=np.int64)
        names = [f"{source}:{i}" for i in range(len(a))]
        return cls(images=a, names=names, labels=lab, source=source)

    @classmethod
    def from_dataset(cls, data: Any, source: str = "dataset") -> ImageSet:
        """The images of a torch ``Dataset`` (items an image, or (image, label)) or of a
        ``DataLoader`` (batches likewise), read once into memory: :meth:`from_tensor`."""
        from torch.utils.data import DataLoader

        images, labels = [], []
        items = data if isinstance(data, DataLoader) else (data[i] for i in range(len(data)))
        for item in items:
            x, y = (item[0], item[1]) if isinstance(item, tuple | list) else (item, None)
            x = torch.as_tensor(x)
            batch = x if isinstance(data, DataLoader) else x[None]
            images.append(batch)
            if y is not None:
                labels.append(torch.as_tensor(y).reshape(-1))
        if not images:
            raise UserError(f"{source}: no images")
        lab = torch.cat(labels).tolist() if len(labels) == len(images) else None
        return cls.from_tensor(torch.cat(images), lab, source)

    def mean_intensity(self, max_images: int = 4096) -> float:
        """The images' mean pixel value in [0, 1], over all channels (see :meth:`channel_means`)."""
        return float(np.mean(self.channel_means(max_images)))

    def subset(self, index: np.ndarray | list[int]) -> ImageSet:
        """The images at ``index``, in that order (a copy of the selected rows)."""
        index = np.asarray(index, dtype=np.int64)
        if is_array(self.images):
            images: np.ndarray | FileRows | StackedRows | list[np.ndarray] = self.images[index]
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
            if is_array(self.images):
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


def as_image_set(data: Any) -> ImageSet:
    """An :class:`ImageSet` as it is; a tensor or array (N, C, H, W) by
    :meth:`ImageSet.from_tensor`; a torch ``Dataset`` or ``DataLoader`` by
    :meth:`ImageSet.from_dataset`."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, ImageSet):
        return data
    if isinstance(data, torch.Tensor | np.ndarray):
        return ImageSet.from_tensor(data)
    if isinstance(data, Dataset | DataLoader):
        return ImageSet.from_dataset(data)
    raise UserError(f"cannot read images from a {type(data).__name__}")
