"""Retrieval evaluation through the same retriever `query` uses.

`squad`: a question is a hit at rank r when the chunk at rank r belongs to the gold article and
its character range covers a gold answer span. `pairs` (KLUE STS format): for pairs labelled at
or above a threshold, the first sentence must retrieve its partner among all second sentences.
A Belebele `.jsonl` file given to `squad` is passage retrieval (`read_belebele`).
Documents go into a fresh collection of the configured backend, removed afterwards (even on
Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llama_index.core import Document

from rag_app.answers.types import Source
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.errors import RagAppError
from rag_app.ingestion.loaders import SquadQuestion, read_squad
from rag_app.settings import Settings, load_settings

RANKS = (1, 3, 5, 10)


def is_hit(source: Source, question: SquadQuestion) -> bool:
    if source.doc_id != question.doc_id or source.start_char is None or source.end_char is None:
        return False
    return any(source.start_char <= s and e <= source.end_char for s, e in question.answer_spans)


def first_hit_rank(sources: Sequence[Source], question: SquadQuestion) -> int | None:
    return next((rank for rank, s in enumerate(sources, 1) if is_hit(s, question)), None)


def read_belebele(path: Path) -> tuple[list[Document], list[SquadQuestion]]:
    """Belebele JSONL as passage retrieval: each FLORES passage (by `link`) is one document and
    its questions' gold span is the whole passage, so a hit is a chunk holding the question's
    own passage (passages are 77-696 characters: one chunk each at the default chunk size)."""
    documents: dict[str, Document] = {}
    questions: list[SquadQuestion] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            link, passage, question = row["link"], row["flores_passage"], row["question"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RagAppError(
                f"{path}:{number}: not a Belebele line (needs link, flores_passage, question): "
                f"{exc}"
            ) from None
        doc_id = f"{path.stem}/{link}"
        if doc_id not in documents:
            documents[doc_id] = Document(
                id_=doc_id,
                text=passage,
                metadata={"source": str(path), "title": link, "file_type": "belebele"},
            )
        questions.append(SquadQuestion(question, doc_id, ((0, len(passage)),)))
    return list(documents.values()), questions


def evaluate_squad(
    settings: Settings,
    path: Path,
    limit: int | None = None,
    seed: int = 0,
    top_k: int = 10,
    embedder: Embedder | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Ingest every article, ask the (sampled) questions, and report hit@k and latency.

    `rows`, when given, receives one row per question (id, question, rank) for run records.
    """
    documents, questions = read_belebele(path) if path.suffix == ".jsonl" else read_squad(path)
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    with scratch_app(settings, embedder) as app:
        report = app.ingest_documents(documents)
        ranks, latencies = _ask(
            app, [q.question for q in questions], top_k, _squad_judge(questions)
        )
        if rows is not None:
            rows += question_rows([(q.doc_id, q.question) for q in questions], ranks)
        chunk_tokens = [
            len(app.embedder.tokenize(n.text)) for d in documents for n in app.chunker.split(d)
        ]
        return {
            **_metrics("hit", ranks),
            "n_questions": len(questions),
            "n_docs": len(documents),
            "n_chunks": app.backend.count(),
            "chunk_tokens_mean": round(statistics.fmean(chunk_tokens), 1) if chunk_tokens else 0.0,
            "ingest_s": round(report.seconds, 2),
            **_latency(latencies),
            **_identity(app),
        }


def evaluate_pairs(
    settings: Settings,
    path: Path,
    min_label: float = 4.0,
    top_k: int = 10,
    embedder: Embedder | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """KLUE-STS-style pairs: sentence1 retrieves its sentence2 among all second sentences.

    `rows`, when given, receives one row per query (id, question, rank) for run records.
    """
    documents, queries = read_pairs(path, min_label)
    with scratch_app(settings, embedder) as app:
        report = app.ingest_documents(documents)
        gold = iter([doc_id for _, doc_id in queries])
        ranks, latencies = _ask(
            app, [q for q, _ in queries], top_k, lambda sources: rank_of(sources, next(gold))
        )
        if rows is not None:
            rows += question_rows([(d, q) for q, d in queries], ranks)
        return {
            **_metrics("recall", ranks),
            "n_queries": len(queries),
            "n_docs": len(documents),
            "ingest_s": round(report.seconds, 2),
            **_latency(latencies),
            **_identity(app),
        }


def read_pairs(path: Path, min_label: float = 4.0) -> tuple[list[Document], list[tuple[str, str]]]:
    """Every second sentence as a document, and (first sentence, its partner's id) per pair
    labelled at or above `min_label`."""
    pairs = json.loads(Path(path).read_text(encoding="utf-8"))
    partners = sorted({p["sentence2"] for p in pairs})
    ids = {text: f"s2-{i:05d}" for i, text in enumerate(partners)}
    documents = [Document(id_=ids[t], text=t) for t in partners]
    queries = [
        (p["sentence1"], ids[p["sentence2"]]) for p in pairs if p["labels"]["label"] >= min_label
    ]
    return documents, queries


def evaluate_matrix(
    settings: Settings,
    evaluate: Callable[[Settings, Embedder], dict[str, Any]],
    embed_models: Sequence[str],
    retrievers: Sequence[str],
) -> list[dict[str, Any]]:
    """`evaluate` once per embedding model and retriever, each model loaded once.

    The embedding cache under RAG_DATA_DIR is shared, so each retriever after a model's first
    run embeds no chunk again.
    """
    results = []
    for model in embed_models:
        model_settings = load_settings(**{**settings.model_dump(), "embed_model": model})
        embedder = build_embedder(model_settings)
        try:
            for retriever in retrievers:
                run_settings = model_settings.model_copy(update={"retriever": retriever})
                results.append(evaluate(run_settings, embedder))
        finally:
            if embedder.cache:
                embedder.cache.close()
    return results


@contextmanager
def scratch_app(settings: Settings, embedder: Embedder | None) -> Iterator[RagApp]:
    """A RagApp on a fresh collection of the configured backend, removed afterwards."""
    app = RagApp(settings, collection=f"eval-{uuid.uuid4().hex[:10]}", embedder=embedder)
    try:
        yield app
    finally:
        app.backend.drop()
        if app.keyword:
            app.keyword.drop()
        app.close()


def question_rows(
    questions: Sequence[tuple[str, str]], ranks: Sequence[int | None]
) -> list[dict[str, Any]]:
    """Rows keyed by a stable id from (gold doc id, question), so runs can be diffed."""
    return [
        {
            "id": hashlib.sha1(f"{doc_id}|{question}".encode()).hexdigest()[:12],
            "question": question,
            "gold": doc_id,
            "rank": rank,
        }
        for (doc_id, question), rank in zip(questions, ranks, strict=True)
    ]


def _squad_judge(questions: Sequence[SquadQuestion]) -> Callable[[list[Source]], int | None]:
    remaining = iter(questions)
    return lambda sources: first_hit_rank(sources, next(remaining))


def rank_of(sources: Sequence[Source], doc_id: str) -> int | None:
    """The rank of the first source from document `doc_id`, None when none is."""
    return next((rank for rank, s in enumerate(sources, 1) if s.doc_id == doc_id), None)


def _ask(
    app: RagApp,
    questions: Sequence[str],
    top_k: int,
    judge: Callable[[list[Source]], int | None],
) -> tuple[list[int | None], list[float]]:
    ranks: list[int | None] = []
    latencies: list[float] = []
    for question in questions:
        started = time.perf_counter()
        sources = app.retrieve(question, top_k)
        latencies.append((time.perf_counter() - started) * 1000)
        ranks.append(judge(sources))
    return ranks, latencies


def _metrics(name: str, ranks: Sequence[int | None]) -> dict[str, float]:
    return {
        **{f"{name}@{k}": _rate(ranks, k) for k in RANKS},
        "mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / max(len(ranks), 1), 4),
    }


def _latency(latencies: Sequence[float]) -> dict[str, float]:
    return {"query_p50_ms": _percentile(latencies, 50), "query_p95_ms": _percentile(latencies, 95)}


def _identity(app: RagApp) -> dict[str, str]:
    return {
        "store": app.settings.vector_store,
        "embed_model": app.embedder.model_id,
        "retriever": app.settings.retriever,
    }


def _rate(ranks: Sequence[int | None], k: int) -> float:
    return round(sum(1 for r in ranks if r and r <= k) / max(len(ranks), 1), 4)


def _percentile(values: Sequence[float], q: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return round(ordered[index], 2)
