"""Optional Weights & Biases logging of a run record (`--wandb`, extra `rag-app[wandb]`).

Without WANDB_API_KEY (and with no WANDB_MODE set) the run is logged in W&B's offline mode:
files under WANDB_DIR (default: the run records' folder) that `wandb sync` uploads later, so
`--wandb` never needs the network. The run's config is the record's masked settings and
parameters; its summary the metrics; a table holds the per-question rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rag_app.errors import ConfigError
from rag_app.evaluation.runs import row_values

PROJECT = "rag-app"


def log_run(record: dict[str, Any], directory: Path | None = None) -> str:
    """Log one run record; returns the W&B run directory."""
    try:
        import wandb
    except ImportError:
        raise ConfigError(
            "--wandb needs the wandb package: pip install 'rag-app[wandb]' (or pip install wandb)"
        ) from None
    mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", PROJECT),
        name=record["id"],
        job_type=f"eval-{record['kind']}",
        mode=mode,
        dir=str(os.environ.get("WANDB_DIR") or directory or "."),
        config={
            "settings": record["settings"],
            "params": record["params"],
            "dataset": record["dataset"],
        },
        reinit="finish_previous",
    )
    try:
        numbers = {k: v for k, v in record["metrics"].items() if isinstance(v, int | float)}
        run.summary.update(numbers)
        rows = [row_values(row) for row in record["rows"]]
        columns = list(dict.fromkeys(["id", "question", *(k for r in rows for k in r)]))
        table = wandb.Table(
            columns=columns,
            data=[
                [
                    _cell({**r, "id": row["id"], "question": row.get("question")}.get(c))
                    for c in columns
                ]
                for r, row in zip(rows, record["rows"], strict=True)
            ],
        )
        run.log({"rows": table, **numbers})
        return str(run.dir)
    finally:
        run.finish()


def _cell(value: Any) -> Any:
    """W&B tables want one type per column: numbers stay, everything else becomes text."""
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)
