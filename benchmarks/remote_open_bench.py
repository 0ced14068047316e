"""Remote open: a new client opens a shared store and answers its first query.

Why (issue 14): a team shares one Chroma server or Pinecone index; what a client pays to open
it should grow with what changed, not with the corpus. Each store holds N chunks written
through the app's own write path (`Ingestor.write`: pending records, chunks, final records,
the keyword listeners), with clustered synthetic vectors and pseudo-word texts (a Zipf-drawn
vocabulary, so BM25 has real postings). Embedding 100k chunks would take hours on 2 cores;
what is timed here never calls the model. Stores are filled once per size and kept under
benchmarks/results/cache/remote-open (delete it to refill).

Configurations: `chroma-server` and `pinecone` keep the keyword index under RAG_DATA_DIR
(client-side hybrid); `pinecone-sparse` keeps BM25 in a Pinecone sparse index
(PINECONE_SPARSE_INDEX) beside the same dense index. Per size and configuration:

* first open: `RagApp(...)` plus its first hybrid `retrieve` with an empty RAG_DATA_DIR,
  seconds, chunk texts fetched (`Backend.fetch_nodes`), catalog records read;
* another client ingests one document; the first client's data dir opens again and
  retrieves: the same counts, which should be that document's chunks at most.
Counts come from wrapping the backend's methods, not from the code's intent. The ingested
document is deleted afterwards, so the cached store stays as filled.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Document

from benchmarks.common import (
    CHUNKS_PER_DOC,
    DIM,
    SYNTHETIC_MODEL_ID,
    chroma_server,
    clustered_vectors,
    pinecone_local,
    ratio,
    synthetic_nodes,
)
from benchmarks.ingest_bench import HashEmbedder
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.ingestion.pipeline import Ingestor, PendingDocument
from rag_app.settings import load_settings
from rag_app.stores.base import DocRecord

CACHE = Path(__file__).resolve().parent / "results" / "cache" / "remote-open"
COLLECTION = "remote_open"
PINECONE_INDEX = "remote-open"
SPARSE_INDEX = "remote-open-bm25"
VOCABULARY = 3_000
WORDS_PER_CHUNK = 40
#: Documents written per `Ingestor.write` call while filling.
FILL_DOCS = 100
#: Fresh opens per size and configuration (the median is reported).
REPEATS = 2
QUESTION = "{0} {1} {2}"
NEW_DOCUMENT_PARAGRAPHS = 6
CONFIGS = {
    "chroma-server": "chroma",
    "pinecone": "pinecone",
    "pinecone-sparse": "pinecone",
}


class SyntheticEmbedder(HashEmbedder):
    """Hash vectors under the synthetic store's model id, with whitespace tokens."""

    def __init__(self) -> None:
        Embedder.__init__(self, None, SYNTHETIC_MODEL_ID, 256, str.split)  # type: ignore[arg-type]
        self._dimension = DIM

    def embed_texts(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:  # the write path asks for none when every chunk carries its vector
            return np.zeros((0, DIM), np.float32)
        return super().embed_texts(texts, show_progress)


def vocabulary() -> list[str]:
    """Pronounceable pseudo-words (the English stemmer keeps them distinct)."""
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "da", "fe", "go"]
    words = [a + b + c + "x" for a in syllables for b in syllables for c in syllables]
    return words[:VOCABULARY]


def chunk_texts(count: int, first: int, words: list[str]) -> list[str]:
    rng = np.random.default_rng(first)
    picks = np.minimum(rng.zipf(1.3, size=(count, WORDS_PER_CHUNK)), len(words)) - 1
    return [" ".join(words[i] for i in row) for row in picks]


def fill(app: RagApp, size: int) -> float:
    """Write `size` chunks as documents of CHUNKS_PER_DOC through `Ingestor.write`."""
    began = time.perf_counter()
    words = vocabulary()
    vectors = clustered_vectors(size, seed=size)
    keyword = [app.keyword] if app.keyword else []
    ingestor = Ingestor(app.backend, app.embedder, app.chunker, keyword)
    step = FILL_DOCS * CHUNKS_PER_DOC
    for start in range(0, size, step):
        part = vectors[start : start + step]
        nodes = synthetic_nodes(part, start, chunk_texts(len(part), start, words))
        by_doc: dict[str, list] = {}
        for node in nodes:
            by_doc.setdefault(node.metadata["doc_id"], []).append(node)
        work = [
            PendingDocument(DocRecord(doc_id, f"hash-{doc_id}", len(group), doc_id), group, 0)
            for doc_id, group in by_doc.items()
        ]
        ingestor.write(work)
    app._commit_keyword()
    return time.perf_counter() - began


class Counted:
    """Counts what a backend (and a Pinecone keyword search) hands back while watched.

    Catalog reads that call one another (a whole read made of reads by key) count once.
    """

    def __init__(self, app: RagApp) -> None:
        self.chunks = 0
        self.records = 0
        self.keys_listed = 0
        self.sparse_records = 0
        self._depth = 0
        backend = app.backend
        self._wrap(backend, "fetch_nodes", "chunks")
        for name in ("read_records", "read_records_by_key", "read_records_since"):
            self._wrap(backend, name, "records")
        self._wrap(backend, "record_keys", "keys_listed")

    def _wrap(self, target: Any, name: str, counter: str) -> None:
        original = getattr(target, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            try:
                found = original(*args, **kwargs)
            finally:
                self._depth -= 1
            if self._depth == 0:
                setattr(self, counter, getattr(self, counter) + len(found or ()))
            return found

        setattr(target, name, counted)

    def watch_keyword(self, app: RagApp) -> None:
        keyword = app.keyword
        fetch = getattr(keyword, "_fetch", None)
        if fetch is None:
            return

        def counted(namespace: str, ids: Any) -> Iterator[Any]:
            for item in fetch(namespace, ids):
                self.sparse_records += 1
                yield item

        keyword._fetch = counted  # type: ignore[union-attr]


def open_and_query(settings: Any, question: str) -> dict[str, Any]:
    """A client opens the store and retrieves once; seconds and what it fetched."""
    began = time.perf_counter()
    app = RagApp(settings, embedder=SyntheticEmbedder())
    counted = Counted(app)
    counted.watch_keyword(app)
    synced_chunks = counted.chunks
    sources = app.retrieve(question, top_k=5)
    seconds = time.perf_counter() - began
    app.close()
    return {
        "seconds": round(seconds, 3),
        "chunks_fetched": counted.chunks,
        "chunks_fetched_by_sync": synced_chunks,
        "catalog_records_read": counted.records,
        "catalog_keys_listed": counted.keys_listed,
        "sparse_records_fetched": counted.sparse_records,
        "sources": len(sources),
    }


def new_document(words: list[str]) -> Document:
    paragraphs = chunk_texts(NEW_DOCUMENT_PARAGRAPHS * 8, 7, words)
    text = "\n\n".join(" ".join(paragraphs[i : i + 8]) for i in range(0, len(paragraphs), 8))
    return Document(text=text, id_="added/colleague-note.txt", metadata={"source": "note"})


def bench_config(settings: Any, workdir: Path) -> dict[str, Any]:
    words = vocabulary()
    question = QUESTION.format(*words[:3])
    first = []
    reader_dir = workdir / "reader"
    for _ in range(REPEATS):
        shutil.rmtree(reader_dir, ignore_errors=True)
        first.append(open_and_query(settings.model_copy(update={"data_dir": reader_dir}), question))
    # The colleague writes with a dense-only app (no keyword index of its own to build),
    # except with PINECONE_SPARSE_INDEX, whose sparse index every writer keeps up to date.
    retriever = "hybrid" if settings.pinecone_sparse_index else "dense"
    writer_settings = settings.model_copy(
        update={"data_dir": workdir / "writer", "retriever": retriever}
    )
    writer = RagApp(writer_settings, embedder=SyntheticEmbedder())
    added = new_document(words)
    writer.delete([added.doc_id])  # left behind by an interrupted run, if any
    try:
        report = writer.ingest_documents([added])
        record = writer.backend.documents()[added.doc_id]
        after = open_and_query(settings.model_copy(update={"data_dir": reader_dir}), question)
    finally:
        writer.delete([added.doc_id])
        writer.close()
    shutil.rmtree(workdir, ignore_errors=True)
    best = sorted(first, key=lambda r: r["seconds"])[len(first) // 2]
    return {
        "first_open": best,
        "first_open_seconds": [r["seconds"] for r in first],
        "ingested_chunks": record.n_chunks,
        "ingest_written": report.chunks_written,
        "after_ingest": after,
    }


@contextlib.contextmanager
def store_settings(store: str, size: int) -> Iterator[dict[str, Any]]:
    """A server holding `size` chunks (filled on first use, then from the cache)."""
    cache = CACHE / f"{store}-{size}"
    cache.mkdir(parents=True, exist_ok=True)
    if store == "chroma":
        with chroma_server(cache) as overrides:
            yield overrides
    else:
        with pinecone_local(cache, cache / "snapshot.json") as overrides:
            yield overrides | {"pinecone_index": PINECONE_INDEX}


def config_settings(config: str, overrides: dict[str, Any], workdir: Path) -> Any:
    sparse = {"pinecone_sparse_index": SPARSE_INDEX} if config == "pinecone-sparse" else {}
    return load_settings(
        **overrides,
        **sparse,
        collection=COLLECTION,
        data_dir=workdir / "fill",
        retriever="hybrid",
        reranker="none",
    )


def bench_size(size: int, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"size": size, "configs": {}}
    for store in ("chroma", "pinecone"):
        configs = [c for c, s in CONFIGS.items() if s == store]
        with store_settings(store, size) as overrides:
            filler = config_settings(configs[-1], overrides, workdir)
            with RagApp(filler, embedder=SyntheticEmbedder()) as app:
                if app.backend.count() < size:
                    results.setdefault("fill_seconds", {})[store] = round(fill(app, size), 1)
            shutil.rmtree(workdir / "fill", ignore_errors=True)
            for config in configs:
                settings = config_settings(config, overrides, workdir)
                print(f"[bench]   remote open {config} {size}", flush=True)
                results["configs"][config] = bench_config(settings, workdir / config)
    return results


def bench_remote_open(sizes: list[int], workdir: Path) -> dict[str, Any]:
    """Every size, then time(largest) / time(smallest) per configuration."""
    runs = [bench_size(size, workdir / f"remote-open-{size}") for size in sizes]
    summary: dict[str, Any] = {}
    small, large = runs[0], runs[-1]
    for config in CONFIGS:
        big, little = large["configs"][config], small["configs"][config]
        summary[config] = {
            "open_ratio": ratio(big["first_open"]["seconds"], little["first_open"]["seconds"]),
            "after_ingest_chunks_fetched": big["after_ingest"]["chunks_fetched"],
            "after_ingest_records_read": big["after_ingest"]["catalog_records_read"],
            "ingested_chunks": big["ingested_chunks"],
        }
    return {"sizes": sizes, "runs": runs, "summary": summary, "median_of": REPEATS}
