"""Rows (dataclasses or dicts) as Markdown tables, and selecting rows by field values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from typing import Any


def select(rows: Iterable[Any], **where: Any) -> list[Any]:
    """The rows whose fields equal every given value, e.g. `select(rows, M=16)`."""
    return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def format_table(rows: Sequence[Any], columns: Sequence[str] | None = None) -> str:
    """A markdown table of dataclass rows or dicts (for `display(Markdown(...))`)."""
    if not rows:
        return "_(no rows)_"
    records = [asdict(r) if hasattr(r, "__dataclass_fields__") else dict(r) for r in rows]
    columns = list(columns or records[0].keys())
    numeric = [
        all(isinstance(r.get(c), int | float) or r.get(c) is None for r in records) for c in columns
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    for record in records:
        lines.append("| " + " | ".join(_cell(record.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def columns_of(row_type: type) -> list[str]:
    return [f.name for f in fields(row_type)]
