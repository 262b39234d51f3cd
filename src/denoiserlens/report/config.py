"""The report's settings: documented defaults, overridable by a TOML file and by flags.

A TOML file holds any of the fields below at its top level, e.g.

    images = 1000          # images of the data set used by the representation analyses
    sigma = 25             # noise level of phi, in [0, 255] units
    clusters = 20
    skip = ["distance"]    # sections not to compute
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from denoiserlens.errors import UserError

SECTIONS = (
    "denoising",
    "representation",
    "neighbours",
    "clusters",
    "probe",
    "samples",
    "reconstructions",
    "distance",
    "jacobian",
    "explorer",
)

# The settings each section reads: its results are reused while these (and the model and data)
# are unchanged. Sections that read the representation store depend on its settings too.
STORE_SETTINGS = ("stability_sigmas", "sigma", "reference", "n_noise", "bf16", "seed")
DISTANCE_SETTINGS = (
    "distance_images",
    "distance_samples",
    "distance_steps",
    "distance_sigmas",
    "distance_max_iter",
)
SECTION_SETTINGS = {
    "denoising": ("eval_images", "eval_sigmas", "bm3d_images", "seed"),
    "representation": (*STORE_SETTINGS, "queries"),
    "neighbours": (*STORE_SETTINGS, "queries"),
    "clusters": (*STORE_SETTINGS, "clusters"),
    "probe": STORE_SETTINGS,
    "samples": ("samples", "seed"),
    "reconstructions": ("targets", "reconstruction_steps", "n_noise", "seed"),
    "distance": (*DISTANCE_SETTINGS, "sigma", "seed"),
    "jacobian": ("jacobian_k", "sigma", "seed"),
    "explorer": (*STORE_SETTINGS, "explorer_images", "clusters"),
}


@dataclass(frozen=True)
class ReportConfig:
    """What the report computes; noise levels in [0, 255] units as on the command line."""

    images: int = 500  # rows of the data used from the representation on
    eval_images: int = 32  # images for the denoising table
    eval_sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    bm3d_images: int = 8  # BM3D is slow: the first images only (0: no BM3D)
    sigma: float = 25.0  # phi for selectivity, neighbours, clusters, explorer
    reference: float = 127.5  # sigma_1 of Figure 2 (the paper: 0.5 of the range)
    stability_sigmas: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0, 127.5, 255.0)
    n_noise: int = 10  # the authors used 20; 10 keeps `make demo` within minutes on 2 cores
    clusters: int = 20
    queries: tuple[int, ...] = (0, 1, 2, 3)
    samples: int = 16
    targets: tuple[int, ...] = (0, 1, 2)
    reconstruction_steps: int = 40
    distance_images: int = 4
    distance_samples: int = 1  # draws of each p(x | phi) (Algorithm 1) averaged in Eq. 4
    distance_steps: int = 41  # Algorithm 1's levels for those draws, log-spaced 255 to 2.55
    distance_sigmas: int = 6  # Eq. 4's grid, log-spaced from 0.255 to 118 (DistanceConfig)
    distance_max_iter: int = 10  # Algorithm 2's steps per guided denoising
    jacobian_k: int = 16
    explorer_images: int = 400
    bf16: bool | None = None  # None: where it is native (hardware.native_bf16)
    seed: int = 0
    skip: tuple[str, ...] = field(default_factory=tuple)

    def sample_config(self, size: int):
        """The samples section's experiment (:class:`~denoiserlens.stages.SampleConfig`): the
        quick ks2021 preset, ``samples`` images of ``size``, one batch."""
        from denoiserlens.stages import SampleConfig

        return SampleConfig(
            n=self.samples, size=size, preset="ks2021", batch_size=self.samples, seed=self.seed
        )

    def reconstruct_config(self, rows: tuple[int, ...]):
        """The reconstructions section's experiment (:class:`~denoiserlens.stages.
        ReconstructConfig`): 8 samples of each target row, ``reconstruction_steps`` levels;
        the command's other defaults."""
        from denoiserlens.stages import ReconstructConfig

        return ReconstructConfig(
            rows=rows, steps=self.reconstruction_steps, n_noise=self.n_noise, seed=self.seed
        )

    def distance_config(self, n: int):
        """The distance section's experiment (:class:`~denoiserlens.stages.DistanceConfig`):
        the first ``n`` rows, phi at ``sigma``; the command's other defaults."""
        from denoiserlens.sampling.reconstruct import GuidanceConfig
        from denoiserlens.stages import DistanceConfig

        return DistanceConfig(
            rows=tuple(range(n)),
            n_samples=self.distance_samples,
            steps=self.distance_steps - 1,
            grid=self.distance_sigmas,
            phi_sigma=self.sigma,
            guidance=GuidanceConfig(max_iter=self.distance_max_iter),
            seed=self.seed,
        )

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _typed(f.name, getattr(self, f.name), f.type))
        if self.bf16 is None:
            from denoiserlens.hardware import native_bf16

            object.__setattr__(self, "bf16", native_bf16())
        unknown = [s for s in self.skip if s not in SECTIONS]
        if unknown:
            raise UserError(f"unknown report section(s) {unknown}; they are {list(SECTIONS)}")
        for name in (
            "images",
            "eval_images",
            "n_noise",
            "clusters",
            "samples",
            "reconstruction_steps",
            "jacobian_k",
            "explorer_images",
            "distance_samples",
            "distance_steps",
            "distance_max_iter",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"report setting {name} must be >= 1")
        if self.bm3d_images < 0:
            raise UserError("report setting bm3d_images must be >= 0 (0: no BM3D)")
        for name in ("eval_sigmas", "stability_sigmas", "queries", "targets"):
            if not getattr(self, name):
                raise UserError(f"report setting {name} must list at least one value")
        for name in ("eval_sigmas", "stability_sigmas"):
            if not all(0 < v <= 255 for v in getattr(self, name)):
                raise UserError(f"report setting {name} must hold noise levels in (0, 255]")
        for name in ("queries", "targets"):
            if min(getattr(self, name)) < 0:
                raise UserError(f"report setting {name} must hold image rows >= 0")
        if self.clusters < 2:
            raise UserError("report setting clusters must be >= 2")
        if self.distance_images < 3:
            raise UserError("report setting distance_images must be >= 3 (2 pairs for Eq. 3)")
        if self.distance_sigmas < 3:
            raise UserError("report setting distance_sigmas must be >= 3 (the integral's grid)")
        for name in ("sigma", "reference"):
            if not 0 < getattr(self, name) <= 255:
                raise UserError(f"report setting {name} must be in (0, 255]")

    def check_rows(self, n_images: int) -> None:
        """Refuse query and target rows beyond the ``n_images`` the report reads, before anything
        is written."""
        for name in ("queries", "targets"):
            beyond = [r for r in getattr(self, name) if r >= n_images]
            if beyond:
                raise UserError(
                    f"report setting {name}: rows {beyond} are beyond the {n_images} images read "
                    "(rows count from 0)"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def settings_of(self, section: str) -> dict[str, Any]:
        """The settings ``section`` reads (``SECTION_SETTINGS``), by name."""
        return {name: getattr(self, name) for name in SECTION_SETTINGS[section]}

    @property
    def representation_sigmas(self) -> tuple[float, ...]:
        """The store's noise levels: the stability grid plus sigma and the reference."""
        return tuple(sorted(set(self.stability_sigmas) | {self.sigma, self.reference}))


def _typed(name: str, value: Any, kind: str) -> Any:
    """``value`` as the field type ``kind`` (as written in ReportConfig), or a one-line error:
    TOML's booleans are not numbers, integers are floats where a float is asked, lists are
    tuples."""
    if kind.startswith("tuple["):
        item = kind[len("tuple[") : -len(", ...]")]
        if not isinstance(value, list | tuple):
            raise UserError(f"report setting {name} must be a list of {item}s, got {value!r}")
        return tuple(_typed(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if kind == "bool | None":
        ok = value is None or isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field of a type this function does not know
        raise TypeError(f"report setting {name}: unsupported type {kind}")
    if not ok:
        want = {
            "bool | None": "true or false",
            "bool": "true or false",
            "float": "a finite number",
            "int": "an integer",
            "str": "a string",
        }[kind]
        raise UserError(f"report setting {name} must be {want}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, **overrides: Any) -> ReportConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (those that are not None)."""
    values: dict[str, Any] = {}
    if path is not None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            values = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise UserError(f"{path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{path}: not valid TOML ({e})") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(ReportConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown report setting(s) {unknown}; known: {sorted(known)}")
    try:
        return ReportConfig(**values)
    except TypeError as e:
        raise UserError(f"invalid report settings: {e}") from None
