"""A small image classifier trained here, whose penultimate features and predictions judge generated
images without any download: the Frechet distance of :mod:`denoiserlens.quality.measures` is taken in
its features (an FID with this network in place of Inception), class agreement from its predictions.

Its weights are safetensors with JSON metadata: the architecture, the classes, the image shape and
the data transforms it was trained with (so that a reference set is read the way it saw its data),
and its held-out accuracy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from denoiserlens.data import ImageSet, split_indices, to_float
from denoiserlens.errors import UserError
from denoiserlens.settings import setting

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_CLASSIFIER = ASSETS / "fmnist-classifier"
# the DataSpec fields a classifier records, so that reference images are read as its data was
READ_TRANSFORMS = ("channels", "size", "max_side", "pad_to")


@dataclass(frozen=True)
class ClassifierConfig:
    """Training of :class:`ImageClassifier`: widths of its three stages, epochs over the training
    split, AdamW with a one-cycle learning rate peaking at ``lr``, and the held-out fraction for
    its accuracy."""

    widths: tuple[int, int, int] = (32, 64, 128)
    features: int = 128
    epochs: int = setting(4, "Passes over the images.", kind="count")
    batch_size: int = setting(128, "Images per step.", kind="count")
    lr: float = setting(2e-3, "Peak (one-cycle) rate.", kind="positive")
    weight_decay: float = 1e-4
    test_fraction: float = setting(0.05, "Held out for the accuracy.", kind="float")
    seed: int = setting(0, "Seed of the split, the weights and the batches.", kind="int")

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.features < 1:
            raise ValueError("epochs, batch_size and features must be >= 1")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite positive number, got {self.lr}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")


def _stage(c_in: int, c_out: int, convs: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [
            nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return layers + [nn.MaxPool2d(2)]


class ImageClassifier(nn.Module):
    """Three conv stages (2, 2, 1 convolutions, batch norm, max pooling), global average pooling,
    a ``features``-wide ReLU layer (the penultimate features) and a linear read-out."""

    def __init__(self, channels: int, classes: int, widths=(32, 64, 128), features: int = 128):
        super().__init__()
        w1, w2, w3 = widths
        self.trunk = nn.Sequential(
            *_stage(channels, w1, 2),
            *_stage(w1, w2, 2),
            *_stage(w2, w3, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(w3, features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, features) of images (N, C, H, W) in [0, 1]."""
        return self.trunk(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class Classifier:
    """A trained classifier with what it was trained on: class names, image shape (C, H, W), the
    data transforms (``data``: pad_to, size, channels), held-out accuracy, provenance."""

    net: ImageClassifier
    class_names: list[str]
    image_shape: tuple[int, int, int]
    data: dict
    accuracy: float | None = None
    info: dict | None = None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def embed(self, images: np.ndarray | torch.Tensor, batch_size: int = 500):
        """Penultimate features and predicted classes of float images (N, C, H, W) in [0, 1]:
        (features (N, F) float64, predictions (N,) int64), as numpy arrays."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        if tuple(x.shape[1:]) != self.image_shape:
            raise UserError(
                f"the classifier was trained on {_shape(self.image_shape)} images, "
                f"not {_shape(tuple(x.shape[1:]))}; train one on such data with "
                "`denoiserlens classifier`"
            )
        self.net.eval()
        feats, preds = [], []
        for b in range(0, len(x), batch_size):
            f = self.net.features(x[b : b + batch_size].to(self.device))
            feats.append(f.double().cpu().numpy())
            preds.append(self.net.head(f).argmax(1).cpu().numpy())
        return np.concatenate(feats), np.concatenate(preds).astype(np.int64)

    def predict(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Predicted class (N,) of float images (N, C, H, W) in [0, 1]."""
        return self.embed(images)[1]


def _shape(s: tuple) -> str:
    return "x".join(str(int(v)) for v in s[1:]) + f" {'gray' if s[0] == 1 else f'{s[0]}-channel'}"


def images_as_float(images: ImageSet, index: np.ndarray | None = None) -> np.ndarray:
    """Rows ``index`` (all by default) of a fixed-size image set as float32 (N, C, H, W) in [0, 1]."""
    arr = images.as_array()
    return to_float(arr if index is None else arr[np.asarray(index, dtype=np.int64)]).numpy()


def train_classifier(
    images: ImageSet,
    cfg: ClassifierConfig = ClassifierConfig(),
    data: dict | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Classifier:
    """Train :class:`ImageClassifier` on a labelled, fixed-size image set (seeded: the same seed
    gives the same weights on one machine). ``data`` records the transforms that made ``images``
    (e.g. ``{"pad_to": 32}``), so that reference sets can be read the same way later."""
    if images.labels is None:
        raise UserError(
            f"{images.source}: the classifier needs labels (IDX with its labels file, "
            ".npz with a labels key, or class folders with --labels-from-dirs)"
        )
    arr = images.as_array()
    labels = np.asarray(images.labels, dtype=np.int64)
    classes = int(labels.max()) + 1
    if classes < 2:
        raise UserError(f"{images.source}: one class only; a classifier needs two or more")
    train_idx, test_idx = split_indices(len(arr), cfg.test_fraction, cfg.seed)
    if len(train_idx) < cfg.batch_size:
        raise UserError(f"{images.source}: {len(train_idx)} training images, fewer than one batch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = ImageClassifier(arr.shape[1], classes, cfg.widths, cfg.features).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_idx) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all = torch.from_numpy(np.ascontiguousarray(arr))  # uint8; floats per batch
    y_all = torch.from_numpy(labels)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for s in range(steps_per_epoch):
            b = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = x_all[b].to(device).float().div_(255)
            loss = nn.functional.cross_entropy(net(x), y_all[b].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        if progress:
            progress(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {total / steps_per_epoch:.4f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    out = Classifier(
        net.eval(),
        _class_names(images, classes),
        tuple(int(v) for v in arr.shape[1:]),
        dict(data or {}),
        info={
            "config": asdict(cfg),
            "source": images.source,
            "fingerprint": images.fingerprint,
            "train_count": len(train_idx),
            "test_count": len(test_idx),
        },
    )
    if len(test_idx):
        pred = out.predict(images_as_float(images, test_idx))
        out.accuracy = float(np.mean(pred == labels[test_idx]))
    return out


def _class_names(images: ImageSet, classes: int) -> list[str]:
    names = images.label_names
    return (
        list(names)
        if names is not None and len(names) == classes
        else [str(k) for k in range(classes)]
    )


def train_and_save_classifier(
    spec,
    cfg: ClassifierConfig,
    out_dir: str | Path,
    half: bool = False,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Classifier:
    """The ``classifier`` stage: train on the labelled images of ``spec`` (a ``DataSpec``,
    whose transforms the classifier records to read its references the same way), then save
    into a new folder ``out_dir``."""
    from denoiserlens.data import open_data

    if Path(out_dir, "weights.safetensors").exists():
        raise UserError(f"{out_dir} already holds a classifier; choose another --out")
    images = open_data(spec)
    transforms = {k: getattr(spec, k) for k in READ_TRANSFORMS}
    transforms = {k: v for k, v in transforms.items() if v is not None}
    clf = train_classifier(images, cfg, transforms, device, progress=progress)
    save_classifier(clf, out_dir, half=half)
    return clf


def save_classifier(clf: Classifier, path: str | Path, half: bool = False) -> None:
    """Write ``weights.safetensors`` (float16 if ``half``, read back as float32) and its metadata
    into the folder ``path``, atomically."""
    from safetensors.torch import save_file

    from denoiserlens.fileio import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {
        "class_names": clf.class_names,
        "image_shape": list(clf.image_shape),
        "data": clf.data,
        "accuracy": clf.accuracy,
        "info": clf.info,
        "widths": _widths(clf.net),
        "features": clf.net.head.in_features,
    }
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "weights.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"classifier": json.dumps(meta)})


def _widths(net: ImageClassifier) -> list[int]:
    convs = [m for m in net.trunk if isinstance(m, nn.Conv2d)]
    return [convs[1].out_channels, convs[3].out_channels, convs[4].out_channels]


def load_classifier(path: str | Path | None = None, device: str = "cpu") -> Classifier:
    """Read a classifier saved by :func:`save_classifier` (a folder or its weights file); ``None``
    is the bundled Fashion-MNIST classifier."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path) if path is not None else BUNDLED_CLASSIFIER
    file = p / "weights.safetensors" if p.is_dir() else p
    if not file.is_file():
        raise UserError(f"{p}: no classifier here (train one with `denoiserlens classifier`)")
    try:
        with safe_open(str(file), "pt") as f:
            meta = json.loads((f.metadata() or {})["classifier"])
        state = load_file(str(file))
    except (KeyError, ValueError, OSError) as e:  # safetensors raises its own ValueError kinds
        raise UserError(f"{file}: not a denoiserlens classifier ({e})") from None
    shape = tuple(int(v) for v in meta["image_shape"])
    net = ImageClassifier(
        shape[0], len(meta["class_names"]), tuple(meta["widths"]), int(meta["features"])
    )
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return Classifier(
        net.to(device).eval(),
        list(meta["class_names"]),
        shape,
        meta["data"],  # type: ignore[arg-type]
        meta.get("accuracy"),
        meta.get("info"),
    )


def open_reference(spec: str, classifier: Classifier | None = None) -> np.ndarray:
    """Held-out images named by a data specification, as float32 (N, C, H, W) in [0, 1], read with
    the transforms the classifier was trained with (its ``data``: e.g. Fashion-MNIST padded to
    32x32), so that they look as its training images did."""
    from denoiserlens.data import DataSpec, open_data

    data = classifier.data if classifier else {}
    transforms = {k: v for k, v in data.items() if k in READ_TRANSFORMS}
    return images_as_float(open_data(DataSpec((spec,), **transforms)))  # one size, or UserError


def fitting_classifier(
    path: str | Path | None, shape: tuple[int, ...], device: str = "cpu"
) -> Classifier | None:
    """The classifier at ``path`` (it must take images of ``shape`` (C, H, W)), or, with no path,
    the bundled Fashion-MNIST one when it takes such images (else None: no classifier measures)."""
    if path is not None:
        clf = load_classifier(path, device)
        if clf.image_shape != tuple(shape):
            raise UserError(
                f"{path}: the classifier takes {_shape(clf.image_shape)} images, "
                f"these are {_shape(tuple(shape))}"
            )
        return clf
    if not (BUNDLED_CLASSIFIER / "weights.safetensors").is_file():
        return None
    clf = load_classifier(None, device)
    return clf if clf.image_shape == tuple(shape) else None
