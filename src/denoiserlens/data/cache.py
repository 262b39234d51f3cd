"""The data readers' cache: decompressed ImageNet64 members and prepared folders, kept in
``$DENOISERLENS_CACHE``, else ``$XDG_CACHE_HOME/denoiserlens``, else ``~/.cache/denoiserlens``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from denoiserlens.errors import UserError
from denoiserlens.fileio import TMP_SUFFIX


def cache_dir() -> Path:
    """Where the cache lives (see the module docstring)."""
    if os.environ.get("DENOISERLENS_CACHE"):
        return Path(os.environ["DENOISERLENS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "denoiserlens"


@contextlib.contextmanager
def cache_entry(name: str) -> Iterator[Path]:
    """The cache path ``name``, held under an exclusive lock while the caller makes it if it is
    missing: one process prepares an entry (one rank under torchrun, one of two jobs), the others
    wait and then read it. Temporaries that a killed preparation of it left are removed first."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise UserError(
            f"cache folder {folder} is not writable ({e}); set DENOISERLENS_CACHE"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for stale in folder.glob(f".{name}.*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        yield folder / name
    finally:
        os.close(fd)
