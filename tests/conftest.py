"""Shared fixtures: paths to ../shared (tests that need it skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DENOISERLENS_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
BFCNN_GRAY = DATA / "peers/bf_cnn/BSD400_gray/noise_range_0to100/model.pt"
SET12 = DATA / "test_images/grayscale/Set12"
SET68 = DATA / "test_images/grayscale/Set68"
SET5 = DATA / "test_images/color/Set5"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def need(path: Path) -> Path:
    """Skip the test when a file of ../shared is not there."""
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared not beside the checkout)")
    return path


def assert_user_error(proc, pattern: str) -> None:
    """A command that failed on bad input: exit status 2 and one error line naming the problem
    (warning lines aside), no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [
        ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("denoiserlens: warn")
    ]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert pattern in lines[0], lines[0]
