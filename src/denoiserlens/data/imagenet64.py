"""Downsampled ImageNet as distributed (Chrabaszcz, Loshchilov & Hutter 2017, the paper's
ImageNet64): ``train_data_batch_1.npz`` ... ``train_data_batch_10.npz`` and ``val_data.npz``, each
with key ``data``, uint8 rows of 3 x S x S values in channel-major order (the red plane, then
green, then blue; S = 64 for ImageNet64, 32 and 16 for the smaller sets), and key ``labels``,
classes 1..1000.

Read lazily, rows as they are asked for (:class:`FileRows`: ``pread``, not a memory map, so that
a pass over the whole set keeps only the rows in use resident): the rows of an uncompressed
``.npz`` (``np.savez``, as distributed) are read where they lie in the zip file; a compressed
member (``np.savez_compressed``) is decompressed once, with a progress bar, into a ``.npy`` in
the cache (:mod:`denoiserlens.data.cache`) and read from there. Labels (small) are read into
memory and shifted to 0..999.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from denoiserlens.data.cache import cache_entry
from denoiserlens.data.imageset import FileRows, ImageSet, read_npy_header
from denoiserlens.errors import UserError
from denoiserlens.fileio import write_atomic

ROWS, LABELS = "data", "labels"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip member's local header: 30 bytes


def is_imagenet_npz(members: list[str]) -> bool:
    """Whether an ``.npz``'s member names are those of the downsampled-ImageNet layout."""
    names = {m.removesuffix(".npy") for m in members}
    return ROWS in names and not names & {"images", "x"}


def _stored_start(path: Path, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed member's bytes begin in the zip file (past its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise UserError(f"{path}: damaged zip file (member {info.filename})")
    return info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]  # name, extra field


def _decompressed(path: Path, info: zipfile.ZipInfo, show: bool) -> Path:
    """A compressed member as a ``.npy`` in the cache, decompressed there once (atomically)."""
    stat = path.stat()
    key = hashlib.blake2b(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=6
    ).hexdigest()
    with cache_entry(f"{path.stem}.{info.filename.removesuffix('.npy')}.{key}.npy") as cached:
        if not cached.exists():
            write_atomic(cached, lambda tmp: _decompress(path, info, tmp, show))
    return cached


def _decompress(path: Path, info: zipfile.ZipInfo, tmp: Path, show: bool) -> None:
    """Copy the member's bytes (a whole ``.npy``) out of the zip, with a progress bar."""
    bar = tqdm(
        total=info.file_size,
        leave=False,
        unit="B",
        unit_scale=True,
        disable=not show,
        desc=f"decompressing {path.name} once",
    )
    with bar, zipfile.ZipFile(path) as z, z.open(info) as src, open(tmp, "wb") as dst:
        try:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
                bar.update(len(chunk))
        except (zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise UserError(f"{path}: member {info.filename} is damaged ({e})") from None
    with open(tmp, "rb") as f:  # a whole array, or nothing enters the cache
        shape, _, dtype = read_npy_header(f, path)
        if f.tell() + int(np.prod(shape)) * dtype.itemsize > tmp.stat().st_size:
            raise UserError(f"{path}: member {info.filename} is cut short")


def _info(z: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    return next((i for i in z.infolist() if i.filename in (name, name + ".npy")), None)


def _check_layout(path: Path, z: zipfile.ZipFile, rows: zipfile.ZipInfo) -> tuple[int, int]:
    """(N, S) from the rows' header, read before anything is mapped or decompressed."""
    with z.open(rows) as f:
        shape, _, dtype = read_npy_header(f, path)
    if len(shape) != 2 or dtype != np.uint8:
        raise UserError(f"{path}: '{ROWS}' must be uint8 rows (N, 3*S*S); got {dtype} {shape}")
    side = int(round((shape[1] / 3) ** 0.5))
    if side < 1 or 3 * side * side != shape[1]:
        raise UserError(
            f"{path}: rows of {shape[1]} values are not 3 x S x S "
            "(ImageNet64 has 12288 = 3 x 64 x 64)"
        )
    return shape[0], side


def _read_labels(path: Path, z: zipfile.ZipFile, n: int) -> np.ndarray | None:
    """The labels (small: read into memory), checked against the rows and shifted to 0-based."""
    info = _info(z, LABELS)
    if info is None:
        return None
    with z.open(info) as f:
        try:
            raw = np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as e:
            raise UserError(f"{path}: member {info.filename} is unreadable ({e})") from None
    labels = np.asarray(raw).astype(np.int64).reshape(-1)
    if len(labels) != n:
        raise UserError(f"{path}: {n} rows but {len(labels)} labels")
    if len(labels) and labels.min() < 1:
        raise UserError(
            f"{path}: labels must be 1-based (1..1000) as distributed; found {labels.min()}"
        )
    return labels - 1


def load_imagenet_npz(path: str | Path, show_progress: bool = True) -> ImageSet:
    """One file of the downsampled-ImageNet layout as (N, 3, S, S) uint8 images, lazily. Its
    layout (row length, labels) is checked before the rows are mapped or decompressed."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            info = _info(z, ROWS)
            if info is None:
                raise UserError(f"{path}: no '{ROWS}' array")
            n, side = _check_layout(path, z, info)
            labels = _read_labels(path, z, n)
            if info.compress_type == zipfile.ZIP_STORED:  # read where it lies in the zip
                start, where = _stored_start(path, info), str(path)
                images = FileRows.from_npy(path, start, info.file_size, where, (3, side, side))
            else:
                cached = _decompressed(path, info, show_progress)
                where = f"{cached} (the cached rows of {path}; delete it to decompress again)"
                images = FileRows.from_npy(cached, where=where, row_shape=(3, side, side))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    names = [f"{path.name}:{i}" for i in range(n)]
    return ImageSet(images, names, labels, source=str(path))
