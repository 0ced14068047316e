"""Run records: every eval writes one JSON file under RAG_DATA_DIR/runs/ to compare later.

A record holds the settings (secrets masked), the dataset's path and SHA-256, the command's
parameters, the aggregate metrics and one row per question, so two runs can be diffed metric
by metric and question by question, and `eval compare` can judge two runs' answers.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rag_app.errors import RagAppError
from rag_app.settings import Settings
from rag_app.util.files import write_atomically


class RunNotFoundError(RagAppError):
    """A run id or path that names no run record."""


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "runs"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_run(
    settings: Settings,
    kind: str,
    dataset: Path,
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    params: dict[str, Any] | None = None,
    dataset_sha256: str | None = None,
) -> Path:
    """Write one record; its id sorts by time: `YYYYmmdd-HHMMSSmmm-<kind>-<random>`."""
    now = datetime.now(timezone.utc)
    run_id = f"{now:%Y%m%d-%H%M%S}{now.microsecond // 1000:03d}-{kind}-{uuid.uuid4().hex[:6]}"
    record = {
        "id": run_id,
        "kind": kind,
        "created": now.isoformat(timespec="seconds"),
        "settings": settings.masked(),
        "dataset": {
            "path": str(Path(dataset).resolve()),
            "sha256": dataset_sha256 or file_sha256(dataset),
        },
        "params": params or {},
        "metrics": metrics,
        "rows": rows,
    }
    path = runs_dir(settings) / f"{run_id}.json"
    write_atomically(path, json.dumps(record, ensure_ascii=False, indent=1))
    return path


@dataclass(frozen=True)
class RunSummary:
    id: str
    kind: str
    created: str
    dataset: str
    n_rows: int
    path: Path


def list_runs(settings: Settings) -> list[RunSummary]:
    """Every record, oldest first."""
    summaries = []
    for path in sorted(runs_dir(settings).glob("*.json")):
        record = _read(path)
        summaries.append(
            RunSummary(
                record["id"],
                record["kind"],
                record["created"],
                Path(record["dataset"]["path"]).name,
                len(record["rows"]),
                path,
            )
        )
    return summaries


def load_run(settings: Settings, ref: str | Path) -> dict[str, Any]:
    """A record by file path, id, or unique id prefix."""
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        return _read(path)
    matches = sorted(runs_dir(settings).glob(f"{ref}*.json"))
    if len(matches) == 1:
        return _read(matches[0])
    if not matches:
        raise RunNotFoundError(
            f"no run {ref!r} in {runs_dir(settings)}; `rag-app eval runs` lists them"
        )
    raise RunNotFoundError(f"run {ref!r} is ambiguous ({len(matches)} match); give more of its id")


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunNotFoundError(f"{path} is not a readable run record ({exc})") from None


def row_values(row: dict[str, Any]) -> dict[str, Any]:
    """A row's comparable values: top-level numbers, `metrics.*` and `judge.*` flattened."""
    values = {k: v for k, v in row.items() if _is_number(v) or k == "answer"}
    for group in ("metrics", "judge"):
        values.update({f"{group}.{k}": v for k, v in (row.get(group) or {}).items()})
    return values


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Metrics side by side (with B - A) and, per question present in both, what changed."""
    names = list(dict.fromkeys([*a["metrics"], *b["metrics"]]))
    metrics = []
    for name in names:
        left, right = a["metrics"].get(name), b["metrics"].get(name)
        delta = round(right - left, 4) if _is_number(left) and _is_number(right) else None
        metrics.append({"name": name, "a": left, "b": right, "delta": delta})
    rows_a = {row["id"]: row for row in a["rows"]}
    rows_b = {row["id"]: row for row in b["rows"]}
    questions = []
    for row_id in [i for i in rows_a if i in rows_b]:
        left, right = row_values(rows_a[row_id]), row_values(rows_b[row_id])
        changes = {
            key: [left.get(key), right.get(key)]
            for key in dict.fromkeys([*left, *right])
            if left.get(key) != right.get(key)
        }
        if changes:
            questions.append({"id": row_id, "question": rows_a[row_id].get("question"), **changes})
    return {
        "a": a["id"],
        "b": b["id"],
        "same_dataset": a["dataset"]["sha256"] == b["dataset"]["sha256"],
        "metrics": metrics,
        "changed_questions": questions,
        "only_in_a": [i for i in rows_a if i not in rows_b],
        "only_in_b": [i for i in rows_b if i not in rows_a],
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
