"""Read Hancom HWP 5.x (`.hwp`) and HWPX (`.hwpx`) files as text, tables in reading order.

Reader chosen: `hwp-hwpx-parser` (pure Python, olefile for HWP 5.x, zip + XML for HWPX).
Compared on the same real files (written by `hwp-converter-ai`: a heading, two paragraphs
and a 2x2 table, in both formats):
- LlamaIndex's `HWPReader` (llama-index-readers-file): HWP only, no HWPX; its text keeps
  the control characters of section, column and table definitions decoded as CJK garbage
  (`\\x02捤獥…`, `\\x0b氠瑢…`) between the paragraphs, which would be embedded and indexed.
- `hwp-hwpx-parser`: both formats, the same clean text for both, tables as Markdown rows
  where they stand, and `is_encrypted` so a password-protected file is named, not parsed.
- `python-hwpx`: HWPX only (an editor and writer first); `pyhwp` (hwp5): last release 2020.
A file that is not a valid HWP, or is encrypted, raises `LoadError` and the ingest reports it
by name and goes on, like a corrupt PDF.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from rag_app.errors import RagAppError

HWP_SUFFIXES = {".hwp", ".hwpx"}


class HwpError(RagAppError):
    """Why an HWP or HWPX file cannot be read (the loader turns it into a LoadError)."""


def read_hwp(path: Path) -> tuple[str, str | None]:
    """The text of an `.hwp` or `.hwpx` file and the title its metadata holds (None if blank)."""
    from hwp_hwpx_parser import Reader

    try:
        with Reader(str(path)) as reader:
            if reader.is_encrypted:
                raise HwpError("encrypted or password-protected HWP; save an unprotected copy")
            text = reader.text
    except ValueError as exc:
        raise HwpError(
            f"not a valid HWP/HWPX file ({exc}); re-save it from Hancom Office"
        ) from None
    return text, _title(path)


def _title(path: Path) -> str | None:
    if path.suffix.lower() == ".hwpx":
        return _hwpx_title(path)
    import olefile

    with olefile.OleFileIO(str(path)) as ole:
        title = ole.get_metadata().title
    if isinstance(title, bytes):
        title = title.decode("utf-8", "replace")
    return (title or "").strip("\x00 ").strip() or None


def _hwpx_title(path: Path) -> str | None:
    with zipfile.ZipFile(path) as archive:
        try:
            manifest = archive.read("Contents/content.hpf").decode("utf-8", "replace")
        except KeyError:
            return None
    match = re.search(r"<opf:title>([^<]*)</opf:title>", manifest)
    return match.group(1).strip() or None if match else None
