"""Where the optional data sets are: ../shared (RAG_SHARED_DIR) and SIFT1M (SIFT1M_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

SIFT_FILES = ("sift_base.fvecs", "sift_query.fvecs", "sift_groundtruth.ivecs")


def shared_dir() -> Path:
    """`../shared` next to the repository (override with `RAG_SHARED_DIR`)."""
    override = os.environ.get("RAG_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared"


def xquad_path(language: str = "en") -> Path | None:
    """The shared XQuAD file, or None when it is absent on this machine."""
    path = shared_dir() / "data" / "xquad" / f"xquad.{language}.json"
    return path if path.is_file() else None


def sift_dir() -> Path | None:
    """The folder in `SIFT1M_DIR` when it holds the three SIFT1M files, else None."""
    value = os.environ.get("SIFT1M_DIR")
    if not value:
        return None
    folder = Path(value).expanduser()
    return folder if all((folder / name).is_file() for name in SIFT_FILES) else None
