"""Atomic file writes (everything is written to a temporary file in the target folder, then
renamed), a full disk as one clear error, and folder locks for the jobs that write a folder over a
long time (``train`` into its run directory, ``represent`` into its store)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_is_user_error(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            # mkstemp creates 0600, and some writers (safetensors) recreate the file: set the
            # usual permissions on what was written
            os.chmod(tmp_path, 0o666 & ~_UMASK)
            _fsync(tmp_path)  # the data reaches the disk before the name points at it
            os.replace(tmp_path, path)
            _fsync(path.parent)  # and the rename itself survives a power cut
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


TMP_SUFFIX = ".tmp"
LOCK = ".lock"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in _DISK_FULL
    # writers in Rust (safetensors) report the OS error in their message only
    return any(s in str(e) for s in ("StorageFull", "No space left", "os error 28"))


@contextlib.contextmanager
def disk_full_is_user_error(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk (or quota, or file size limit) while writing ``path`` into a UserError."""
    from denoiserlens.errors import UserError

    try:
        yield
    except Exception as e:
        if _is_disk_full(e):
            raise UserError(
                f"{path}: no space left on the device; earlier files are intact"
            ) from None
        raise


def reserve_space(path: str | os.PathLike) -> None:
    """Allocate the blocks of the file ``path`` now (its size as it stands), so that writing into
    a sparse memory map of it later cannot end in SIGBUS on a full disk; a UserError if the space
    is not there."""
    with disk_full_is_user_error(path):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size:
                try:
                    os.posix_fallocate(fd, 0, size)
                except OSError as e:
                    if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # filesystems without it
                        raise
        finally:
            os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``folder`` (call it only while
    holding the folder's lock: a living writer's temporary file must not go)."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _try_lock(folder: Path) -> tuple[int | None, bool]:
    """Create ``folder`` if needed and flock its lock file: (fd or None if held elsewhere, created)."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None, created
    return fd, created


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, holder: bool = True, missing: str | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (an flock on ``folder/.lock``) for a job that writes
    into it, refusing with one line while another process holds it. The kernel releases the lock of
    a killed process, so a lock never goes stale; the temporary files a killed writer left are
    deleted once the lock is held. A folder this call created is removed again if the job leaves
    nothing in it (a refused job writes nothing). With ``missing`` (an error message), a folder
    that does not exist is refused with it instead of created.

    Under torchrun pass ``holder=rank == 0``: rank 0 takes the lock, every rank learns whether it
    got it (all raise the same error, none hangs).
    """
    import torch.distributed as dist

    from denoiserlens.errors import UserError

    folder = Path(folder)
    fd, created, refusal = None, False, None
    if holder and missing is not None and not folder.is_dir():
        refusal = missing
    elif holder:
        try:
            fd, created = _try_lock(folder)
        except OSError as e:  # said to every rank, as a refusal is (none is left waiting)
            fd, refusal = None, f"{folder}: cannot hold a lock there ({e.strerror or e})"
        if fd is None and refusal is None:
            refusal = (
                f"{folder}: in use by another process (it holds {folder / LOCK}); wait "
                "for it to finish or use another folder"
            )
    if dist.is_available() and dist.is_initialized():
        said = [refusal]
        dist.broadcast_object_list(said, src=0)
        refusal = said[0]
    if refusal is not None:
        raise UserError(refusal)
    try:
        if fd is not None:
            remove_stale_temporaries(folder)
        yield
    finally:
        if fd is not None:
            if created and [p.name for p in folder.iterdir()] == [LOCK]:
                (folder / LOCK).unlink()
                folder.rmdir()
            os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`; a corrupt one is a UserError naming it."""
    from denoiserlens.errors import UserError

    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
