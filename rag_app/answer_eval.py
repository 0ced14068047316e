"""Answer evaluation: answer each question through the app (retrieve + answer), then score it.

Items that already carry an answer are scored as given. SQuAD-format sets are answered over
their own articles in a scratch collection (removed afterwards); JSONL sets over the configured
collection. Scores per row: reference metrics (answer_metrics), perplexity when the LLM returns
token log-probabilities, embedding similarity to the reference (LlamaIndex's
`SemanticSimilarityEvaluator` over the configured embed model, fed from one batched embedding
call), and optionally the judge's triad (judge.py).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from pydantic import PrivateAttr

from rag_app import answer_metrics as am
from rag_app.answer_data import AnswerDataset, AnswerItem, load_dataset
from rag_app.app import RagApp
from rag_app.embeddings import Embedder, build_embedder
from rag_app.judge import judge_rows, run_sync
from rag_app.settings import Settings

GIVEN = "the answer was given in the dataset, not generated"
ROW_METRICS = ("exact_match", "f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL")


@dataclass
class AnswerRun:
    dataset: AnswerDataset
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]


def evaluate_answers(
    settings: Settings,
    path: Path,
    limit: int | None = None,
    seed: int = 0,
    judge: str | None = None,
    concurrency: int = 16,
    embedder: Embedder | None = None,
) -> AnswerRun:
    """Answer (where needed) and score every item; the judge runs when `judge` or RAG_JUDGE."""
    dataset = load_dataset(path, limit, seed)
    rows = [_row(item) for item in dataset.items]
    missing = [
        (row, item) for row, item in zip(rows, dataset.items, strict=True) if not _given(item)
    ]
    with _embedder_and_app(settings, dataset, embedder, bool(missing)) as (model, app):
        for row, item in missing:
            answer_item(app, item, row)
        score_references(rows, model)
    metrics = {
        **aggregate(rows),
        "n_questions": len(rows),
        "n_generated": len(missing),
        "llm": settings.resolved_llm if missing else "given",
        "store": settings.vector_store,
        "retriever": settings.retriever,
        "embed_model": model.model_id,
    }
    if judge or settings.judge:
        metrics.update(judge_rows(settings, rows, judge, concurrency))
    return AnswerRun(dataset, metrics, rows)


def _given(item: AnswerItem) -> bool:
    """An item with an answer is scored as given (earlier turns matter only to answer it)."""
    return item.answer is not None


def _row(item: AnswerItem) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item.id,
        "question": item.question,
        "references": item.references,
        "answer": item.answer,
        "contexts": item.contexts,
    }
    if item.turns:
        row["turns"] = [{"question": t.question, "answer": t.answer} for t in item.turns]
    if item.answer is not None:
        row["perplexity_reason"] = GIVEN
    return row


@contextmanager
def _embedder_and_app(
    settings: Settings, dataset: AnswerDataset, embedder: Embedder | None, answering: bool
) -> Iterator[tuple[Embedder, RagApp | None]]:
    """The app to answer with (scratch collection for SQuAD articles), and the embedder."""
    from rag_app.eval import scratch_app

    if not answering:
        model = embedder or build_embedder(settings)
        yield model, None
        return
    if dataset.documents is not None:
        with scratch_app(settings, embedder) as app:
            app.ingest_documents(dataset.documents)
            yield app.embedder, app
        return
    with RagApp(settings, embedder=embedder) as app:
        yield app.embedder, app


def answer_item(app: RagApp, item: AnswerItem, row: dict[str, Any]) -> None:
    """Retrieve and answer each turn as `rag-app chat` does; the last turn is the scored one."""
    history: list[ChatMessage] = []
    turns = []
    for turn in item.turns:
        text = turn.answer
        if text is None:
            text = app.answerer.generate(turn.question, app.retrieve(turn.question), history).text
        turns.append({"question": turn.question, "answer": text})
        history += [
            ChatMessage(role=MessageRole.USER, content=turn.question),
            ChatMessage(role=MessageRole.ASSISTANT, content=text),
        ]
    started = time.perf_counter()
    sources = app.retrieve(item.question)
    generated = app.answerer.generate(item.question, sources, history)
    row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    row["answer"] = generated.text
    row["contexts"] = [s.text for s in sources]
    row["sources"] = [s.doc_id for s in sources]
    if turns:
        row["turns"] = turns
    perplexity = am.perplexity(generated.token_logprobs, generated.why_no_logprobs or "")
    row["perplexity"] = perplexity.value
    if perplexity.reason:
        row["perplexity_reason"] = perplexity.reason
    else:
        row.pop("perplexity_reason", None)


def score_references(rows: Sequence[dict[str, Any]], embedder: Embedder) -> None:
    """Rows with references gain `metrics`: EM, F1, BLEU, chrF, ROUGE, embedding similarity."""
    add_similarity(score_lexical(rows), embedder)


def score_lexical(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """EM, F1, BLEU, chrF and ROUGE for the rows with references; returns those rows."""
    scored = [row for row in rows if row["references"]]
    for row in scored:
        answer, references = am.strip_citations(row["answer"] or ""), row["references"]
        row["metrics"] = {
            "exact_match": am.exact_match(answer, references),
            "f1": round(am.f1(answer, references), 4),
            "bleu": round(am.sentence_bleu(answer, references), 2),
            "chrf": round(am.sentence_chrf(answer, references), 2),
            **{k: round(v, 4) for k, v in am.rouge(answer, references).items()},
        }
    return scored


def add_similarity(scored: Sequence[dict[str, Any]], embedder: Embedder) -> None:
    similarities = semantic_similarities(
        embedder, [(am.strip_citations(r["answer"] or ""), r["references"]) for r in scored]
    )
    for row, value in zip(scored, similarities, strict=True):
        row["metrics"]["semantic_similarity"] = round(value, 4)


class _Precomputed(BaseEmbedding):
    """Serves vectors embedded beforehand in one batch (the evaluator embeds text by text)."""

    _vectors: dict[str, list[float]] = PrivateAttr(default_factory=dict)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vectors[text]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vectors[query]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vectors[query]


def semantic_similarities(
    embedder: Embedder, pairs: Sequence[tuple[str, Sequence[str]]]
) -> list[float]:
    """Best cosine similarity of each answer to its references (SemanticSimilarityEvaluator)."""
    from llama_index.core.evaluation import SemanticSimilarityEvaluator

    texts = list(dict.fromkeys(t for answer, refs in pairs for t in (answer, *refs)))
    if not texts:
        return []
    model = _Precomputed(model_name=embedder.model_id)
    vectors = embedder.embed_texts(texts)
    model._vectors = {t: v.tolist() for t, v in zip(texts, vectors, strict=True)}
    evaluator = SemanticSimilarityEvaluator(embed_model=model)

    async def best(answer: str, references: Sequence[str]) -> float:
        results = [await evaluator.aevaluate(response=answer, reference=r) for r in references]
        return max(r.score for r in results)

    async def run_all() -> list[float]:
        return list(await asyncio.gather(*(best(a, refs) for a, refs in pairs)))

    return run_sync(run_all())


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the row metrics, corpus BLEU and chrF, and perplexity (or why it is absent)."""
    scored = [row for row in rows if row.get("metrics")]
    metrics: dict[str, Any] = {"n_with_reference": len(scored)}
    for name in (*ROW_METRICS, "semantic_similarity"):
        values = [row["metrics"][name] for row in scored if name in row["metrics"]]
        metrics[name] = round(statistics.fmean(values), 4) if values else None
    if scored:
        answers = [am.strip_citations(row["answer"] or "") for row in scored]
        references = [row["references"] for row in scored]
        metrics["corpus_bleu"] = round(am.corpus_bleu(answers, references), 2)
        metrics["corpus_chrf"] = round(am.corpus_chrf(answers, references), 2)
    perplexities = [row["perplexity"] for row in rows if row.get("perplexity") is not None]
    metrics["perplexity"] = round(statistics.fmean(perplexities), 4) if perplexities else None
    reasons = Counter(row["perplexity_reason"] for row in rows if row.get("perplexity_reason"))
    if reasons:
        metrics["perplexity_absent"] = "; ".join(f"{r} ({n})" for r, n in reasons.most_common())
    latencies = [row["latency_ms"] for row in rows if "latency_ms" in row]
    if latencies:
        metrics["answer_p50_ms"] = round(statistics.median(latencies), 1)
    return metrics
