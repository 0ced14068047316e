"""Atomic file replacement and cross-process locks, shared by every store on local disk."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag_app.errors import RagAppError

#: How long a writer waits for another process's lock before giving up with a clear error.
#: Locks are held only while a store's files are merged and written (seconds, even at 1M
#: chunks), and the OS releases them when a process dies, so a long wait means a stuck writer.
LOCK_TIMEOUT_SECONDS = 600.0


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever `path` is replaced (inode, mtime, size); None when it does not exist.

    Comparing it is how a reader notices another writer's save for the price of one `stat`.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive cross-process lock `path` (filelock: OS-level, freed on process death).

    Not reentrant (do not nest on one path); two holders in one process (two `RagApp`s)
    exclude each other like two processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        raise RagAppError(
            f"Another process has held the lock {path} for over {LOCK_TIMEOUT_SECONDS:.0f} s. "
            "Wait for the other ingest to finish, or stop it, then re-run."
        ) from None
    try:
        yield
    finally:
        lock.release()
