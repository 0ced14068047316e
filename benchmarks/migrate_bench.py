"""Migration speed: `migrate` against a raw write of the same chunks through the target's client.

Why (issue 22): moving a corpus to another vector database should cost about what writing its
vectors there costs, not a re-embedding, and reading the source and the catalog must not
dominate. N synthetic chunks (clustered 384-d vectors, as `benchmarks.common` writes them) go:
memory -> embedded Chroma, memory -> the local Pinecone server, then that Chroma collection ->
memory. Per pair, in the same run:

* raw: the same ids, vectors, texts and metadata written through the target's own client
  (chromadb `collection.upsert` in its maximum batches; the Pinecone SDK's `upsert` in requests
  of 1000 vectors; `MemoryVectorStore.add` + `persist`) into a fresh collection;
* migrate: `rag_app.migration.run.migrate`, which also writes the catalog and builds the
  target's keyword index (its verification is timed separately);
* raw read: every chunk with its vector read through the source's own client;
* a fresh reader (new backend object) opens the target and answers a top-10 query.
The target is <= 1.3x the raw write.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import MetadataMode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from benchmarks.common import (
    DIM,
    TOP_K,
    UPSERT_BATCH,
    clustered_vectors,
    fill_backend,
    pinecone_local,
    ratio,
    synthetic_nodes,
)
from rag_app.migration.run import migrate
from rag_app.migration.targets import target_settings
from rag_app.settings import Settings, load_settings
from rag_app.stores.memory.vector_store import MemoryVectorStore
from rag_app.stores.pinecone import split_upserts
from rag_app.stores.registry import open_backend

COLLECTION = "migrate"
TARGET_RATIO = 1.3


def bench_migrate(size: int, workdir: Path) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    vectors = clustered_vectors(size, seed=22)
    source = load_settings(data_dir=workdir / "source", collection=COLLECTION, retriever="hybrid")
    backend = open_backend(source, lambda: DIM)
    fill_seconds = fill_backend(backend, vectors)
    backend.close()
    probe = vectors[size // 3].tolist()
    pairs: dict[str, Any] = {}
    chroma_target = {"chroma_path": workdir / "chroma"}
    pairs["memory->chroma"] = _pair(
        source, "chroma", chroma_target, lambda: _raw_chroma(vectors, workdir / "raw-chroma"), probe
    )
    with pinecone_local(workdir) as pinecone:
        host = {"pinecone_host": pinecone["pinecone_host"], "pinecone_index": "migrate-bench"}
        pairs["memory->pinecone"] = _pair(
            source, "pinecone", host, lambda: _raw_pinecone(vectors, host["pinecone_host"]), probe
        )
    from_chroma = source.model_copy(
        update={"vector_store": "chroma", "chroma_path": workdir / "chroma"}
    )
    pairs["chroma->memory"] = _pair(
        from_chroma,
        "memory",
        {"data_dir": workdir / "back"},
        lambda: _raw_memory(vectors, workdir / "raw-memory"),
        probe,
    )
    return {"size": size, "dimension": DIM, "fill_source_s": round(fill_seconds, 1), "pairs": pairs}


def _pair(
    source: Settings, to: str, target: dict[str, Any], raw: Any, probe: list[float]
) -> dict[str, Any]:
    raw_seconds = raw()
    read_seconds = _raw_read(source)
    began = time.perf_counter()
    report = migrate(source, to, verify=True, **target)
    verify_seconds = time.perf_counter() - began - report.seconds
    began = time.perf_counter()
    reader = open_backend(target_settings(source, to, **target), lambda: DIM)
    hits = reader.query(probe, TOP_K)
    reader_seconds = time.perf_counter() - began
    reader.close()
    return {
        "chunks": report.chunks,
        "raw_write_s": round(raw_seconds, 2),
        "migrate_s": round(report.seconds, 2),
        "chunks_per_s": round(report.chunks / report.seconds),
        "raw_chunks_per_s": round(report.chunks / raw_seconds),
        "ratio_to_raw": ratio(report.seconds, raw_seconds),
        "raw_read_s": round(read_seconds, 2),
        "ratio_to_raw_read_and_write": ratio(report.seconds, read_seconds + raw_seconds),
        "fresh_reader_query_s": round(reader_seconds, 2),
        "fresh_reader_hits": len(hits),
        "verify_s": round(verify_seconds, 1),
        "verified": bool(report.verification and report.verification.ok),
    }


def _raw_read(source: Settings) -> float:
    """Seconds to read every chunk with its vector through the source's own client."""
    began = time.perf_counter()
    if source.vector_store == "chroma":
        import chromadb

        client = chromadb.PersistentClient(path=str(source.chroma_path))
        collection = client.get_collection(COLLECTION)
        batch, offset = client.get_max_batch_size(), 0
        include = ["embeddings", "documents", "metadatas"]
        while got := collection.get(limit=batch, offset=offset, include=include)["ids"]:
            offset += len(got)
    else:
        store = MemoryVectorStore.from_persist_dir(
            str(source.data_dir / "memory" / COLLECTION / "vectors")
        )
        ids = store.node_ids()
        for start in range(0, len(ids), UPSERT_BATCH):
            store.get_embedded(ids[start : start + UPSERT_BATCH])
    return time.perf_counter() - began


def _chunks(vectors: np.ndarray, start: int) -> list:
    return synthetic_nodes(vectors[start : start + UPSERT_BATCH], start)


def _raw_chroma(vectors: np.ndarray, path: Path) -> float:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection(
        "raw", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    batch = client.get_max_batch_size()
    began = time.perf_counter()
    for start in range(0, vectors.shape[0], batch):
        nodes = synthetic_nodes(vectors[start : start + batch], start)
        collection.upsert(
            ids=[n.node_id for n in nodes],
            embeddings=vectors[start : start + batch],
            documents=[n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            metadatas=[node_to_metadata_dict(n, remove_text=True) for n in nodes],
        )
    return time.perf_counter() - began


def _raw_pinecone(vectors: np.ndarray, host: str) -> float:
    from pinecone import Pinecone, ServerlessSpec

    client = Pinecone(api_key="pclocal", host=host)
    client.create_index(
        name="migrate-raw",
        dimension=DIM,
        metric="cosine",
        spec=ServerlessSpec(cloud="aws", region="us-east-1"),
    )
    index = client.Index(
        host="http://" + client.describe_index("migrate-raw").host.split("://")[-1]
    )
    began = time.perf_counter()
    for start in range(0, vectors.shape[0], UPSERT_BATCH):
        entries = [
            {
                "id": n.node_id,
                "values": n.get_embedding(),
                "metadata": node_to_metadata_dict(n, remove_text=False, flat_metadata=False),
            }
            for n in _chunks(vectors, start)
        ]
        for part in split_upserts(entries):
            index.upsert(vectors=part, show_progress=False)
    return time.perf_counter() - began


def _raw_memory(vectors: np.ndarray, path: Path) -> float:
    store = MemoryVectorStore()
    began = time.perf_counter()
    for start in range(0, vectors.shape[0], UPSERT_BATCH):
        store.add(_chunks(vectors, start))
    store.persist(str(path))
    return time.perf_counter() - began


def migrate_targets(results: dict[str, Any]) -> list[tuple[str, str, float | None, float]]:
    """(name, target, value, limit) per pair, for the report's targets table."""
    found = []
    bench = results.get("migrate")
    for pair, row in (bench or {}).get("pairs", {}).items():
        found.append(
            (
                f"migrate {pair} {bench['size'] // 1000}k: time / raw write",
                f"<= {TARGET_RATIO}x",
                row["ratio_to_raw"],
                TARGET_RATIO,
            )
        )
    return found


def migrate_section(results: dict[str, Any], table: Any) -> list[str]:
    bench = results.get("migrate")
    if not bench:
        return []
    header = [
        "pair",
        "chunks",
        "migrate s",
        "chunks/s",
        "raw write s",
        "raw chunks/s",
        "migrate / raw",
        "raw read s",
        "migrate / (raw read + write)",
        "fresh reader query s",
        "verify s",
        "verified",
    ]
    rows = [
        (
            pair,
            r["chunks"],
            r["migrate_s"],
            r["chunks_per_s"],
            r["raw_write_s"],
            r["raw_chunks_per_s"],
            r["ratio_to_raw"],
            r.get("raw_read_s"),
            r.get("ratio_to_raw_read_and_write"),
            r["fresh_reader_query_s"],
            r["verify_s"],
            r["verified"],
        )
        for pair, r in bench["pairs"].items()
    ]
    return [
        f"## Migrate: {bench['size'] // 1000}k x {bench['dimension']}-d chunks between stores",
        "",
        "`rag-app migrate` (no re-embedding) against writing the same ids, vectors, texts and",
        "metadata through the target's own client in the same run (chromadb `upsert`, the",
        "Pinecone SDK's `upsert`, `MemoryVectorStore.add` + `persist`). The migration also reads",
        "the source and its catalog, writes the catalog and builds the keyword index. A fresh",
        "reader then opens the target and answers a top-10 query. `raw read`: every chunk with",
        "its vector read through the source's own client (chromadb `get`; the memory store's",
        "rows), a cost no target can save. Chroma -> memory copies the source's keyword index",
        "(built by the memory -> Chroma step) instead of tokenizing again. `verify`: the",
        "comparison that follows by default (counts, catalog, 50 sampled queries, `docs check`).",
        "",
        *table(header, rows),
    ]
