"""Readers for the data sources: image files and folders, numpy arrays, IDX (MNIST format)."""

from __future__ import annotations

import gzip
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from denoiserlens.data.imagenet64 import is_imagenet_npz, load_imagenet_npz
from denoiserlens.data.imageset import ImageSet
from denoiserlens.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".pgm", ".ppm", ".pnm", ".bmp", ".tif", ".tiff"}
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def to_chw(pil: Image.Image, channels: int | None) -> np.ndarray:
    """A PIL image as uint8 (C, H, W); ``channels`` 1 (luminance) or 3 (RGB), None keeps it."""
    sixteen = pil.mode.startswith("I;16")  # 16-bit PNG and PGM: always of 65535, however dark
    if channels is None:
        channels = 1 if is_gray_mode(pil.mode) else 3
    if pil.mode in ("I", "F") or sixteen:
        # 32-bit integer files are of 255 unless above it (then of 65535); float files as well,
        # except those within [0, 1], the usual range of float images, which are of 1
        a = np.asarray(pil, dtype=np.float64)
        if sixteen or a.max() > 255:
            a = a / 65535.0
        elif not (pil.mode == "F" and a.max() <= 1.0):
            a = a / 255.0
        gray = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
        pil = Image.fromarray(gray, mode="L")
    pil = pil.convert("L" if channels == 1 else "RGB")
    a = np.asarray(pil, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Decode one image file to uint8 (C, H, W); a corrupt or non-image file is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    try:
        with Image.open(path) as pil:
            pil.load()
            return to_chw(pil, channels)
    except Image.DecompressionBombError as e:  # a header claiming billions of pixels
        raise UserError(f"{path}: too large to decode safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None


def list_image_files(root: Path) -> list[Path]:
    """The image files below ``root`` (recursive, sorted, hidden files aside); other files are
    skipped with a warning. One listing for every reader of folders."""
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    skipped = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        names = ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} non-image file(s): {names}", stacklevel=3)
    files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"{root}: no images found")
    return files


def is_gray_mode(mode: str) -> bool:
    """Whether PIL's ``mode`` reads as one channel here (palettes read as colour)."""
    return mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16")


def load_folder(path: str | Path, channels: int | None = None, labels_from_dirs: bool = False):
    """Every image below ``path`` (recursive, sorted). Non-image files are skipped with a warning.

    With ``labels_from_dirs``, each image's label is its immediate parent folder.
    """
    root = Path(path)
    files = list_image_files(root)
    images = [read_image(p, channels) for p in files]
    if channels is None and len({im.shape[0] for im in images}) > 1:
        images = [
            read_image(p, 3) if im.shape[0] == 1 else im
            for p, im in zip(files, images, strict=True)
        ]
    labels = label_names = None
    if labels_from_dirs:
        label_names = sorted({str(p.parent.relative_to(root)) for p in files})
        lookup = {n: i for i, n in enumerate(label_names)}
        labels = np.array([lookup[str(p.parent.relative_to(root))] for p in files], np.int64)
    if len({im.shape for im in images}) == 1:
        images = np.stack(images)
    return ImageSet(images, [str(p) for p in files], labels, label_names, source=str(root))


def _as_nchw_uint8(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)  # NHWC -> NCHW (a view; memmaps stay lazy)
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise UserError(
            f"{where}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W) with "
            f"C in (1, 3), got shape {a.shape}"
        )
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UserError(f"{where}: float images hold NaN or infinite values")
        if float(a.min()) < 0 or float(a.max()) > 1:
            raise UserError(f"{where}: float images must lie in [0, 1]")
        return np.round(np.asarray(a) * 255).astype(np.uint8)
    raise UserError(f"{where}: unsupported dtype {a.dtype} (use uint8 or float in [0, 1])")


def load_arrays(path: str | Path) -> ImageSet:
    """``.npy`` (memory-mapped) or ``.npz`` (keys images/x and optionally labels/y, or the
    downsampled-ImageNet layout, keys data and labels: :mod:`denoiserlens.data.imagenet64`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    labels = None
    try:
        if path.suffix == ".npy":
            images = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if is_imagenet_npz(z.files):
                    return load_imagenet_npz(path)
                key = next((k for k in ("images", "x", "arr_0") if k in z.files), None)
                if key is None:
                    raise UserError(f"{path}: no 'images' (or 'x') array; has {z.files}")
                images = z[key]
                lab = next((k for k in ("labels", "y") if k in z.files), None)
                labels = None if lab is None else z[lab].astype(np.int64)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not a readable numpy file ({e})") from None
    images = _as_nchw_uint8(images, str(path))
    names = [f"{path.name}:{i}" for i in range(len(images))]
    return ImageSet(images, names, labels, source=str(path))


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format, optionally gzipped): magic 0x0000 08 ndim, big-endian dims."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: unreadable IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{path}: truncated IDX file ({body.size} of {np.prod(dims)} values)")
    return body.reshape(dims)


def load_idx(images_path: str | Path, labels_path: str | Path | None = None) -> ImageSet:
    """IDX images (N, H, W) and, if found beside them (``-labels-idx1-``), their labels."""
    images_path = Path(images_path)
    if labels_path is None:
        guess = images_path.parent / images_path.name.replace("images-idx3", "labels-idx1")
        labels_path = guess if guess != images_path and guess.exists() else None
    images = _as_nchw_uint8(read_idx(images_path), str(images_path))
    labels = None if labels_path is None else read_idx(labels_path).astype(np.int64)
    names = [f"{images_path.name}:{i}" for i in range(len(images))]
    return ImageSet(images, names, labels, source=str(images_path))


def fashion_mnist(split: str = "train", root: str | Path = FASHION_MNIST_DIR) -> ImageSet:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (28x28 gray, 10 labelled classes)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise UserError(f"fashion-mnist split must be 'train' or 'test', not {split!r}")
    path = Path(root) / f"{prefix}-images-idx3-ubyte.gz"
    if not path.exists():
        raise UserError(f"{path}: missing; install Debian's dataset-fashion-mnist package")
    ims = load_idx(path)
    ims.label_names = FASHION_MNIST_CLASSES
    ims.source = f"fashion-mnist:{split}"
    return ims
