"""Large image folders (CelebA, LSUN, AFHQ, ... as files: hundreds of thousands of them) made into
fixed-size sets once, as the authors made their 80x80 training sets: each file decoded, its largest
centred square resized to ``size`` x ``size`` (bicubic, or Lanczos), gray files converted to
colour or skipped, in worker processes. The result is one ``.npy`` in the cache folder
(:mod:`denoiserlens.data.cache`) keyed by the folder's listing (names, sizes,
modification times) and the settings, written atomically and read back row by row
(:class:`~denoiserlens.data.imageset.FileRows`): a second run reads no image file, and no run
holds the decoded set in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from denoiserlens.data.cache import cache_entry
from denoiserlens.data.imageset import FileRows, ImageSet
from denoiserlens.data.sources import is_gray_mode, list_image_files, read_image
from denoiserlens.data.transforms import center_crop_resize
from denoiserlens.errors import UserError
from denoiserlens.fileio import write_atomic, write_json

CHUNK = 256  # files per task handed to a worker


def is_gray_file(path: Path) -> bool:
    """Whether an image file reads as gray (:func:`~denoiserlens.data.sources.is_gray_mode`),
    from its header: nothing is decoded."""
    try:
        with Image.open(path) as pil:
            return is_gray_mode(pil.mode)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None


def _prepare(task: tuple[list[Path], int, int, str]) -> bytes:
    """Decode, crop and resize a chunk of files (in a worker): their rows, concatenated."""
    paths, size, channels, resample = task
    return b"".join(
        center_crop_resize(read_image(p, channels), size, resample).tobytes() for p in paths
    )


def _chunks(files: list[Path]) -> list[list[Path]]:
    return [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]


def _grays(task: list[Path]) -> list[bool]:
    return [is_gray_file(p) for p in task]


def _map(fn, tasks: list, workers: int):
    """``map(fn, tasks)`` in order, in ``workers`` processes with at most two tasks each in
    flight: finished chunks never pile up in memory behind a slow one."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def prepared_folder(
    root: str | Path,
    size: int,
    channels: int | None = None,
    resample: str = "bicubic",
    gray_files: str = "convert",
    labels_from_dirs: bool = False,
    workers: int = 0,
    show_progress: bool = True,
) -> ImageSet:
    """The images below ``root`` as (N, C, ``size``, ``size``) uint8, prepared once (see the module
    docstring). ``channels`` None reads them as a folder is read without ``size``: gray if every
    file is, else colour. ``gray_files``: "convert" (replicated to colour) or "skip" (left out,
    when the set is colour)."""
    root = Path(root)
    if gray_files not in ("convert", "skip"):
        raise UserError(f"gray files are converted or skipped, not {gray_files!r}")
    files = list_image_files(root)
    listing = hashlib.blake2b(digest_size=8)
    listing.update(f"{root.resolve()}|{size}|{channels}|{resample}|{gray_files}".encode())
    for p in files:
        st = p.stat()
        listing.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    with cache_entry(f"folder-{root.name}-{size}x{size}-{listing.hexdigest()}.npy") as array:
        index = array.with_suffix(".json")
        if not (array.exists() and index.exists()):
            kept = _prepare_folder(
                root, files, array, size, channels, resample, gray_files, workers, show_progress
            )
            write_json(index, {"root": str(root), "files": kept})  # last: it marks the entry whole
    names = json.loads(index.read_text())["files"]
    images = FileRows.from_npy(array)
    labels = label_names = None
    if labels_from_dirs:
        parents = [str(Path(n).parent) for n in names]
        label_names = sorted(set(parents))
        lookup = {n: i for i, n in enumerate(label_names)}
        labels = np.array([lookup[p] for p in parents], np.int64)
    return ImageSet(images, [str(root / n) for n in names], labels, label_names, source=str(root))


def _prepare_folder(
    root: Path,
    files: list[Path],
    array: Path,
    size: int,
    channels: int | None,
    resample: str,
    gray_files: str,
    workers: int,
    show: bool,
) -> list[str]:
    """Decide the channels and the files kept (from the headers), write their rows; returns the
    kept files' names, relative to ``root``."""
    if channels is None or (channels == 3 and gray_files == "skip"):
        gray = [g for part in _map(_grays, _chunks(files), workers) for g in part]
        if channels is None:
            channels = 1 if all(gray) else 3
        if channels == 3 and gray_files == "skip":
            files = [p for p, g in zip(files, gray, strict=True) if not g]
            if not files:
                raise UserError(f"{root}: every image is gray (skipped)")
    shape = (len(files), channels, size, size)
    tasks = [(chunk, size, channels, resample) for chunk in _chunks(files)]
    write_atomic(array, lambda tmp: _write_rows(tmp, shape, tasks, workers, root, show))
    return [str(p.relative_to(root)) for p in files]


def _write_rows(tmp: Path, shape: tuple, tasks: list, workers: int, root: Path, show: bool) -> None:
    """An ``.npy`` header for ``shape``, then the rows as the workers finish them, in order."""
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    with (
        open(tmp, "wb") as f,
        tqdm(
            total=shape[0],
            unit="image",
            leave=False,
            disable=not show,
            desc=f"preparing {root.name} once",
        ) as bar,
    ):
        np.lib.format.write_array_header_1_0(f, header)
        for rows, task in zip(_map(_prepare, tasks, workers), tasks, strict=True):
            f.write(rows)
            bar.update(len(task[0]))
