"""Ingestion throughput per backend against the model's own batch call, and re-ingest.

Why: embedding dominates ingestion with a local model, so the honest question is how much the
app adds around `model.encode` (chunk bookkeeping, cache, catalog, store writes, keyword
index). Each backend ingests the same XQuAD articles into a fresh data directory (a fresh
embedding cache, so every chunk is really embedded), and its baseline is the raw encode of the
very same chunk texts measured just before and just after it (the mean of the two, so that load
from other processes drifts into both sides alike). Then the unchanged corpus is ingested again:
it must take a few percent of the first ingest and embed nothing. Hybrid vs dense retrieve is
timed on the whole XQuAD text (English and Chinese, real questions) in the memory backend.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Document

from benchmarks.common import backend_settings, paired_latencies, percentiles_ms, ratio, timed
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, EmbeddingCache
from rag_app.ingestion.chunking import Chunker, default_chunk_size
from rag_app.ingestion.loaders import SquadQuestion, read_squad
from rag_app.ingestion.pipeline import Ingestor, IngestReport
from rag_app.settings import load_settings
from rag_app.stores.base import searched_text

HYBRID_QUESTIONS = 60


def corpus(path: Path, articles: int) -> tuple[list[Document], list[SquadQuestion]]:
    documents, questions = read_squad(path)
    kept = documents[:articles]
    ids = {d.doc_id for d in kept}
    return kept, [q for q in questions if q.doc_id in ids]


def chunk_texts(embedder: Embedder, documents: list[Document]) -> list[str]:
    """Exactly the texts an ingest with default settings embeds (chunk text under its title)."""
    settings = load_settings()
    size = settings.chunk_size or default_chunk_size(embedder.max_tokens)
    chunker = Chunker(size, settings.chunk_overlap, embedder.tokenize)
    ingestor = Ingestor(None, embedder, chunker)  # type: ignore[arg-type] - only chunks
    return [searched_text(n) for d in documents for n in ingestor._nodes(d)]


def raw_encode_seconds(embedder: Embedder, texts: list[str], batch_size: int) -> float:
    """The model's own batch call, any model: LlamaIndex's embedding call without the app."""
    model = embedder.model
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    return timed(lambda: [model._get_text_embeddings(b) for b in batches])


def warm_up(embedder: Embedder, documents: list[Document], workdir: Path) -> float:
    """One throwaway ingest, so one-time costs of a process (lazy imports and initialisation
    in the chunker, the keyword index and the embedding call) land in no backend's figure."""
    report = bench_backend("memory", embedder, documents, workdir / "warm-up", rounds=1)
    return report["ingest_s"]


def bench_backend(
    name: str, embedder: Embedder, documents: list[Document], workdir: Path, rounds: int = 2
) -> dict[str, Any]:
    """First ingests vs raw encodes, alternating; then re-ingest and a warm-cache ingest.

    Each round ingests into a fresh collection with a fresh embedding cache, between two raw
    encodes of the same texts (raw, ingest, raw, ingest, raw): a burst of load from another
    process then hits both sides of the ratio alike.
    """
    texts = chunk_texts(embedder, documents)
    batch = load_settings().embed_batch_size
    raws = [raw_encode_seconds(embedder, texts, batch)]
    ingests: list[float] = []
    with backend_settings(name, workdir) as overrides:
        for number in range(rounds):
            settings = load_settings(data_dir=workdir / f"ingest-{name}-{number}", **overrides)
            embedder.cache = EmbeddingCache(settings.data_dir / "embedding_cache.sqlite")
            app = RagApp(settings, collection=f"bench_ingest_{number}", embedder=embedder)
            try:
                first = app.ingest_documents(documents)
                ingests.append(first.seconds)
                raws.append(raw_encode_seconds(embedder, texts, batch))
                if number == rounds - 1:
                    return _summary(first, raws, ingests, *_rerun(app, documents))
            finally:
                app.backend.drop()
                app.close()
    raise ValueError("rounds must be at least 1")


def _rerun(app: RagApp, documents: list[Document]) -> tuple[IngestReport, float]:
    again = app.ingest_documents(documents)
    return again, _ingest_with_warm_cache(app, documents)


def _summary(
    first: IngestReport,
    raws: list[float],
    ingests: list[float],
    again: IngestReport,
    warm: float,
) -> dict[str, Any]:
    raw, ingest = statistics.mean(raws), statistics.mean(ingests)
    return {
        "chunks": first.chunks_written,
        "raw_encode_s": round(raw, 2),
        "raw_encode_s_each": [round(r, 2) for r in raws],
        "ingest_s": round(ingest, 2),
        "ingest_s_each": [round(i, 2) for i in ingests],
        "raw_chunks_per_s": round(first.chunks_written / raw, 2),
        "ingest_chunks_per_s": round(first.chunks_written / ingest, 2),
        "ingest_over_raw": ratio(ingest, raw, 3),
        "texts_embedded": first.texts_embedded,
        "reingest_s": round(again.seconds, 3),
        "reingest_over_first": ratio(again.seconds, first.seconds, 4),
        "reingest_texts_embedded": again.texts_embedded,
        "reingest_unchanged": len(again.unchanged),
        "warm_cache_ingest_s": round(warm, 3),
        "overhead_over_raw": ratio(raw + warm, raw, 3),
    }


def _ingest_with_warm_cache(app: RagApp, documents: list[Document]) -> float:
    """Seconds of a full ingest whose every embedding is cached: all the app adds to encode.

    Far less noisy than the difference of two encode timings on a shared CPU.
    """
    app.delete([d.doc_id for d in documents])
    report = app.ingest_documents(documents)
    if report.texts_embedded:
        raise RuntimeError(f"warm-cache ingest embedded {report.texts_embedded} texts")
    return report.seconds


class HashEmbedder(Embedder):
    """Deterministic pseudo-embeddings from a text's hash, with the real model's tokenizer.

    Retrieve latency does not depend on what the vectors mean, and the chunks are the real
    ones (same tokenizer, same chunk size), so a whole real-text corpus can be ingested in
    seconds instead of minutes of encoding.
    """

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(None, "bench:hash", embedder.max_tokens, embedder.tokenize)  # type: ignore[arg-type]
        self._dimension = embedder.dimension

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dimension, dtype=np.float32)

    def embed_texts(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text).tolist()


def bench_hybrid_vs_dense(embedder: Embedder, paths: list[Path], workdir: Path) -> dict[str, Any]:
    """Retrieve latency in hybrid and dense mode over one real-text store, interleaved."""
    documents: list[Document] = []
    asked: list[str] = []
    for path in paths:
        found, questions = read_squad(path)
        documents += found
        asked += [q.question for q in questions[: HYBRID_QUESTIONS // len(paths)]]
    embed_s = [timed(lambda q=q: embedder.embed_query(q)) for q in asked[:10]]
    settings = load_settings(data_dir=workdir / "hybrid", vector_store="memory")
    app = RagApp(settings, collection="bench_hybrid", embedder=HashEmbedder(embedder))
    try:
        app.ingest_documents(documents)
        chunks = app.backend.count()
        seconds = paired_latencies(
            {mode: _retrieve_in(app, mode) for mode in ("dense", "hybrid")}, asked
        )
    finally:
        app.backend.drop()
        app.close()
    dense, hybrid = (percentiles_ms(seconds[m]) for m in ("dense", "hybrid"))
    return {
        "corpus": [p.name for p in paths],
        "chunks": chunks,
        "questions": len(asked),
        "query_embedding": percentiles_ms(embed_s),
        "dense": dense,
        "hybrid": hybrid,
        "hybrid_over_dense_p50": ratio(hybrid["p50_ms"], dense["p50_ms"]),
        "hybrid_minus_dense_p50_ms": round(hybrid["p50_ms"] - dense["p50_ms"], 2),
    }


def _retrieve_in(app: RagApp, mode: str) -> Callable[[str], object]:
    def retrieve(question: str) -> object:
        app.retriever.mode = mode  # type: ignore[assignment]
        return app.retrieve(question, top_k=5)

    return retrieve


def bench_batch_sizes(
    embedder: Embedder, texts: list[str], sizes: list[int], rounds: int = 2
) -> dict[str, Any]:
    """Chunks/s of the app's embedding call per RAG_EMBED_BATCH_SIZE, vs the default 64.

    Also times the call as it was before texts were sorted by length (the model fed in
    document order at 64), the baseline of that change. Runs alternate in order (forward,
    then backward) so drifting load from other processes hits every run alike; the figure
    per run is its mean over the rounds.
    """
    model, cache = embedder.model, embedder.cache
    default = model.embed_batch_size
    runs = {str(size): _embed_at(embedder, texts, size) for size in sizes}
    runs[UNSORTED] = _embed_at(embedder, texts, 64, unsorted=True)
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    embedder.cache = None  # every run embeds every text
    try:
        for round_number in range(rounds):
            order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
            for label in order:
                seconds[label].append(timed(runs[label]))
    finally:
        model.embed_batch_size = default
        embedder.cache = cache
    rates = {label: len(texts) / statistics.mean(s) for label, s in seconds.items()}
    return {
        "texts": len(texts),
        "chunks_per_s": {label: round(rate, 2) for label, rate in rates.items()},
        "over_64": {label: ratio(rate, rates["64"], 3) for label, rate in rates.items()},
        "best": max((str(s) for s in sizes), key=rates.__getitem__),
    }


UNSORTED = "64, unsorted (before)"


def _embed_at(
    embedder: Embedder, texts: list[str], size: int, unsorted: bool = False
) -> Callable[[], object]:
    def run() -> object:
        embedder.model.embed_batch_size = size
        if unsorted:
            return embedder.model.get_text_embedding_batch(texts)
        return embedder.embed_texts(texts)

    return run
