"""Answer evaluation: answer each question through the app (retrieve + answer), then score it.

Items that already carry an answer are scored as given. SQuAD-format sets are answered over
their own articles in a scratch collection (removed afterwards); JSONL sets over the configured
collection. Scores per row: reference metrics (answer_metrics), perplexity when the LLM returns
token log-probabilities, embedding similarity to the reference (LlamaIndex's
`SemanticSimilarityEvaluator` over the configured embed model, fed from batched embedding
calls), and optionally the judge's triad (judge.py).

Answers are generated with up to `concurrency` LLM calls in flight while this thread
retrieves the next questions, and a scoring thread scores the answers already back, so the
metrics' CPU work (mostly embedding answers and references) runs beside retrieval and the
waits on the LLM instead of after them (benchmarks/answer_bench.py measures what it adds).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from pydantic import PrivateAttr

from rag_app.answers.types import Generated, Source
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.evaluation import metrics as am
from rag_app.evaluation.datasets import AnswerDataset, AnswerItem, load_dataset
from rag_app.evaluation.judge import check_concurrency, judge_rows, run_sync
from rag_app.settings import Settings

GIVEN = "the answer was given in the dataset, not generated"
ROW_METRICS = ("exact_match", "f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL")
#: Answers scored per batch: enough texts per embedding call for e5's batched torch engine
#: (TORCH_MIN_TEXTS passages), few enough that scoring keeps pace with generation.
SCORE_BATCH = 64


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
    check_concurrency(concurrency)
    dataset = load_dataset(path, limit, seed)
    rows = [answer_row(item) for item in dataset.items]
    missing = [
        (row, item) for row, item in zip(rows, dataset.items, strict=True) if not _given(item)
    ]
    with (
        _embedder_and_app(settings, dataset, embedder, bool(missing)) as (model, app),
        ReferenceScorer(model) as scorer,
    ):
        scorer.add([row for row in rows if row["answer"] is not None])
        if app is not None:
            generate_answers(app, missing, concurrency, scorer.add)
        scorer.finish()
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


def answer_row(item: AnswerItem) -> dict[str, Any]:
    """The record a question is answered and scored into (one per question in a run)."""
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
    from rag_app.evaluation.retrieval import scratch_app

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


def generate_answers(
    app: RagApp,
    pending: Sequence[tuple[dict[str, Any], AnswerItem]],
    concurrency: int,
    on_answered: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Answers every item into its row; `on_answered` gets rows as their answers arrive.

    Single-turn items: retrieved here, generated in up to `concurrency` threads. Multi-turn
    items are answered here turn by turn (each turn's retrieval needs the previous answer).
    """
    for row, item in pending:
        if item.turns:
            answer_item(app, item, row)
            on_answered([row])
    with ThreadPoolExecutor(concurrency, thread_name_prefix="answer") as pool:
        in_flight: dict[Future[tuple[Generated, float]], tuple[dict[str, Any], list[Source]]]
        in_flight = {}
        try:
            for row, item in pending:
                if item.turns:
                    continue
                started = time.perf_counter()
                sources = app.retrieve(item.question)
                retrieval_s = time.perf_counter() - started
                future = pool.submit(_timed_generate, app, item.question, sources, retrieval_s)
                in_flight[future] = (row, sources)
                _deliver(in_flight, 0, on_answered)
            while in_flight:
                _deliver(in_flight, None, on_answered)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _timed_generate(
    app: RagApp, question: str, sources: list[Source], retrieval_s: float
) -> tuple[Generated, float]:
    started = time.perf_counter()
    generated = app.answerer.generate(question, sources)
    return generated, retrieval_s + time.perf_counter() - started


def _deliver(
    in_flight: dict[Future[tuple[Generated, float]], tuple[dict[str, Any], list[Source]]],
    timeout: float | None,
    on_answered: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Fills the rows of finished generations (waiting up to `timeout` for one) and hands
    them on; a failed generation raises its error here."""
    done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
    rows = []
    for future in done:
        row, sources = in_flight.pop(future)
        generated, seconds = future.result()
        _fill_row(row, generated, sources, seconds)
        rows.append(row)
    if rows:
        on_answered(rows)


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
    _fill_row(row, generated, sources, time.perf_counter() - started)
    if turns:
        row["turns"] = turns


def _fill_row(
    row: dict[str, Any], generated: Generated, sources: Sequence[Source], seconds: float
) -> None:
    row["latency_ms"] = round(seconds * 1000, 1)
    row["answer"] = generated.text
    row["contexts"] = [s.text for s in sources]
    row["sources"] = [s.doc_id for s in sources]
    perplexity = am.perplexity(generated.token_logprobs, generated.why_no_logprobs or "")
    row["perplexity"] = perplexity.value
    if perplexity.reason:
        row["perplexity_reason"] = perplexity.reason
    else:
        row.pop("perplexity_reason", None)


class ReferenceScorer:
    """Scores rows with references in batches of SCORE_BATCH, in a thread of its own, as
    their answers arrive: the embedding similarity then runs beside this thread's retrieval
    (the embedder serialises calls that would share a model engine, see `Embedder`).

    Use it as a context manager: leaving the block stops the thread, scored or not.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.waiting: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="score")
        self._batches: list[Future[None]] = []

    def __enter__(self) -> ReferenceScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queues the rows; a batch that failed raises its error here, not at the end."""
        for batch in self._batches:
            if batch.done():
                batch.result()
        self.waiting += [row for row in rows if row["references"]]
        if len(self.waiting) >= SCORE_BATCH:
            self._submit()

    def finish(self) -> None:
        """Scores every row still waiting and waits for every batch."""
        self._submit()
        for batch in self._batches:
            batch.result()
        self._batches = []

    def _submit(self) -> None:
        if self.waiting:
            self._batches.append(self._pool.submit(score_references, self.waiting, self.embedder))
        self.waiting = []


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
