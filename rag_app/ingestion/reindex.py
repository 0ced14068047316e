"""`rag-app reindex`: re-embed a collection with RAG_EMBED_MODEL from its stored chunk texts.

Why: the source files of a collection may be gone, and a new embedding model (e5 replacing
MiniLM) must not mean re-ingesting them. No LlamaIndex store offers "re-embed in place", and a
new model may have another dimension, which a Chroma collection or a memory matrix cannot
change; so the collection is rebuilt from a snapshot through the `Backend` API every store has.

Steps, each safe to interrupt (Ctrl-C, kill -9) and resumed by re-running the command:
1. snapshot: every chunk (text, offsets, metadata) and catalog record is written atomically to
   a file under RAG_DATA_DIR/reindex/ before anything in the store changes;
2. embed: the snapshot's chunk texts go through the embedding cache in groups, so a re-run
   embeds only what a killed run had not reached;
3. rebuild: the collection is dropped, re-created with the new dimension and rewritten from
   the snapshot and the cached vectors, the manifest naming the new model last;
4. the snapshot is removed. A re-run that finds a snapshot resumes at step 2.

A Pinecone index keeps its dimension: there, a model of another dimension is refused when the
index is opened, before anything changes (ingest the sources into another PINECONE_INDEX).

Chunk boundaries and catalog records are kept as they are: the keyword index stays valid, and
a later ingest of the same source files re-chunks them to the new model's sizes (a document's
content hash includes the model).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core.schema import TextNode
from tqdm.auto import tqdm

from rag_app.embeddings.models import Embedder
from rag_app.ingestion.pipeline import GROUP_CHUNKS
from rag_app.settings import Settings
from rag_app.stores.base import MANIFEST_KEY, Backend, batched, searched_text
from rag_app.stores.registry import open_backend
from rag_app.util.files import write_atomically


@dataclass
class ReindexReport:
    documents: int = 0
    chunks: int = 0
    texts_embedded: int = 0
    resumed: bool = False
    seconds: float = 0.0
    previous_model: str = ""

    def summary(self, model_id: str) -> str:
        if not self.chunks and not self.resumed and self.previous_model == model_id:
            return f"nothing to do: the collection is already embedded with {model_id!r}"
        resumed = " (resumed)" if self.resumed else ""
        return (
            f"re-embedded {self.chunks} chunks of {self.documents} documents from "
            f"{self.previous_model!r} to {model_id!r}{resumed}; {self.texts_embedded} texts "
            f"embedded in {self.seconds:.1f} s"
        )


def reindex(
    settings: Settings, embedder: Embedder, collection: str | None = None, show_progress=False
) -> ReindexReport:
    """Re-embed `collection` (default RAG_COLLECTION) with `embedder`; see the module doc."""
    started = time.perf_counter()
    embedded_before = embedder.texts_embedded
    backend = open_backend(settings, lambda: embedder.dimension, collection)
    backend.check_dimension(embedder.dimension)
    snapshot_path = _snapshot_path(settings, backend)
    report = ReindexReport(resumed=snapshot_path.exists())
    try:
        snapshot = _load_or_take_snapshot(backend, snapshot_path, embedder)
        if snapshot is None:
            report.previous_model = embedder.model_id
            return report
        report.previous_model = snapshot["records"].get(MANIFEST_KEY, {}).get("embed_model", "")
        nodes = [TextNode.from_dict(n) for n in snapshot["nodes"]]
        _embed(embedder, nodes, show_progress)
        backend.drop()
        backend.close()
        backend = open_backend(settings, lambda: embedder.dimension, collection)
        _rebuild(backend, embedder, nodes, snapshot["records"])
        snapshot_path.unlink()
        report.documents = len(snapshot["records"]) - (MANIFEST_KEY in snapshot["records"])
        report.chunks = len(nodes)
    finally:
        backend.close()
    report.texts_embedded = embedder.texts_embedded - embedded_before
    report.seconds = time.perf_counter() - started
    return report


def _snapshot_path(settings: Settings, backend: Backend) -> Path:
    where = f"{backend.name}|{backend.location}|{getattr(backend, 'namespace', '')}"
    digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]
    return settings.data_dir / "reindex" / f"{backend.name}-{digest}.json"


def _load_or_take_snapshot(
    backend: Backend, path: Path, embedder: Embedder
) -> dict[str, Any] | None:
    """The snapshot to rebuild from; None when the store already uses the embedder's model."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    records = backend.read_records()
    if records.get(MANIFEST_KEY, {}).get("embed_model") in (None, embedder.model_id):
        return None
    ids = [i for r in backend.documents().values() for i in r.chunk_ids()]
    found = {}
    for part in batched(ids, GROUP_CHUNKS):
        found.update(backend.fetch_nodes(part))
    snapshot = {"records": records, "nodes": [found[i].to_dict() for i in ids if i in found]}
    write_atomically(path, json.dumps(snapshot, ensure_ascii=False))
    return snapshot


def _embed(embedder: Embedder, nodes: list[TextNode], show_progress: bool) -> None:
    """Every chunk's vector, group by group through the cache (what a kill keeps)."""
    bar = tqdm(total=len(nodes), unit="chunk", desc="embed", disable=not show_progress)
    with bar:
        for group in batched(nodes, GROUP_CHUNKS):
            vectors = embedder.embed_texts([searched_text(n) for n in group])
            for node, vector in zip(group, vectors, strict=True):
                node.embedding = vector.tolist()
            bar.update(len(group))


def _rebuild(
    backend: Backend, embedder: Embedder, nodes: list[TextNode], records: dict[str, Any]
) -> None:
    documents = {k: v for k, v in records.items() if k != MANIFEST_KEY}
    for group in batched(nodes, GROUP_CHUNKS):
        backend.upsert(group)
    backend.flush()
    if documents:
        backend.write_records(documents)
    backend.write_records(
        {MANIFEST_KEY: {"embed_model": embedder.model_id, "dimension": embedder.dimension}}
    )
