"""Retrieve-only latency at store scale, against the raw backend call, and HNSW recall.

Why: a RAG app's query path should cost little more than the vector database call it wraps.
Each backend holds N synthetic chunks (clustered unit vectors, written through
`Backend.upsert` plus catalog records, as an ingest would leave them); `RagApp.retrieve` runs
in dense mode with a fixed query embedding (no model in the loop), and the same probes go to
the raw call: numpy matmul + argpartition and `MemoryVectorStore.query` for memory, the faiss
graph for memory-HNSW, `collection.query` for Chroma, `index.query` for Pinecone. "Framework
overhead" is app p50 - raw p50. LlamaIndex's SimpleVectorStore is timed on the same vectors.
Recall@10 of every approximate backend is measured against exact search on those vectors.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.simple import SimpleVectorStoreData
from llama_index.core.vector_stores.types import VectorStoreQuery

from benchmarks.common import (
    CHUNK_SPAN,
    CHUNKS_PER_DOC,
    TOP_K,
    FixedQueryEmbedder,
    backend_settings,
    clustered_vectors,
    exact_top_k,
    fill_backend,
    latencies,
    paired_latencies,
    percentiles_ms,
    query_probes,
    ratio,
)
from rag_app.answers.types import Source
from rag_app.app import RagApp
from rag_app.settings import load_settings
from rag_app.stores.base import chunk_ids

SIMPLE_QUERIES = {10_000: 20, 100_000: 5}


def row_ids(count: int) -> list[str]:
    """Chunk id of each synthetic row (as `synthetic_nodes` names them)."""
    ids: list[str] = []
    for doc in range(-(-count // CHUNKS_PER_DOC)):
        ids += chunk_ids(f"synthetic/doc-{doc}", min(CHUNKS_PER_DOC, count - doc * CHUNKS_PER_DOC))
    return ids


def recall(found: list[list[str]], truth: np.ndarray, ids: list[str]) -> float:
    hits = sum(
        len(set(f) & {ids[r] for r in row}) for f, row in zip(found, truth.tolist(), strict=True)
    )
    return round(hits / (TOP_K * len(found)), 4)


def bench_size(
    size: int, backends: list[str], queries: int, workdir: Path, with_simple: bool
) -> dict[str, Any]:
    vectors = clustered_vectors(size, seed=size)
    probes = query_probes(vectors, queries, seed=7)
    probe_lists = [p.tolist() for p in probes]
    truth = exact_top_k(vectors, probes)
    ids = row_ids(size)
    report: dict[str, Any] = {"size": size, "queries": queries, "backends": {}}
    for name in backends:
        report["backends"][name] = bench_backend(name, vectors, probe_lists, truth, ids, workdir)
        gc.collect()
    if with_simple:
        report["simple_vector_store"] = bench_simple(vectors, probe_lists, ids)
    return report


def _numpy_top_k(matrix: np.ndarray, probe: np.ndarray) -> np.ndarray:
    scores = matrix @ probe
    part = np.argpartition(-scores, TOP_K - 1)[:TOP_K]
    return part[np.argsort(-scores[part])]


def bench_backend(
    name: str,
    vectors: np.ndarray,
    probes: list[list[float]],
    truth: np.ndarray,
    ids: list[str],
    workdir: Path,
) -> dict[str, Any]:
    store = "memory" if name.startswith("memory") else name
    index = "hnsw" if name == "memory-hnsw" else "exact"
    with backend_settings(store, workdir) as overrides:
        settings = load_settings(
            data_dir=workdir / f"scale-{name}-{vectors.shape[0]}",
            retriever="dense",
            top_k=TOP_K,
            memory_index=index,
            **overrides,
        )
        embedder = FixedQueryEmbedder()
        app = RagApp(settings, collection=f"scale{vectors.shape[0]}", embedder=embedder)
        try:
            return _measure(app, embedder, vectors, probes, truth, ids)
        finally:
            app.backend.drop()
            app.close()


def _measure(
    app: RagApp,
    embedder: FixedQueryEmbedder,
    vectors: np.ndarray,
    probes: list[list[float]],
    truth: np.ndarray,
    ids: list[str],
) -> dict[str, Any]:
    fill_s = fill_backend(app.backend, vectors)
    found: dict[int, list[str]] = {}

    def retrieve(number: int) -> None:
        embedder.next_query = probes[number]
        found[number] = [_chunk_id(s) for s in app.retrieve("benchmark query", TOP_K)]

    raw = {label: _on_probe(call, probes) for label, call in raw_calls(app).items()}
    seconds = paired_latencies({"app": retrieve, **raw}, range(len(probes)))
    result: dict[str, Any] = {"fill_s": round(fill_s, 1)}
    result.update({label: percentiles_ms(s) for label, s in seconds.items()})
    raw_p50 = result[next(iter(raw))]["p50_ms"]
    result["overhead_p50_ms"] = round(result["app"]["p50_ms"] - raw_p50, 3)
    result["app_over_raw_p50"] = ratio(result["app"]["p50_ms"], raw_p50)
    result["recall_at_10"] = recall([found[n] for n in range(len(probes))], truth, ids)
    return result


def _on_probe(
    call: Callable[[list[float]], object], probes: list[list[float]]
) -> Callable[[int], object]:
    return lambda number: call(probes[number])


def _chunk_id(source: Source) -> str:
    """The chunk id of a synthetic source (its position is encoded in its start offset)."""
    index = (source.start_char or 0) // CHUNK_SPAN
    return chunk_ids(source.doc_id, index + 1, index)[0]


def raw_calls(app: RagApp) -> dict[str, Callable[[list[float]], object]]:
    """The backend's own query call(s), first one = the baseline for framework overhead."""
    backend = app.backend
    if backend.name == "memory":
        store = backend.vector_store
        calls: dict[str, Callable[[list[float]], object]] = {}
        if store.index == "hnsw":
            calls["raw_faiss"] = lambda p: _faiss_search(store, p)
        calls["raw_store_query"] = lambda p: store.query(
            VectorStoreQuery(query_embedding=p, similarity_top_k=TOP_K)
        )
        table = store._table
        calls["raw_numpy"] = lambda p: _numpy_top_k(
            table.matrix[: table.size], np.asarray(p, dtype=np.float32)
        )
        calls["raw_numpy_1_thread"] = lambda p: _one_blas_thread(
            lambda: _numpy_top_k(table.matrix[: table.size], np.asarray(p, dtype=np.float32))
        )
        return calls
    if backend.name == "chroma":
        collection = backend.collection  # type: ignore[attr-defined]
        return {
            "raw_collection_query": lambda p: collection.query(
                query_embeddings=[p], n_results=TOP_K
            )
        }
    index, namespace = backend.index, backend.namespace  # type: ignore[attr-defined]
    return {
        "raw_index_query": lambda p: index.query(
            vector=p, top_k=TOP_K, namespace=namespace, include_metadata=True
        )
    }


def _one_blas_thread(action: Callable[[], object]) -> object:
    """Run `action` with one BLAS thread (~0.05 ms to switch).

    Why measured: on a busy 2-core machine a two-thread matrix-vector product waits for its
    second thread to be scheduled (~12 ms whatever the size), while the product is
    memory-bound and gains little from that thread.
    """
    with _blas().limit(limits=1, user_api="blas"):
        return action()


@functools.cache
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _faiss_search(store: Any, probe: list[float]) -> object:
    import faiss

    table = store._table
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(store.hnsw_ef_search, TOP_K)
    vector = np.asarray(probe, dtype=np.float32).reshape(1, -1)
    return table.hnsw.search(vector, TOP_K, params=params)


def bench_simple(vectors: np.ndarray, probes: list[list[float]], ids: list[str]) -> dict[str, Any]:
    """LlamaIndex's SimpleVectorStore on the same vectors (a dict of Python lists)."""
    store = SimpleVectorStore(
        data=SimpleVectorStoreData(embedding_dict=dict(zip(ids, vectors.tolist(), strict=True)))
    )
    count = SIMPLE_QUERIES.get(vectors.shape[0], 5)

    def query(probe: list[float]) -> object:
        return store.query(VectorStoreQuery(query_embedding=probe, similarity_top_k=TOP_K))

    return percentiles_ms(latencies(query, probes[:count], warmup=1))
