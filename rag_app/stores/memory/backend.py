"""The default backend: an in-process vector store persisted under RAG_DATA_DIR.

Chunks live in `MemoryVectorStore` (a float32 matrix, exact or HNSW search); the catalog is a
JSON file beside it. Both are written atomically (temp file + rename), so a process killed at
any moment leaves the last complete state.

Several writers (processes, or `RagApp` objects in one process) may share the directory: the
vector store merges its changes into whatever another writer persisted (see
`MemoryVectorStore.persist`), catalog updates are read-modify-writes under a `filelock` lock,
and every read first takes in other writers' newer generation (one `stat` when there is none).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rag_app.settings import Settings
from rag_app.stores.base import Backend, EmbeddedBatch, StoredChunk
from rag_app.util.files import locked, write_atomically

if TYPE_CHECKING:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.core.vector_stores.types import MetadataFilters

    from rag_app.stores.memory.snapshot import Snapshot
    from rag_app.stores.memory.table import HnswParams
    from rag_app.stores.memory.vector_store import MemoryVectorStore


class MemoryBackend(Backend):
    name = "memory"
    writes_through = False

    def __init__(self, settings: Settings, collection: str) -> None:
        self.directory = settings.data_dir / "memory" / collection
        self.location = str(self.directory)
        self._records_path = self.directory / "catalog.json"
        self._records_lock = self.directory / ".catalog.lock"
        self._store_dir = self.directory / "vectors"
        self._options = {
            "index": settings.memory_index,
            "hnsw_m": settings.hnsw_m,
            "hnsw_ef_construction": settings.hnsw_ef_construction,
            "hnsw_ef_search": settings.hnsw_ef_search,
        }
        self._dirty = False

    @cached_property
    def vector_store(self) -> MemoryVectorStore:  # type: ignore[override]
        """Loaded on first use: the catalog (`rag-app docs list`) needs neither the vectors nor
        LlamaIndex, which the vector store imports (1 s)."""
        from rag_app.stores.memory.vector_store import MemoryVectorStore  # lazy: see above

        try:
            return MemoryVectorStore.from_persist_dir(str(self._store_dir), **self._options)
        except FileNotFoundError:
            return MemoryVectorStore(**self._options)

    @classmethod
    def open(cls, settings: Settings, collection: str, dimension: Callable[[], int]) -> Backend:
        return cls(settings, collection)

    def _load_records(self) -> dict[str, dict[str, Any]]:
        if not self._records_path.exists():
            return {}
        return json.loads(self._records_path.read_text(encoding="utf-8"))

    def refresh(self) -> None:
        """Take in chunks other writers persisted since this process last looked."""
        self.vector_store.refresh(str(self._store_dir))

    def upsert(self, nodes: Sequence[TextNode]) -> None:
        self.vector_store.add(list(nodes))
        self._dirty = True

    def delete_chunks(self, ids: Sequence[str]) -> None:
        if ids:
            self.vector_store.delete_nodes(node_ids=list(ids))
            self._dirty = True

    def fetch_nodes(self, ids: Sequence[str]) -> dict[str, TextNode]:
        self.refresh()
        return {n.node_id: n for n in self.vector_store.get_nodes(list(ids)) if ids}

    def fetch_embedded(self, ids: Sequence[str]) -> dict[str, TextNode]:
        return {n.node_id: n for n in self.read_embedded(ids).embedded_nodes()}

    def read_embedded(self, ids: Sequence[str]) -> EmbeddedBatch:
        self.refresh()
        return EmbeddedBatch(*self.vector_store.get_embedded(ids))

    def write_embedded(self, batch: EmbeddedBatch) -> None:
        self.vector_store.add_chunks(batch.chunks(), batch.vectors)
        self._dirty = True

    def list_chunk_ids(self) -> list[str]:
        self.refresh()
        return self.vector_store.node_ids()

    def count(self) -> int:
        self.refresh()
        return self.vector_store.count

    def query(
        self, embedding: Sequence[float], top_k: int, filters: MetadataFilters | None = None
    ) -> list[NodeWithScore]:
        self.refresh()
        return super().query(embedding, top_k, filters)

    def search(self, embedding: Sequence[float], top_k: int) -> list[tuple[StoredChunk, float]]:
        if "vector_store" in self.__dict__:
            self.refresh()
            return self.vector_store.search_chunks(embedding, top_k)
        return self._snapshot.table().search_chunks(embedding, top_k, self._hnsw())

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        if "vector_store" in self.__dict__:
            self.refresh()
            return self.vector_store.chunks(ids)
        return self._snapshot.table().chunks(ids)

    @cached_property
    def _snapshot(self) -> Snapshot:
        """The persisted rows, for a process that only searches: it never loads the vector
        store (its unpersisted writes would be there), nor LlamaIndex with it."""
        from rag_app.stores.memory.snapshot import Snapshot  # lazy: the catalog needs no numpy

        return Snapshot(self._store_dir, self._options["index"])

    def _hnsw(self) -> HnswParams | None:
        if self._options["index"] != "hnsw":
            return None
        from rag_app.stores.memory.table import HnswParams

        options = self._options
        return HnswParams(
            options["hnsw_m"], options["hnsw_ef_construction"], options["hnsw_ef_search"]
        )

    def flush(self) -> None:
        if self._dirty:
            self.vector_store.persist(str(self._store_dir))
            self._dirty = False

    def read_records(self) -> dict[str, dict[str, Any]]:
        """Read from disk every time: the file, not this process, is the catalog."""
        return self._load_records()

    def write_records(self, records: dict[str, dict[str, Any]]) -> None:
        with locked(self._records_lock):
            self._save_records({**self._load_records(), **records})

    def delete_records(self, keys: Sequence[str]) -> None:
        with locked(self._records_lock):
            records = self._load_records()
            for key in keys:
                records.pop(key, None)
            self._save_records(records)

    def _save_records(self, records: dict[str, dict[str, Any]]) -> None:
        write_atomically(self._records_path, json.dumps(records, ensure_ascii=False))

    def drop(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if "vector_store" in self.__dict__:
            self.vector_store.clear()
        self._dirty = False
