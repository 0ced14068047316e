"""Saving and loading the whole server state as one JSON file, atomically.

The file is written next to its destination and moved into place with ``os.replace``, so a
crash mid-write leaves the previous snapshot intact rather than a truncated one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag_app.util.files import write_atomically


def save_snapshot(path: Path, data: dict[str, Any]) -> None:
    """Write *data* to *path* atomically."""
    write_atomically(path, json.dumps(data, separators=(",", ":")))


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot saved at *path*, or None when there is none yet."""
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as stream:
        data = json.load(stream)
    if data.get("version") != 1:
        raise ValueError(f"{path} is not a pinecone-local snapshot (version 1)")
    return data
