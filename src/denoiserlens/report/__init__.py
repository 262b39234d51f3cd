"""The report: every analysis of denoiserlens on one model and data set, as static web pages."""

from pathlib import Path

from denoiserlens.data import DataSpec
from denoiserlens.errors import UserError
from denoiserlens.report.config import SECTIONS, ReportConfig, load_config
from denoiserlens.report.run import run_report

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def bundled_defaults() -> tuple[Path, DataSpec]:
    """The bundled model and evaluation images: what ``denoiserlens report`` uses by default."""
    model, data = ASSETS / "fmnist-small", ASSETS / "fmnist-test-2000.npz"
    if not (model / "weights.safetensors").exists() or not data.exists():
        raise UserError(f"the bundled model or images are missing from {ASSETS}")
    return model, DataSpec((str(data),), pad_to=32)


__all__ = ["SECTIONS", "ReportConfig", "bundled_defaults", "load_config", "run_report"]
