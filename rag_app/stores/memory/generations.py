"""The memory store's on-disk generations: the manifest, durable writes, stale-file cleanup.

A generation is a set of files written under temporary names, fsynced and renamed; the
manifest naming the current one is replaced last, so a crash leaves the previous generation
loadable (see rag_app/stores/memory/vector_store.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"


def is_local_fs(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", ())
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, write: Callable[[Any], None]) -> None:
    """Write via ``write(fileobj)`` to a temp name in the same folder, fsync, rename."""
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def stamp_of(manifest: dict[str, Any] | None) -> str | None:
    """Identifies a generation; manifests older than the stamp are told apart by number."""
    if manifest is None:
        return None
    return manifest.get("stamp") or f"generation-{manifest['generation']}"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def remove_stale_files(folder: Path, keep: set[str]) -> None:
    """Delete other generations' files and leftover temp files after a manifest switch."""
    prefixes = ("vectors-", "records-", "hnsw-", "hnsw_labels-", TEMP_PREFIX)
    for path in folder.iterdir():
        if path.name.startswith(prefixes) and path.name not in keep:
            path.unlink(missing_ok=True)
