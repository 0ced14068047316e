"""Chroma: the embedded persistent client by default, a Chroma server when CHROMA_HOST is set.

`FixedChromaVectorStore` repairs llama-index-vector-stores-chroma 0.6 where it breaks the
contract every backend keeps (each fix is covered by the conformance suite):
- `add` used `collection.add`, which keeps the old text when an id exists: we `upsert`;
- batches were a hard-coded 41665 while chromadb reports `get_max_batch_size()` (5461 in 1.5);
- `clear()` raised on an empty collection, and `delete_nodes(filters=...)` raised on every
  collection (it sends `ids=[]`, which chromadb 1.5 rejects even alongside a `where`);
- `add` rejected metadata with an empty list (chromadb refuses `[]`): we leave it out of the
  filterable fields (the node keeps it);
- scores were `exp(-distance)`; with the cosine space we return `1 - distance`, the cosine
  similarity that memory and Pinecone return.
The catalog lives in a side collection `<collection>__catalog` on the same client.

chromadb's HttpClient retries nothing, so requests to a Chroma server go through
`rag_app.util.retry` (bounded, jittered exponential backoff on connection errors and 408/429/5xx):
a server that restarts during an ingest costs a pause, not a failed command.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any

import chromadb
import httpx
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from llama_index.vector_stores.chroma import ChromaVectorStore
from llama_index.vector_stores.chroma.base import _to_chroma_filter

from rag_app.errors import ConfigError, RagAppError
from rag_app.settings import Settings
from rag_app.stores.base import (
    WRITTEN_FIELD,
    Backend,
    EmbeddedBatch,
    FlatEmbeddedBatch,
    batched,
)
from rag_app.util.retry import DEFAULT_POLICY, RetryPolicy, install_retries

CATALOG_SUFFIX = "__catalog"
#: A catalog record's JSON is a metadata field, not the entry's document: Chroma full-text
#: indexes documents, and a catalog write cost its server 30% more CPU that way (20 writes of
#: 51 records: 0.59-0.67 s against 0.42-0.50 s). Catalogs written before keep the JSON in the
#: document, which is still read.
RECORD_FIELD = "record"
CATALOG_INCLUDE = ["documents", "metadatas"]
#: Retries for requests to a Chroma server (tests shorten it).
RETRY_POLICY: RetryPolicy = DEFAULT_POLICY
#: A dead server fails fast on connect; a big upsert may take a while to answer.
HTTP_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class FixedChromaVectorStore(ChromaVectorStore):
    """ChromaVectorStore with overwrite-on-add, real batch limits and cosine scores."""

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        self.prepare_add(nodes)()
        return [n.node_id for n in nodes]

    def add_embedded(self, nodes: Sequence[BaseNode], vectors: Any) -> None:
        """`add` with the vectors given apart (row i is node i's; a numpy matrix is taken as
        it is, where lists of floats would be converted into one by chromadb)."""
        self.prepare_add_embedded(nodes, vectors)()

    def prepare_add(self, nodes: Sequence[BaseNode]) -> Callable[[], None]:
        """Encode the records now (the node dump is most of a write's interpreter time); the
        returned call sends them in batches of the client's maximum size."""
        return self.prepare_add_embedded(nodes, [n.get_embedding() for n in nodes])

    def prepare_add_embedded(self, nodes: Sequence[BaseNode], vectors: Any) -> Callable[[], None]:
        """`prepare_add` with the vectors given apart (see `add_embedded`)."""
        batch = self._collection._client.get_max_batch_size()
        parts = [
            {
                "ids": [n.node_id for n in nodes[start : start + batch]],
                "embeddings": vectors[start : start + batch],
                "metadatas": [_chroma_metadata(n) for n in nodes[start : start + batch]],
                "documents": [
                    n.get_content(metadata_mode=MetadataMode.NONE)
                    for n in nodes[start : start + batch]
                ],
            }
            for start in range(0, len(nodes), batch)
        ]

        def send() -> None:
            for part in parts:
                self._collection.upsert(**part)

        return send

    def delete_nodes(self, node_ids: list[str] | None = None, filters: Any = None) -> None:
        where = _to_chroma_filter(filters) if filters else None
        if not node_ids and not where:
            return
        self._collection.delete(ids=node_ids or None, where=where)

    def clear(self) -> None:
        batch = self._collection._client.get_max_batch_size()
        while ids := self._collection.get(limit=batch, include=[])["ids"]:
            self._collection.delete(ids=ids)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if self._collection.count() == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        result = super().query(query, **kwargs)
        if query.query_embedding is None or result.similarities is None:
            return result
        # The parent returns exp(-distance); in the cosine space distance = 1 - cosine.
        cosines = [1.0 + math.log(s) if s > 0 else -1.0 for s in result.similarities]
        return VectorStoreQueryResult(nodes=result.nodes, similarities=cosines, ids=result.ids)


def _chroma_metadata(node: BaseNode) -> dict[str, Any]:
    """The filterable fields Chroma accepts: no None, no empty list (chromadb rejects both).

    What a query returns is the node's own metadata, kept whole in `_node_content`.
    """
    metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    return {k: v for k, v in metadata.items() if v is not None and v != []}


class ChromaBackend(Backend):
    name = "chroma"

    def __init__(self, settings: Settings, collection: str) -> None:
        self.settings = settings
        self.location = _location(settings)
        self.collection_name = collection
        if settings.chroma_host:
            self.client  # noqa: B018 - connect now: an unreachable server is reported at once

    # Collections (and the embedded client's files) are created on the first write, so reading
    # an unknown collection, or a run that fails before writing, creates nothing.

    @cached_property
    def client(self) -> Any:
        return _client(self.settings)

    @cached_property
    def collection(self) -> Any:
        return self._open_collection(self.collection_name)

    @cached_property
    def catalog(self) -> Any:
        return self.client.get_or_create_collection(
            self.collection_name + CATALOG_SUFFIX, embedding_function=None
        )

    @cached_property
    def vector_store(self) -> FixedChromaVectorStore:  # type: ignore[override]
        return FixedChromaVectorStore(chroma_collection=self.collection)

    def _exists(self, attribute: str, name: str) -> bool:
        """Whether a collection exists, without creating it (or the embedded store's files)."""
        if attribute in self.__dict__:
            return True
        if not self.settings.chroma_host and not self.settings.resolved_chroma_path.exists():
            return False
        return name in {c if isinstance(c, str) else c.name for c in self.client.list_collections()}

    def _has_chunks(self) -> bool:
        return self._exists("collection", self.collection_name)

    def _has_catalog(self) -> bool:
        return self._exists("catalog", self.collection_name + CATALOG_SUFFIX)

    def query(
        self, embedding: Sequence[float], top_k: int, filters: MetadataFilters | None = None
    ) -> list[NodeWithScore]:
        return super().query(embedding, top_k, filters) if self._has_chunks() else []

    @classmethod
    def open(cls, settings: Settings, collection: str, dimension: Callable[[], int]) -> Backend:
        return cls(settings, collection)

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        if not settings.chroma_host:
            return None
        try:
            _client(settings)
        except RagAppError as exc:
            return str(exc)
        return None

    def _open_collection(self, name: str) -> Any:
        hnsw = {
            "space": "cosine",
            "max_neighbors": self.settings.hnsw_m,
            "ef_construction": self.settings.hnsw_ef_construction,
            "ef_search": self.settings.hnsw_ef_search,
        }
        collection = self.client.get_or_create_collection(
            name, configuration={"hnsw": hnsw}, embedding_function=None
        )
        current = (collection.configuration or {}).get("hnsw") or {}
        self._check_fixed_hnsw(name, current, hnsw)
        if current.get("ef_search") != hnsw["ef_search"]:
            collection.modify(configuration={"hnsw": {"ef_search": hnsw["ef_search"]}})
        return collection

    def _check_fixed_hnsw(self, name: str, current: dict, wanted: dict) -> None:
        for key, variable in (
            ("space", None),
            ("max_neighbors", "RAG_HNSW_M"),
            ("ef_construction", "RAG_HNSW_EF_CONSTRUCTION"),
        ):
            if current.get(key) not in (None, wanted[key]):
                fix = (
                    f"set {variable}={current[key]} to use it"
                    if variable
                    else "it was not created by rag-app"
                )
                raise ConfigError(
                    f"Chroma collection {name!r} was created with hnsw {key}={current[key]}, "
                    f"and Chroma cannot change it after creation ({fix}; or choose another "
                    f"RAG_COLLECTION to build one with {key}={wanted[key]}). Only "
                    f"RAG_HNSW_EF_SEARCH can change on an existing collection."
                )

    def upsert(self, nodes: Sequence[TextNode]) -> None:
        self.vector_store.add(list(nodes))

    def prepare_upsert(self, nodes: Sequence[TextNode]) -> Callable[[], None]:
        return self.vector_store.prepare_add(nodes)

    def delete_chunks(self, ids: Sequence[str]) -> None:
        if not ids or not self._has_chunks():
            return
        for part in batched(list(ids), self.client.get_max_batch_size()):
            self.collection.delete(ids=list(part))

    def fetch_nodes(self, ids: Sequence[str]) -> dict[str, TextNode]:
        nodes: dict[str, TextNode] = {}
        if not ids or not self._has_chunks():
            return nodes
        for part in batched(list(ids), self.client.get_max_batch_size()):
            got = self.collection.get(ids=list(part), include=["documents", "metadatas"])
            for node_id, text, metadata in zip(
                got["ids"], got["documents"], got["metadatas"], strict=True
            ):
                nodes[node_id] = metadata_dict_to_node(metadata, text=text)
        return nodes

    def fetch_embedded(self, ids: Sequence[str]) -> dict[str, TextNode]:
        return {n.node_id: n for n in self.read_embedded(ids).embedded_nodes()}

    def read_embedded(self, ids: Sequence[str]) -> EmbeddedBatch:
        import numpy as np  # chromadb imports it anyway

        metadatas: list[dict[str, Any]] = []
        documents: list[str | None] = []
        parts: list[np.ndarray] = []
        if ids and self._has_chunks():
            include = ["documents", "metadatas", "embeddings"]
            for part in batched(list(ids), self.client.get_max_batch_size()):
                got = self.collection.get(ids=list(part), include=include)
                position = {node_id: i for i, node_id in enumerate(got["ids"])}
                order = [position[i] for i in part if i in position]  # chromadb's own order
                metadatas.extend(got["metadatas"][i] for i in order)
                documents.extend(got["documents"][i] for i in order)
                parts.append(np.asarray(got["embeddings"], dtype=np.float32)[order])
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        return FlatEmbeddedBatch(metadatas, documents, vectors)

    def write_embedded(self, batch: EmbeddedBatch) -> None:
        self.vector_store.add_embedded(batch.nodes, batch.vectors)

    def count(self) -> int:
        return self.collection.count() if self._has_chunks() else 0

    def list_chunk_ids(self) -> list[str]:
        ids: list[str] = []
        if not self._has_chunks():
            return ids
        batch = self.client.get_max_batch_size()
        while page := self.collection.get(limit=batch, offset=len(ids), include=[])["ids"]:
            ids.extend(page)
        return ids

    def read_records(self) -> dict[str, dict[str, Any]]:
        if not self._has_catalog():
            return {}
        return _records(self.catalog.get(include=CATALOG_INCLUDE))

    def read_records_by_key(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if not keys or not self._has_catalog():
            return found
        for part in batched(list(keys), self.client.get_max_batch_size()):
            found |= _records(self.catalog.get(ids=list(part), include=CATALOG_INCLUDE))
        return found

    def record_keys(self) -> list[str]:
        return self.catalog.get(include=[])["ids"] if self._has_catalog() else []

    def read_records_since(self, stamp: float) -> dict[str, dict[str, Any]] | None:
        if not self._has_catalog():
            return {}
        where = {WRITTEN_FIELD: {"$gte": stamp}}
        return _records(self.catalog.get(where=where, include=CATALOG_INCLUDE))

    def write_records(self, records: dict[str, dict[str, Any]]) -> None:
        written = time.time()
        for part in batched(list(records.items()), self.client.get_max_batch_size()):
            self.catalog.upsert(
                ids=[k for k, _ in part],
                embeddings=[[1.0] for _ in part],
                metadatas=[
                    {WRITTEN_FIELD: written, RECORD_FIELD: json.dumps(v, ensure_ascii=False)}
                    for _, v in part
                ],
            )

    def delete_records(self, keys: Sequence[str]) -> None:
        if keys and self._has_catalog():
            self.catalog.delete(ids=list(keys))

    def drop(self) -> None:
        if not self._has_chunks() and not self._has_catalog():
            return
        for attribute in ("collection", "catalog", "vector_store"):
            self.__dict__.pop(attribute, None)
        for name in (self.collection_name, self.collection_name + CATALOG_SUFFIX):
            try:
                self.client.delete_collection(name)
            except Exception as exc:  # chromadb raises NotFoundError or ValueError by version
                if "does not exist" not in str(exc).lower():
                    raise


def _records(got: Any) -> dict[str, dict[str, Any]]:
    """Catalog records from a `collection.get(..., include=CATALOG_INCLUDE)` answer."""
    return {
        key: json.loads((metadata or {}).get(RECORD_FIELD) or document)
        for key, document, metadata in zip(
            got["ids"], got["documents"], got["metadatas"], strict=True
        )
    }


def _client(settings: Settings) -> Any:
    if settings.chroma_host:
        try:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port)
            client.heartbeat()
        except Exception as exc:
            raise RagAppError(
                f"Cannot reach the Chroma server at {_location(settings)} ({exc}). Start it "
                "with `chroma run --path DIR --port PORT`, fix CHROMA_HOST / CHROMA_PORT, or "
                "unset CHROMA_HOST to use embedded Chroma."
            ) from None
        session = client._server._session  # chromadb exposes no hook for its HTTP transport
        session.timeout = HTTP_TIMEOUT
        policy = replace(RETRY_POLICY, max_seconds=settings.retry_seconds)
        install_retries(session, f"Chroma server {_location(settings)}", policy)
        return client
    settings.resolved_chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.resolved_chroma_path))


def _location(settings: Settings) -> str:
    if settings.chroma_host:
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    return str(settings.resolved_chroma_path)
