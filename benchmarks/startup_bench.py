"""Start-up: cold `rag-app` commands as whole processes, beside `import llama_index.core`.

Why whole processes: a warm query takes tens of milliseconds, so what a user waits for is
interpreter start, imports and model loads, which only a fresh process shows. Each command runs
`runs` times in a row after one ingest of the bundled samples into a scratch RAG_DATA_DIR (the
OS file cache is warm, as for a user's second command); the median wall time and the median peak
RSS (GNU time's %M) are reported, and each time's ratio to the median of
`python -c "import llama_index.core"` run the same way, interleaved, so load drift hits both.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
QUESTION = "What does ef_search control in HNSW?"
KO_QUESTION = "HNSW의 M 파라미터는 무엇인가?"
BASELINE = "import llama_index.core"
COMMANDS: dict[str, list[str]] = {
    "query": ["query", QUESTION],
    "retrieve": ["retrieve", QUESTION],
    "query (ko)": ["query", KO_QUESTION],
    "retrieve (ko)": ["retrieve", KO_QUESTION],
    "docs list": ["docs", "list"],
    "config": ["config"],
    "stores": ["stores"],
}
#: Seconds within which each command should start and finish on a quiet machine (issue 21; a
#: Korean question has none: it loads Kiwi's morphological model, see the (ko) rows).
TARGET_S = {"query": 1.5, "retrieve": 1.0, "docs list": 0.7, "config": 0.7, "stores": 0.7}
TARGET_QUERY_MB = 350
TIME = "/usr/bin/time"


def _timed(argv: list[str], env: dict[str, str], workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process that must succeed.

    The RSS comes from GNU time: a child forked from this process would report this process's
    own peak (Linux keeps ru_maxrss across exec), not the command's.
    """
    report = workdir / "time.txt"
    began = time.perf_counter()
    subprocess.run(
        [TIME, "-f", "%M", "-o", str(report), *argv],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - began
    return seconds, int(report.read_text().split()[-1]) / 1024  # GNU time's %M is in KB


def bench_startup(workdir: Path, runs: int = 7) -> dict[str, Any]:
    if not Path(TIME).exists():
        return {"skipped": f"{TIME} (GNU time, for the peak RSS) is absent"}
    env = {**os.environ, "RAG_DATA_DIR": str(workdir / "startup"), "RAG_VECTOR_STORE": "memory"}
    for name in [n for n in env if n.startswith(("RAG_", "PINECONE_", "CHROMA_", "OPENAI_"))]:
        if name not in ("RAG_DATA_DIR", "RAG_VECTOR_STORE"):
            del env[name]  # the defaults are what a first-time user starts with
    rag_app = [sys.executable, "-m", "rag_app"]
    subprocess.run(
        [*rag_app, "ingest", str(SAMPLES), "--no-progress"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in [BASELINE, *COMMANDS]}
    load_start = os.getloadavg()
    for _ in range(runs):
        timings[BASELINE].append(_timed([sys.executable, "-c", BASELINE], env, workdir))
        for name, args in COMMANDS.items():
            timings[name].append(_timed([*rag_app, *args], env, workdir))
    base_s = statistics.median(s for s, _ in timings[BASELINE])
    rows = {}
    for name, measured in timings.items():
        seconds = statistics.median(s for s, _ in measured)
        rows[name] = {
            "median_s": round(seconds, 3),
            "min_s": round(min(s for s, _ in measured), 3),
            "peak_rss_mb": round(statistics.median(m for _, m in measured), 1),
            "ratio_to_import": round(seconds / base_s, 2),
            "target_s": TARGET_S.get(name),
        }
    return {
        "runs": runs,
        "question": QUESTION,
        "ko_question": KO_QUESTION,
        "loadavg": [list(load_start), list(os.getloadavg())],
        "commands": rows,
    }


def startup_targets(startup: dict[str, Any] | None) -> list[tuple[str, str, float | None, float]]:
    """Seconds on a quiet machine (issue 21); on a loaded one compare the ratios instead."""
    if not startup or "skipped" in startup:
        return []
    rows = startup["commands"]
    found = [
        (
            f"cold `rag-app {name}` (median s)",
            f"<= {row['target_s']} s",
            row["median_s"],
            row["target_s"],
        )
        for name, row in rows.items()
        if row.get("target_s")
    ]
    query_mb = rows["query"]["peak_rss_mb"]
    return [*found, ("cold `rag-app query` peak RSS (MB)", "<= 350 MB", query_mb, TARGET_QUERY_MB)]


def startup_section(results: dict[str, Any], table: Callable[..., list[str]]) -> list[str]:
    startup = results.get("startup")
    if not startup:
        return []
    if "skipped" in startup:
        return ["", "## Start-up", "", f"Skipped: {startup['skipped']}."]
    header = ["process", "median s", "min s", "peak RSS MB", "ratio to import", "target s"]
    rows = [
        (name, r["median_s"], r["min_s"], r["peak_rss_mb"], r["ratio_to_import"], r["target_s"])
        for name, r in startup["commands"].items()
    ]
    start, end = startup["loadavg"]
    korean = startup.get("ko_question")
    return [
        "",
        "## Start-up: cold `rag-app` commands as whole processes",
        "",
        f"Median of {startup['runs']} runs of each process, interleaved with",
        '`python -c "import llama_index.core"` (the ratio\'s denominator), on the memory store',
        f"after `rag-app ingest rag_app/samples`; `query` / `retrieve` ask {startup['question']!r}",
        *([f"and the (ko) rows {korean!r}"] if korean else []),
        f"(extractive answer). Load average {_load(start)} at start, {_load(end)} at the end:",
        "the targets are for a quiet machine, the ratios are what carries across runs.",
        "See benchmarks/startup_bench.py.",
        "",
        *table(header, rows),
    ]


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)
