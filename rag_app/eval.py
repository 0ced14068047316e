"""Retrieval evaluation on SQuAD-format data, through the same retriever `query` uses.

A question is a hit at rank r when the chunk at rank r belongs to the gold article and its
character range covers a gold answer span. Articles are ingested into a fresh collection of the
configured backend, which is removed afterwards (even on Ctrl-C).
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_app.app import RagApp
from rag_app.embeddings import Embedder
from rag_app.llms import Source
from rag_app.loaders import SquadQuestion, read_squad
from rag_app.settings import Settings

RANKS = (1, 3, 5, 10)


def is_hit(source: Source, question: SquadQuestion) -> bool:
    if source.doc_id != question.doc_id or source.start_char is None or source.end_char is None:
        return False
    return any(source.start_char <= s and e <= source.end_char for s, e in question.answer_spans)


def first_hit_rank(sources: Sequence[Source], question: SquadQuestion) -> int | None:
    return next((rank for rank, s in enumerate(sources, 1) if is_hit(s, question)), None)


def evaluate_squad(
    settings: Settings,
    path: Path,
    limit: int | None = None,
    seed: int = 0,
    top_k: int = 10,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Ingest every article, ask the (sampled) questions, and report hit@k and latency."""
    documents, questions = read_squad(path)
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    collection = f"eval-{uuid.uuid4().hex[:10]}"
    app = RagApp(settings, collection=collection, embedder=embedder)
    try:
        report = app.ingest_documents(documents)
        ranks, latencies = _ask(app, questions, top_k)
        chunk_tokens = [
            len(app.embedder.tokenize(n.text)) for d in documents for n in app.chunker.split(d)
        ]
        n_chunks = app.backend.count()
    finally:
        app.backend.drop()
        if app.keyword:
            shutil.rmtree(app.keyword.directory, ignore_errors=True)
        app.close()
    return {
        **{f"hit@{k}": _rate(ranks, k) for k in RANKS},
        "mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / max(len(ranks), 1), 4),
        "n_questions": len(questions),
        "n_docs": len(documents),
        "n_chunks": n_chunks,
        "chunk_tokens_mean": round(statistics.fmean(chunk_tokens), 1) if chunk_tokens else 0.0,
        "ingest_s": round(report.seconds, 2),
        "query_p50_ms": _percentile(latencies, 50),
        "query_p95_ms": _percentile(latencies, 95),
        "store": settings.vector_store,
        "embed_model": app.embedder.model_id,
        "retriever": settings.retriever,
    }


def _ask(
    app: RagApp, questions: Sequence[SquadQuestion], top_k: int
) -> tuple[list[int | None], list[float]]:
    ranks: list[int | None] = []
    latencies: list[float] = []
    for question in questions:
        started = time.perf_counter()
        sources = app.retrieve(question.question, top_k)
        latencies.append((time.perf_counter() - started) * 1000)
        ranks.append(first_hit_rank(sources, question))
    return ranks, latencies


def _rate(ranks: Sequence[int | None], k: int) -> float:
    return round(sum(1 for r in ranks if r and r <= k) / max(len(ranks), 1), 4)


def _percentile(values: Sequence[float], q: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return round(ordered[index], 2)
