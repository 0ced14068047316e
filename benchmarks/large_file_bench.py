"""Peak memory and wall time of `rag-app ingest` on one large single-line file.

Why: the user trial's 4.65 MB one-line file (no newline, no sentence end) showed no progress
for minutes and peaked at 1.38 GB, because the whole document was split at once and all its
chunks were embedded before any was written. Ingestion now streams (rag_app/ingestion/pipeline.py),
so peak RSS should stay flat as the file grows. Each size runs in a fresh `rag-app ingest` process
(model load included, as a user sees it) with a fresh data directory; peak RSS is that
process's own (os.wait4). Set PYTHONPATH to another checkout to measure its code.

    .venv/bin/python -m benchmarks.large_file_bench --megabytes 1,2 --model local
    .venv/bin/python -m benchmarks.large_file_bench --megabytes 5 --hash   # no encoding

`--hash` ingests with pseudo-embeddings (benchmarks.ingest_bench.HashEmbedder: the real model
is loaded for its tokenizer, nothing is encoded), which measures what the ingestion path itself
holds, minutes faster; the real model's encoding adds a transient of its own per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = ["vector", "store", "chunk", "embedding", "retrieval", "graph", "index", "query"]


def single_line_file(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Words with numbers on one line: no paragraph, line or sentence boundary anywhere."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    words: list[str] = []
    size = 0
    while size < target:
        words.append(f"{rng.choice(WORDS)}{rng.randint(0, 999)}")
        size += len(words[-1]) + 1
    path.write_text(" ".join(words), encoding="utf-8")
    return path


def bench_large_file(
    megabytes: float, workdir: Path, model: str = "local", hashed: bool = False
) -> dict[str, Any]:
    """One fresh `rag-app ingest` of a generated file: wall s, CPU s, peak RSS MB, chunks."""
    path = single_line_file(workdir / f"single-line-{megabytes}MB.txt", megabytes)
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(workdir / f"data-{megabytes}-{model}"),
        "RAG_VECTOR_STORE": "memory",
        "RAG_EMBED_MODEL": model,
    }
    command = [sys.executable, "-m", "rag_app", "ingest", str(path), "--no-progress"]
    if hashed:
        command = [sys.executable, "-m", "benchmarks.large_file_bench", "--ingest-hashed"]
        command.append(str(path))
    began = time.perf_counter()
    with (workdir / "ingest.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        out = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"ingest failed: {out}\n{(workdir / 'ingest.log').read_text()[-2000:]}")
    return {
        "model": f"{model} (hashed)" if hashed else model,
        "megabytes": megabytes,
        "wall_s": round(seconds, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "summary": out.strip().splitlines()[-1],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", default="1,2", help="comma-separated file sizes")
    parser.add_argument("--model", default="local", help="RAG_EMBED_MODEL of the ingest")
    parser.add_argument("--hash", action="store_true", help="pseudo-embeddings, no encoding")
    parser.add_argument("--ingest-hashed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_hashed:
        return ingest_hashed(args.ingest_hashed)
    with tempfile.TemporaryDirectory(prefix="rag-large-") as tmp:
        for size in (float(s) for s in args.megabytes.split(",")):
            result = bench_large_file(size, Path(tmp), args.model, args.hash)
            print(json.dumps(result), flush=True)


def ingest_hashed(path: Path) -> None:
    """The child of `--hash`: `rag-app ingest` with pseudo-embeddings (settings from the env)."""
    from benchmarks.ingest_bench import HashEmbedder
    from rag_app.app import RagApp
    from rag_app.embeddings.models import build_embedder
    from rag_app.settings import load_settings

    settings = load_settings()
    embedder = HashEmbedder(build_embedder(settings, cache=False))
    with RagApp(settings, embedder=embedder) as app:
        print(app.ingest([path]).summary())


if __name__ == "__main__":
    sys.exit(main())
