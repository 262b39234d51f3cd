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

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory):
    """Caches the data readers write (decompressed ImageNet64 members, prepared folders) go to a
    folder of the test session, never the user's ~/.cache."""
    os.environ["DENOISERLENS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def need(path: Path) -> Path:
    """Skip the test when a file of ../shared is not there."""
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared not beside the checkout)")
    return path


def assert_user_error(proc, pattern: str) -> None:
    """A command that failed on bad input: exit status 2 and one error line naming the problem
    (warning lines aside), no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in screen_lines(proc.stderr) if not ln.startswith("denoiserlens: warn")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("denoiserlens: error: "), lines[0]
    assert pattern in lines[0], lines[0]


def screen_lines(text: str) -> list[str]:
    """The lines a terminal shows of ``text``: of each line, what follows its last carriage return
    (a progress bar redraws itself that way), blank lines dropped."""
    return [seg for line in text.split("\n") if (seg := line.split("\r")[-1].strip())]


def run_cli(argv, check: bool = False, **_subprocess_kwargs):
    """Run ``denoiserlens ARGS`` in this process (no interpreter and torch start-up per call, the
    suite's main cost) with subprocess.run's interface: an object with returncode, stdout and
    stderr. ``argv`` may start with the ``denoiserlens`` executable; an exception that escapes the
    command is a traceback on stderr with status 1, as in a real process."""
    import traceback
    from types import SimpleNamespace

    from click.testing import CliRunner

    from denoiserlens.cli import main

    args = [str(a) for a in argv]
    if args and args[0].endswith("denoiserlens"):
        args = args[1:]
    r = CliRunner().invoke(main, args)
    stderr, code = r.stderr, r.exit_code
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(*r.exc_info)
        )
        code = 1
    if check and code != 0:
        raise AssertionError(f"denoiserlens {' '.join(args)} exited {code}: {stderr}")
    return SimpleNamespace(returncode=code, stdout=r.stdout, stderr=stderr)
