"""The retrieval-quality eval matrix: datasets x vector stores x retrievers, plus hybrid latency.

Why: a retrieval change (tokenizer, BM25 parameters, fusion, candidate depth, chunk size) is only
kept when it helps across languages and stores, so every change is judged on the same matrix,
through the same code path as ``rag-app eval`` (``rag_app.evaluation.retrieval``):

* XQuAD en and zh (all questions): hit@k of the chunk covering a gold answer span;
* KLUE-STS dev pairs (Korean): recall@k of the partner sentence;
* each on the memory and embedded Chroma stores, with the hybrid, dense and keyword retrievers;
* the query latency of hybrid against dense-only, measured in one run with the two modes
  alternating on the same questions, so machine load affects both alike.

One JSON object per eval run is printed (the ``rag-app eval --json`` keys plus ``dataset``), and
everything is written to ``--out``. Each question is embedded once for the whole matrix (the
embedding is the same for every store and retriever), so the matrix's ``query_p50_ms`` leave the
query embedding out after a dataset's first run; the latency comparison embeds every time.
Run on demand from the repository root: ``.venv/bin/python -m benchmarks.retrieval_quality``.
The embedding cache under ``--data-dir`` makes the chunk embeddings of later runs cheap.
Skips (exit 0) with a printed reason when the data is absent.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.evaluation.retrieval import evaluate_pairs, evaluate_squad, scratch_app
from rag_app.ingestion.loaders import read_squad
from rag_app.settings import RetrieverName, Settings, load_settings
from rag_lab.data import shared_dir

DATA = shared_dir() / "data"
SQUAD = {"xquad.en": DATA / "xquad" / "xquad.en.json", "xquad.zh": DATA / "xquad" / "xquad.zh.json"}
KLUE = DATA / "klue" / "klue-sts-v1.1_dev.json"
STORES = ("memory", "chroma")
RETRIEVERS: tuple[RetrieverName, ...] = ("hybrid", "dense", "keyword")


def with_query_memo(embedder: Embedder) -> Embedder:
    """``embedder`` with ``embed_query`` memoised: a question is embedded once per process."""
    memo = functools.lru_cache(maxsize=None)(embedder.embed_query)
    embedder.embed_query = memo  # type: ignore[method-assign]
    return embedder


def run_matrix(
    data_dir: Path,
    datasets: Sequence[str],
    stores: Sequence[str],
    retrievers: Sequence[RetrieverName],
    embedder: Embedder,
) -> list[dict[str, Any]]:
    """One eval per (dataset, store, retriever), printed as a JSON line as soon as it is done."""
    results: list[dict[str, Any]] = []
    for dataset in datasets:
        for store in stores:
            for retriever in retrievers:
                settings = load_settings(data_dir=data_dir, vector_store=store, retriever=retriever)
                if dataset == "klue":
                    result = evaluate_pairs(settings, KLUE, embedder=embedder)
                else:
                    result = evaluate_squad(settings, SQUAD[dataset], embedder=embedder)
                result = {"dataset": dataset, **result}
                print(json.dumps(result), flush=True)
                results.append(result)
    return results


def latency_ratio(
    settings: Settings, path: Path, embedder: Embedder, n_questions: int
) -> dict[str, Any]:
    """Retrieve-only p50 of hybrid and dense, alternating per question on one ingested store."""
    documents, questions = read_squad(path)
    questions = random.Random(0).sample(questions, min(n_questions, len(questions)))
    timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
    with scratch_app(settings, embedder) as app:
        app.ingest_documents(documents)
        for question in questions:
            for mode in ("dense", "hybrid"):
                app.retriever.mode = mode
                started = time.perf_counter()
                app.retrieve(question.question, 10)
                timings[mode].append((time.perf_counter() - started) * 1000)
    dense_p50 = statistics.median(timings["dense"])
    hybrid_p50 = statistics.median(timings["hybrid"])
    return {
        "latency": path.stem,
        "store": settings.vector_store,
        "n_questions": len(questions),
        "dense_p50_ms": round(dense_p50, 2),
        "hybrid_p50_ms": round(hybrid_p50, 2),
        "hybrid_over_dense": round(hybrid_p50 / dense_p50, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/evaldata"))
    parser.add_argument("--datasets", nargs="*", default=[*SQUAD, "klue"], choices=[*SQUAD, "klue"])
    parser.add_argument("--stores", nargs="*", default=list(STORES), choices=STORES)
    parser.add_argument("--retrievers", nargs="*", default=list(RETRIEVERS), choices=RETRIEVERS)
    parser.add_argument("--latency-store", default="memory", choices=[*STORES, "none"])
    parser.add_argument("--latency-questions", type=int, default=300)
    parser.add_argument("--out", type=Path, help="default: DATA_DIR/retrieval_quality.json")
    args = parser.parse_args(argv)
    missing = [p for p in (KLUE, *SQUAD.values()) if not p.is_file()]
    if missing:
        print(f"SKIP: benchmark data not found ({', '.join(map(str, missing))}).")
        return 0

    settings = load_settings(data_dir=args.data_dir, retriever="hybrid")
    embedder = with_query_memo(build_embedder(settings))
    results = run_matrix(args.data_dir, args.datasets, args.stores, args.retrievers, embedder)
    latency = None
    if args.latency_store != "none":
        latency_settings = load_settings(
            data_dir=args.data_dir, vector_store=args.latency_store, retriever="hybrid"
        )
        latency = latency_ratio(
            latency_settings,
            SQUAD["xquad.en"],
            build_embedder(latency_settings),
            args.latency_questions,
        )
        print(json.dumps(latency), flush=True)
    out = args.out or args.data_dir / "retrieval_quality.json"
    out.write_text(json.dumps({"runs": results, "latency": latency}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
