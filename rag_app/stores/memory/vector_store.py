"""In-process vector store for the "memory" backend, sized for a million chunks.

Why hand-written: LlamaIndex's ``SimpleVectorStore`` keeps embeddings as a dict of Python
lists (one top-10 query over 100k x 384 takes ~2 s) and persists them as JSON (20k chunks
-> 161 MB), and it does not store text. faiss alone is fast but has no node ids, no text and
no metadata filters. This store keeps:

* the vectors in one contiguous float32 matrix, rows L2-normalised at insert, grown by
  amortised doubling (``ndarray.resize``, which reallocates in place where the allocator can),
  so exact cosine search is one matrix-vector product plus ``np.argpartition``;
* ids, texts, metadata dicts and start/end offsets in parallel lists/arrays, with the
  ``ref_doc_id`` and the excluded-metadata-key lists interned as small integer codes;
* optionally a faiss ``IndexHNSWFlat`` (inner product over the normalised rows).

Deletes swap-remove rows (the last rows move into the holes). HNSW cannot remove vectors, so
deleted or overwritten rows become tombstoned HNSW labels that a faiss ``IDSelectorBitmap``
hides at search time; the graph is rebuilt lazily on the next query once more than
``HNSW_REBUILD_DEAD_FRACTION`` of its labels are dead.

``VectorStoreQueryMode.MMR`` is served too, with LlamaIndex's ``get_top_k_mmr_embeddings``
(``mmr_threshold``) over the best candidates by cosine (``mmr_prefetch_k`` or
``mmr_prefetch_factor``), as SimpleVectorStore does over every row.

Filter rule in HNSW mode: metadata filters and ``doc_ids``/``node_ids`` restrictions are
evaluated exactly to a row mask first. If the mask keeps fewer than
``HNSW_MIN_FILTER_FRACTION`` of the rows, the query runs as an exact search over the masked
rows (cheap, and graph search recall collapses on selective filters); otherwise HNSW searches
with the mask as its selector, and falls back to exact search if it returns fewer than top-k
hits.

Persistence (``persist(dir)`` / ``MemoryVectorStore.from_persist_dir(dir)``): a directory
holding ``vectors-<gen>.npy``, ``records-<gen>.json`` (ids, texts, metadata, offsets, codes),
optionally ``hnsw-<gen>.faiss`` + ``hnsw_labels-<gen>.npy``, and ``manifest.json`` naming the
current generation and a random stamp. New generation files are written under temporary names,
fsynced and renamed, then the manifest is replaced atomically; a crash at any point leaves the
previous generation loadable. Old generations are removed after the switch.

Many writers (processes, or several stores in one process) share one directory safely: every
load and persist holds the directory's ``filelock`` lock, and the store remembers which
generation (stamp) its rows are based on plus the ids it added or deleted since. If another
writer persisted meanwhile, ``persist`` first loads that generation and replays its own changes
onto it (merge on write), so no writer overwrites another's chunks. ``refresh(dir)`` does the
same merge for a reader; it costs one ``stat`` of the manifest when nothing changed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import (
    BaseNode,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from rag_app.stores.base import StoredChunk
from rag_app.stores.memory.generations import (
    FORMAT_VERSION,
    LOCK_NAME,
    MANIFEST_NAME,
    fsync_dir,
    is_local_fs,
    read_manifest,
    remove_stale_files,
    stamp_of,
    write_durably,
)
from rag_app.stores.memory.table import HnswParams, RowTable, load_table
from rag_app.util.files import file_signature, locked

#: MMR re-ranks this many times top-k of the best candidates by cosine (not every row, which
#: SimpleVectorStore does: its Python loop over a million rows would take minutes).
MMR_PREFETCH_FACTOR = 4.0

# ---------------------------------------------------------------------------------------------
# The LlamaIndex vector store
# ---------------------------------------------------------------------------------------------


class MemoryVectorStore(BasePydanticVectorStore):
    """Exact (or HNSW) cosine search over an in-memory float32 matrix with metadata filters."""

    stores_text: bool = True
    index: Literal["exact", "hnsw"] = Field(default="exact", description="Search structure.")
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_construction: int = Field(default=200, ge=1)
    hnsw_ef_search: int = Field(default=64, ge=1)

    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _table: RowTable = PrivateAttr(default_factory=RowTable)
    #: Stamp of the persisted generation the rows are based on (None: not loaded from disk).
    _stamp: str | None = PrivateAttr(default=None)
    #: Ids added (True) or deleted (False) since that generation: what a merge replays.
    _changes: dict[str, bool] = PrivateAttr(default_factory=dict)
    #: ``stat`` of the manifest when last compared, so an unchanged directory costs one stat.
    _seen: tuple[int, int, int] | None = PrivateAttr(default=None)

    def __init__(
        self,
        index: Literal["exact", "hnsw"] = "exact",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        hnsw_ef_search: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            index=index,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_search=hnsw_ef_search,
            **kwargs,
        )

    @classmethod
    def class_name(cls) -> str:
        return "MemoryVectorStore"

    @property
    def client(self) -> None:
        return None

    @property
    def dimension(self) -> int | None:
        """Embedding dimension fixed by the first add (None while the store is empty)."""
        return self._table.dim

    @property
    def count(self) -> int:
        """Number of stored nodes."""
        return self._table.size

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Insert nodes; a node whose id is already stored is overwritten."""
        self.add_embedded(nodes, None)
        return [node.node_id for node in nodes]

    def add_embedded(self, nodes: Sequence[BaseNode], vectors: np.ndarray | None) -> None:
        """`add` with the vectors as a matrix (row i is node i's) instead of `embedding`."""
        if nodes:
            with self._lock:
                self._table.add(nodes, vectors)
                self._changes.update((node.node_id, True) for node in nodes)

    def add_chunks(self, chunks: Sequence[StoredChunk], vectors: np.ndarray) -> None:
        """`add_embedded` of plain chunks (a copy from another store, no nodes made)."""
        if chunks:
            with self._lock:
                self._table.add_chunks(chunks, vectors)
                self._changes.update((chunk.id, True) for chunk in chunks)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose ref_doc_id is exactly ``ref_doc_id``."""
        with self._lock:
            table = self._table
            code = table.doc_code_of.get(ref_doc_id)
            if code is not None:
                self._remove_rows(np.flatnonzero(table.doc_codes[: table.size] == code))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes in ``node_ids`` and matching ``filters``; with neither, delete nothing."""
        if node_ids is None and filters is None:
            return
        with self._lock:
            self._remove_rows(np.flatnonzero(self._table.selection(node_ids, filters)))
            if filters is None:
                # Ids this store has not loaded yet may be on disk (another writer's): a merge
                # must delete them there too.
                self._changes.update((node_id, False) for node_id in node_ids or ())

    def _remove_rows(self, rows: np.ndarray) -> None:
        self._changes.update((self._table.ids[row], False) for row in rows.tolist())
        self._table.remove_rows(rows)

    def clear(self) -> None:
        """Remove every node and forget the embedding dimension."""
        with self._lock:
            self._changes.update((node_id, False) for node_id in self._table.ids)
            self._table = RowTable()

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in the given order) and/or filter; all nodes when both are None."""
        with self._lock:
            table = self._table
            keep = table.selection(None, filters)
            if node_ids is None:
                rows = np.flatnonzero(keep).tolist()
            else:
                rows = [r for r in map(table.row_of.get, node_ids) if r is not None and keep[r]]
            return [table.node_at(r) for r in rows]

    def node_ids(self) -> list[str]:
        """Every stored id, without building the nodes."""
        with self._lock:
            return list(self._table.ids[: self._table.size])

    def get_embedded(self, node_ids: Sequence[str]) -> tuple[list[TextNode], np.ndarray]:
        """Nodes by id (in that order) and their L2-normalised vectors as a matrix, to copy
        them to another store."""
        with self._lock:
            return self._table.embedded(node_ids)

    def search_chunks(self, embedding: Sequence[float], k: int) -> list[tuple[StoredChunk, float]]:
        """`query` without filters, as plain chunks (`MemoryBackend.search`)."""
        with self._lock:
            return self._table.search_chunks(embedding, k, self._hnsw_params())

    def chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        with self._lock:
            return self._table.chunks(ids)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top-k cosine similarity search honouring filters, doc_ids and node_ids."""
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise NotImplementedError(f"MemoryVectorStore does not support query mode {query.mode}")
        if query.query_embedding is None:
            raise ValueError("MemoryVectorStore.query needs a query_embedding")
        with self._lock:
            table = self._table
            if table.size == 0:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            vector = table.query_vector(query.query_embedding)
            mask = table.query_mask(query)
            top_k = query.similarity_top_k
            if query.mode == VectorStoreQueryMode.MMR:
                top_k = max(top_k, _mmr_prefetch(top_k, kwargs))
            rows, scores = table.search(vector, top_k, mask, self._hnsw_params())
            if query.mode == VectorStoreQueryMode.MMR:
                rows, scores = _mmr(table.matrix, vector, rows, query, kwargs.get("mmr_threshold"))
            return VectorStoreQueryResult(
                nodes=[table.node_at(r) for r in rows.tolist()],
                similarities=scores.tolist(),
                ids=[table.ids[r] for r in rows.tolist()],
            )

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Write the store into directory ``persist_path`` atomically, merged with whatever
        another writer persisted there since this store last loaded (see module docstring)."""
        if fs is not None and not is_local_fs(fs):
            raise NotImplementedError("MemoryVectorStore persists to the local filesystem only")
        folder = Path(persist_path)
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder / LOCK_NAME), self._lock:
            previous = read_manifest(folder)
            self._merge_if_changed(folder, previous)
            generation = (previous["generation"] + 1) if previous else 1
            files = self._table.write_generation(folder, generation, self._config())
            fsync_dir(folder)
            stamp = uuid.uuid4().hex
            manifest = {
                "format": FORMAT_VERSION,
                "generation": generation,
                "stamp": stamp,
                "files": files,
            }
            write_durably(
                folder / MANIFEST_NAME, lambda h: h.write(json.dumps(manifest).encode("utf-8"))
            )
            fsync_dir(folder)
            remove_stale_files(folder, set(files.values()))
            self._stamp = stamp
            self._changes.clear()
            self._seen = file_signature(folder / MANIFEST_NAME)

    def refresh(self, persist_dir: str) -> bool:
        """Take in what other writers persisted to ``persist_dir``; True if anything changed.

        Unpersisted changes of this store are kept (replayed onto the newer generation).
        """
        folder = Path(persist_dir)
        if file_signature(folder / MANIFEST_NAME) == self._seen:
            return False
        with locked(folder / LOCK_NAME), self._lock:
            changed = self._merge_if_changed(folder, read_manifest(folder))
            self._seen = file_signature(folder / MANIFEST_NAME)
            return changed

    def _merge_if_changed(self, folder: Path, manifest: dict[str, Any] | None) -> bool:
        """Rebase the rows on the persisted generation if it is not the one they came from."""
        stamp = stamp_of(manifest)
        if stamp == self._stamp:
            return False
        base = RowTable() if manifest is None else load_table(folder, manifest, self.index)[1]
        added = [node_id for node_id, added in self._changes.items() if added]
        deleted = [node_id for node_id, added in self._changes.items() if not added]
        nodes, vectors = self._table.embedded(added)
        if nodes:
            base.add(nodes, vectors)
        base.remove_rows(np.flatnonzero(base.selection(deleted, None)))
        self._table = base
        self._stamp = stamp
        return True

    @classmethod
    def from_persist_dir(cls, persist_dir: str, **kwargs: Any) -> MemoryVectorStore:
        """Load the generation named by ``persist_dir/manifest.json``; kwargs override config."""
        folder = Path(persist_dir)
        if read_manifest(folder) is None:
            raise FileNotFoundError(f"No MemoryVectorStore manifest in {folder}")
        with locked(folder / LOCK_NAME):
            manifest = read_manifest(folder)
            if manifest is None:
                raise FileNotFoundError(f"No MemoryVectorStore manifest in {folder}")
            config, table = load_table(folder, manifest, kwargs.get("index"))
            store = cls(**{**config, **kwargs})
            store._table = table
            store._stamp = stamp_of(manifest)
            store._seen = file_signature(folder / MANIFEST_NAME)
        return store

    def _config(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_construction": self.hnsw_ef_construction,
            "hnsw_ef_search": self.hnsw_ef_search,
        }

    def _hnsw_params(self) -> HnswParams | None:
        if self.index != "hnsw":
            return None
        return HnswParams(self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)


def _mmr_prefetch(top_k: int, kwargs: dict[str, Any]) -> int:
    """Candidates MMR re-ranks: `mmr_prefetch_k`, or `mmr_prefetch_factor` (default 4) x top-k."""
    if kwargs.get("mmr_prefetch_k"):
        return int(kwargs["mmr_prefetch_k"])
    return int(top_k * float(kwargs.get("mmr_prefetch_factor") or MMR_PREFETCH_FACTOR))


def _mmr(
    matrix: np.ndarray,
    vector: np.ndarray,
    rows: np.ndarray,
    query: VectorStoreQuery,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """LlamaIndex's maximal marginal relevance over the candidate rows (as SimpleVectorStore
    does over all rows); scores are its MMR scores, as SimpleVectorStore returns."""
    scores, picked = get_top_k_mmr_embeddings(
        vector.tolist(),
        matrix[rows].tolist(),
        similarity_top_k=query.similarity_top_k,
        embedding_ids=rows.tolist(),
        mmr_threshold=threshold,
    )
    return np.asarray(picked, dtype=np.int64), np.asarray(scores, dtype=np.float32)
