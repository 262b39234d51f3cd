"""One entry point from a data specification (a path or a named source) to an :class:`ImageSet`.

Specifications: a folder; an image file; ``.npy``/``.npz``; an IDX file (``*-idx3-ubyte[.gz]``);
``fashion-mnist[:train|test]``; ``disks:N[:SIZE[:SEED]]``; ``c-alpha:N[:SIZE[:ALPHA[:SEED]]]``;
``skimage:NAME[,NAME...]`` (images bundled with scikit-image, e.g. ``skimage:camera,brick``);
``@LIST``, a text file naming sources, one per line (relative paths from the list's folder); a
glob pattern (``'Imagenet64_train/*.npz'``), its matches in natural order (batch_2 before
batch_10). ``.npz`` files of the downsampled-ImageNet layout are read lazily
(:mod:`denoiserlens.data.imagenet64`).
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from denoiserlens.data.imageset import FileRows, ImageSet, StackedRows, is_array
from denoiserlens.data.prepared import prepared_folder
from denoiserlens.data.sources import (
    IMAGE_SUFFIXES,
    fashion_mnist,
    load_arrays,
    load_folder,
    load_idx,
    read_image,
)
from denoiserlens.data.synthetic import c_alpha, disks
from denoiserlens.data.transforms import (
    center_crop_resize,
    convert_channels,
    extract_patches,
    pad_center,
)
from denoiserlens.errors import UserError
from denoiserlens.settings import setting


@dataclass(frozen=True)
class DataSpec:
    """What to read and how to shape it; saved in every run's config.json."""

    sources: tuple[str, ...] = setting(
        help="Folder, image, .npy/.npz, IDX file, fashion-mnist[:test], disks:N:SIZE, "
        "c-alpha:N:SIZE:ALPHA, or @LIST (a file naming sources, one per line). Repeat to "
        "concatenate.",
        name="data",
    )
    channels: int | None = setting(  # None keeps the source's
        None, "Convert to gray (1) or colour (3).", choices=(1, 3)
    )
    size: int | None = setting(None, "Centre-crop to a square and resize to SIZE.", kind="int")
    max_side: int | None = setting(  # before patches
        None, "Shrink images so the longer side is at most this.", kind="int"
    )
    patch_size: int | None = setting(None, "Cut patches of this size.", kind="int")
    patch_mode: str = setting(
        "grid",
        "grid: non-overlapping patches; random: seeded random positions.",
        choices=("grid", "random"),
    )
    patches_per_image: int | None = setting(
        None, "Patches cut from each image with --patch-mode random.", kind="int"
    )
    labels_from_dirs: bool = setting(False, "Label images by their folder.")
    seed: int = setting(0, "Seed of random patches.", name="data-seed")
    pad_to: int | None = setting(  # after resize and patches
        None, "Centre images on a black SIZE x SIZE canvas (Fashion-MNIST: 32).", kind="int"
    )
    limit: int | None = setting(None, "Keep only the first N images (after patches).", kind="count")
    resample: str = setting(
        "lanczos", "Of --size (bicubic: the authors' 80x80 sets).", choices=("lanczos", "bicubic")
    )
    gray_files: str = setting(
        "convert", "Gray files of a folder read as colour.", choices=("convert", "skip")
    )
    workers: int = setting(  # not recorded: it changes no pixel
        0, "Processes decoding a folder with --size (prepared once, cached).", name="decode-workers"
    )

    def to_dict(self) -> dict:
        """What config.json and a store's meta.json record (everything that shapes the pixels)."""
        return {k: v for k, v in asdict(self).items() if k != "workers"}


def recorded_spec(record: dict) -> dict:
    """A recorded specification (with whatever else was recorded beside it) completed with the
    defaults of settings added since it was written, as JSON holds them: records from before a
    setting existed compare equal to today's."""
    return json.loads(json.dumps({**DataSpec(sources=()).to_dict(), **record}))


def read_source(spec: str, channels: int | None = None, labels_from_dirs: bool = False) -> ImageSet:
    """Read one source named by ``spec`` (see the module docstring)."""
    name, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    try:
        if name == "fashion-mnist" and not Path(spec).exists():
            return fashion_mnist(args[0] if args else "train")
        if name == "disks" and args:
            size, seed = (
                (int(args[1]) if len(args) > 1 else 32),
                int(args[2]) if len(args) > 2 else 0,
            )
            return disks(int(args[0]), size, seed)
        if name == "c-alpha" and args:
            size = int(args[1]) if len(args) > 1 else 32
            alpha = float(args[2]) if len(args) > 2 else 1.0
            return c_alpha(int(args[0]), size, alpha, seed=int(args[3]) if len(args) > 3 else 0)
    except ValueError as e:
        raise UserError(f"bad data specification {spec!r}: {e}") from None
    if name == "skimage" and args:
        return skimage_images(rest.split(","), channels)
    if spec.startswith("@"):
        lst = Path(spec[1:])
        if not lst.is_file():
            raise UserError(f"{lst}: no such list file")
        lines = [ln.strip() for ln in lst.read_text().splitlines()]
        entries = [str(lst.parent / ln) for ln in lines if ln and not ln.startswith("#")]
        if not entries:
            raise UserError(f"{lst}: the list names no sources")
        return concat([read_source(e, channels, labels_from_dirs) for e in entries])
    if any(c in spec for c in "*?[") and not Path(spec).exists():
        matches = sorted(glob.glob(spec), key=_natural_key)
        if not matches:
            raise UserError(f"{spec}: no file or folder matches")
        return concat([read_source(m, channels, labels_from_dirs) for m in matches])
    path = Path(spec)
    if path.is_dir():
        return load_folder(path, channels, labels_from_dirs)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.suffix in (".npy", ".npz"):
        return load_arrays(path)
    if "idx" in path.name and "ubyte" in path.name:
        return load_idx(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        im = read_image(path, channels)
        return ImageSet(im[None], [str(path)], source=str(path))
    raise UserError(f"{path}: not an image, folder, array or IDX file")


def _natural_key(name: str) -> list:
    """Sort key that puts ``batch_2`` before ``batch_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


SKIMAGE_DEMO = (
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
)


def skimage_images(names: list[str], channels: int | None = None) -> ImageSet:
    """Images that ship inside scikit-image (no download), as uint8 (C, H, W)."""
    import skimage.data

    images = []
    for n in names:
        fn = getattr(skimage.data, n, None)
        if fn is None or n.startswith("_") or not callable(fn):
            raise UserError(f"skimage has no bundled image {n!r}; try {', '.join(SKIMAGE_DEMO)}")
        try:
            a = np.asarray(fn())
        except Exception as e:  # images that need a download fail here: say so
            raise UserError(f"skimage image {n!r} is not available offline ({e})") from None
        a = a.astype(np.uint8) * (255 if a.dtype == bool else 1)
        im = a[None] if a.ndim == 2 else np.ascontiguousarray(a[..., :3].transpose(2, 0, 1))
        images.append(im if channels is None else convert_channels(im, channels))
    if channels is None and len({im.shape[0] for im in images}) > 1:
        images = [convert_channels(im, 3) for im in images]
    same = len({im.shape for im in images}) == 1
    return ImageSet(
        np.stack(images) if same else images,
        [f"skimage:{n}" for n in names],
        source="skimage:" + ",".join(names),
    )


def concat(sets: list[ImageSet]) -> ImageSet:
    """Several image sets as one, in order (labels kept only if every set has them). Sets of one
    image size stay arrays: sets on disk are stacked without reading them (:class:`StackedRows`)."""
    if len(sets) == 1:
        return sets[0]
    if len({s.channels for s in sets}) > 1:
        raise UserError("the data sources differ in channels; set --channels")
    labels = None
    if all(s.labels is not None for s in sets):
        labels = np.concatenate([s.labels for s in sets])  # type: ignore[misc]
    names = [n for s in sets for n in s.names]
    source = " + ".join(s.source for s in sets)
    if all(is_array(s.images) for s in sets) and len({s.images.shape[1:] for s in sets}) == 1:
        parts = [p for s in sets for p in getattr(s.images, "parts", [s.images])]
        lazy = any(isinstance(p, (np.memmap, FileRows)) for p in parts)
        images = StackedRows(parts) if lazy else np.concatenate(parts)
        return ImageSet(images, names, labels, source=source)
    listed = [
        im for s in sets for im in (s.images if isinstance(s.images, list) else list(s.images))
    ]
    out = ImageSet(listed, names, labels, source=source)
    if out.fixed_size is not None:
        out.images = np.stack(listed)
    return out


def _shrink(im: np.ndarray, max_side: int) -> np.ndarray:
    c, h, w = im.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return im
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack(
        [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.LANCZOS)) for p in im]
    )


def open_data(spec: DataSpec) -> ImageSet:
    """Read every source of ``spec``, convert channels, resize or cut patches, and concatenate.

    A folder with ``size`` (and no ``max_side``) is decoded, cropped and resized once into a cache
    and read from there (:func:`~denoiserlens.data.prepared.prepared_folder`)."""
    if spec.size and not spec.max_side and any(Path(s).is_dir() for s in spec.sources):
        sets = [
            _prepared(s, spec)
            if Path(s).is_dir()
            else read_source(s, spec.channels, spec.labels_from_dirs)
            for s in spec.sources
        ]
        spec = replace(spec, size=None) if all(Path(s).is_dir() for s in spec.sources) else spec
    else:
        sets = [read_source(s, spec.channels, spec.labels_from_dirs) for s in spec.sources]
    out = concat(sets) if len(sets) > 1 or spec.channels is not None else sets[0]
    if (
        spec.channels is not None
        and out.channels != spec.channels
        or (spec.channels is not None and isinstance(out.images, list))
    ):
        out = _map(out, lambda im: convert_channels(im, spec.channels))
    if spec.max_side:
        out = _map(out, lambda im: _shrink(im, spec.max_side))
    if spec.size:
        out = _map(out, lambda im: center_crop_resize(im, spec.size, spec.resample))
    if spec.patch_size:
        try:
            out = extract_patches(
                out, spec.patch_size, spec.patch_mode, spec.patches_per_image, spec.seed
            )
        except ValueError as e:
            raise UserError(str(e)) from None
    if spec.pad_to:
        try:
            if isinstance(out.images, np.ndarray):  # one vectorized pad (e.g. 60k Fashion-MNIST)
                out = ImageSet(
                    pad_center(out.images, spec.pad_to),
                    out.names,
                    out.labels,
                    out.label_names,
                    source=out.source,
                )
            else:
                out = _map(out, lambda im: pad_center(im, spec.pad_to))
        except ValueError as e:
            raise UserError(f"{out.source}: {e}") from None
    if spec.limit is not None:
        if spec.limit < 1:
            raise UserError(f"limit must be >= 1, got {spec.limit}")
        out = out.subset(np.arange(min(spec.limit, len(out))))
    if len(out) == 0:
        raise UserError(f"{out.source or ', '.join(spec.sources)}: no images")
    return out


def _prepared(folder: str, spec: DataSpec) -> ImageSet:
    """A folder at ``spec.size``, prepared once."""
    fields = (spec.channels, spec.resample, spec.gray_files, spec.labels_from_dirs, spec.workers)
    return prepared_folder(folder, spec.size, *fields)


def _map(ims: ImageSet, fn) -> ImageSet:
    images = [fn(ims[i]) for i in range(len(ims))]
    same = len({im.shape for im in images}) == 1
    return ImageSet(
        np.stack(images) if same else images,
        ims.names,
        ims.labels,
        ims.label_names,
        source=ims.source,
    )


def split_indices(n: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic random split of range(n): (train indices, test indices), each sorted."""
    if not 0 <= test_fraction < 1:
        raise UserError(f"test fraction must be in [0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
