"""Pinecone through the official SDK and LlamaIndex's PineconeVectorStore.

Real Pinecone serverless with PINECONE_API_KEY; a local Pinecone-compatible server
(`rag-app pinecone-local`) with PINECONE_HOST. The index is created when missing (dimension
from the embedding model, cosine metric, serverless spec from PINECONE_CLOUD / PINECONE_REGION).
The data-plane client is built with an explicit `http://` host for a local server, because the
SDK rewrites described hosts to https.

`FixedPineconeVectorStore` repairs llama-index-vector-stores-pinecone 0.9 where it breaks the
contract every backend keeps (each fix is covered by the conformance suite):
- `add` stored ids as `ref_doc_id#node_id` while `delete_nodes` and `get_nodes` use the bare
  node id, so deleting chunks by id deleted nothing: we store the node id as is;
- `delete(ref_doc_id)` fell back to listing ids by a bare prefix, so deleting `doc1` also
  deleted `doc10#...`: we delete by an exact metadata filter on `ref_doc_id` only, and an
  index that refuses filtered deletes raises instead of deleting by prefix;
- `namespace=None` (the default) reached the SDK, which sends it as JSON null in delete
  requests: we store "" (Pinecone's default namespace), so every call passes a string;
- upserts are split by Pinecone's request limits (1000 vectors, 2 MB), not a fixed count, and
  the parts are sent UPSERT_CONCURRENCY at a time (each is ~100 ms of waiting on the service);
- numpy floats in embeddings (`list(array)`) made the SDK's JSON encoder fail, where memory and
  Chroma accept them: we send plain floats.
The catalog is a side namespace `<namespace>__catalog` of the same index.

The SDK retries 408/429/5xx and connection errors, but `Pinecone.Index()` does not pass the
client's `RetryConfig` on (the data plane keeps the default of 3 retries), so the data-plane
index also goes through `rag_app.util.retry` (bounded, jittered exponential backoff).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import Any

from llama_index.core.schema import BaseNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from llama_index.vector_stores.pinecone import PineconeVectorStore
from pinecone import Pinecone, ServerlessSpec
from pinecone.errors.exceptions import (
    PineconeConnectionError,
    PineconeError,
    PineconeTimeoutError,
)

from rag_app.errors import EmbeddingMismatchError, RagAppError, RemoteServiceError
from rag_app.settings import Settings, check_store_settings
from rag_app.stores.base import WRITTEN_FIELD, Backend, batched
from rag_app.util.retry import DEFAULT_POLICY, RetryingProxy

CATALOG_SUFFIX = "__catalog"
MAX_UPSERT_VECTORS = 1000
MAX_UPSERT_BYTES = 2 * 1024 * 1024
#: Headroom under MAX_UPSERT_BYTES for the JSON around each vector.
REQUEST_OVERHEAD = 64 * 1024
#: Upsert requests of one write in flight at once (1,536-d vectors: ~60 per 2 MB request).
UPSERT_CONCURRENCY = 4
FETCH_BATCH = 100
#: Retries of data-plane calls, on top of the SDK's own (see the module docstring).
RETRY_POLICY = DEFAULT_POLICY


class FixedPineconeVectorStore(PineconeVectorStore):
    """PineconeVectorStore with bare node ids, exact document deletes and size-aware batches."""

    def __init__(self, *args: Any, namespace: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, namespace=namespace or "", **kwargs)

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        self.prepare_add(nodes)()
        return [n.node_id for n in nodes]

    def prepare_add(self, nodes: Sequence[BaseNode]) -> Callable[[], None]:
        """Encode the records now; the returned call sends them."""
        parts = list(split_upserts([_entry(n, self.flat_metadata) for n in nodes]))
        return lambda: self._send(parts)

    def _send(self, parts: list[list[dict[str, Any]]]) -> None:
        def upsert(part: list[dict[str, Any]]) -> None:
            self._pinecone_index.upsert(vectors=part, namespace=self.namespace, show_progress=False)

        if len(parts) <= 1:
            for part in parts:
                upsert(part)
        else:
            # Every id is in one part only, so the parts may land in any order.
            with ThreadPoolExecutor(min(UPSERT_CONCURRENCY, len(parts))) as pool:
                list(pool.map(upsert, parts))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.query_embedding is not None:
            embedding = [float(v) for v in query.query_embedding]
            query = replace(query, query_embedding=embedding)
        return super().query(query, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        self._pinecone_index.delete(
            filter={"ref_doc_id": {"$eq": ref_doc_id}}, namespace=self.namespace
        )


def _entry(node: BaseNode, flat_metadata: bool) -> dict[str, Any]:
    metadata = node_to_metadata_dict(node, remove_text=False, flat_metadata=flat_metadata)
    return {
        "id": node.node_id,
        "values": [float(v) for v in node.get_embedding()],
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def split_upserts(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups within Pinecone's per-request vector and byte limits."""
    group: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        if group and (
            len(group) >= MAX_UPSERT_VECTORS
            or size + entry_size > MAX_UPSERT_BYTES - REQUEST_OVERHEAD
        ):
            yield group
            group, size = [], 0
        group.append(entry)
        size += entry_size
    if group:
        yield group


class PineconeBackend(Backend):
    name = "pinecone"

    def __init__(self, settings: Settings, collection: str, dimension: Callable[[], int]) -> None:
        self.settings = settings
        self.client = _client(settings)
        self.index_name = settings.pinecone_index
        self.namespace = (
            settings.pinecone_namespace
            if settings.pinecone_namespace and collection == settings.collection
            else collection
        )
        self.catalog_namespace = self.namespace + CATALOG_SUFFIX
        self.location = (
            f"{settings.pinecone_host or 'Pinecone'} index {self.index_name!r} "
            f"namespace {self.namespace!r}"
        )
        self._model_dimension = dimension
        self._known_to_exist = False
        self.policy = replace(RETRY_POLICY, max_seconds=settings.retry_seconds)

    @classmethod
    def open(cls, settings: Settings, collection: str, dimension: Callable[[], int]) -> Backend:
        return cls(settings, collection, dimension)

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        try:
            _client(settings).list_indexes()
        except RagAppError as exc:
            return str(exc)
        except Exception as exc:  # any SDK or network failure makes the store unusable
            return f"cannot reach {settings.pinecone_host or 'Pinecone'}: {exc}"
        return None

    # The index is opened on first use and created (with the embedding model's dimension) only
    # by a write: listing or querying a missing index loads no model and creates nothing.

    @cached_property
    def _description(self) -> Any:
        return self._control("open", lambda: self.client.describe_index(self.index_name))

    def _index_exists(self) -> bool:
        if "index" not in self.__dict__ and not self._known_to_exist:
            found = self._control("look up", lambda: self.client.has_index(self.index_name))
            self._known_to_exist = bool(found)
        return True if "index" in self.__dict__ else self._known_to_exist

    @cached_property
    def index(self) -> Any:
        if not self._index_exists():
            dimension = self._model_dimension()
            self._control(
                "create",
                lambda: self.client.create_index(
                    name=self.index_name,
                    dimension=dimension,
                    metric="cosine",
                    spec=ServerlessSpec(
                        cloud=self.settings.pinecone_cloud, region=self.settings.pinecone_region
                    ),
                ),
            )
        host = self._description.host
        if self.settings.pinecone_host:
            host = "http://" + host.split("://", 1)[-1]
        return RetryingProxy(self.client.Index(host=host), f"Pinecone {self.location}", self.policy)

    @cached_property
    def vector_store(self) -> FixedPineconeVectorStore:  # type: ignore[override]
        return FixedPineconeVectorStore(pinecone_index=self.index, namespace=self.namespace)

    @property
    def dimension(self) -> int:
        return int(self._description.dimension)

    def _control(self, action: str, call: Callable[[], Any]) -> Any:
        """A control-plane call, its failures as one line that names the likely fix."""
        try:
            return call()
        except PineconeError as exc:
            raise _control_error(
                self.settings, f"{action} index {self.index_name!r}", exc
            ) from None

    def check_embedding(self, model_id: str, dimension: int) -> None:
        self.check_dimension(dimension)
        super().check_embedding(model_id, dimension)

    def check_dimension(self, dimension: int) -> None:
        if self._index_exists() and self.dimension != dimension:
            raise EmbeddingMismatchError(
                f"Pinecone index {self.index_name!r} has dimension {self.dimension}, "
                f"but the embedding model gives {dimension}. Set PINECONE_INDEX to another "
                "index (it is created for you), or use the embedding model that built it."
            )

    def query(
        self, embedding: Sequence[float], top_k: int, filters: MetadataFilters | None = None
    ) -> list[NodeWithScore]:
        return super().query(embedding, top_k, filters) if self._index_exists() else []

    def upsert(self, nodes: Sequence[TextNode]) -> None:
        self.vector_store.add(list(nodes))

    def prepare_upsert(self, nodes: Sequence[TextNode]) -> Callable[[], None]:
        return self.vector_store.prepare_add(nodes)

    def delete_chunks(self, ids: Sequence[str]) -> None:
        if not ids or not self._index_exists():
            return
        for part in batched(list(ids), MAX_UPSERT_VECTORS):
            self.index.delete(ids=list(part), namespace=self.namespace)

    def fetch_nodes(self, ids: Sequence[str]) -> dict[str, TextNode]:
        return {
            vector_id: metadata_dict_to_node(metadata)
            for vector_id, metadata in self._fetch(self.namespace, ids)
        }

    def fetch_embedded(self, ids: Sequence[str]) -> dict[str, TextNode]:
        nodes: dict[str, TextNode] = {}
        for vector_id, vector in self._fetch_vectors(self.namespace, ids):
            node = metadata_dict_to_node(dict(vector.metadata or {}))
            node.embedding = [float(v) for v in vector.values]
            nodes[vector_id] = node
        return nodes

    def _fetch(self, namespace: str, ids: Sequence[str]) -> Iterator[tuple[str, dict]]:
        for vector_id, vector in self._fetch_vectors(namespace, ids):
            yield vector_id, dict(vector.metadata or {})

    def _fetch_vectors(self, namespace: str, ids: Sequence[str]) -> Iterator[tuple[str, Any]]:
        if not ids or not self._index_exists():
            return
        for part in batched(list(ids), FETCH_BATCH):
            response = self.index.fetch(ids=list(part), namespace=namespace)
            yield from response.vectors.items()

    def count(self) -> int:
        if not self._index_exists():
            return 0
        stats = self.index.describe_index_stats()
        namespace = stats.namespaces.get(self.namespace)
        return int(namespace.vector_count) if namespace else 0

    def list_chunk_ids(self) -> list[str]:
        return self._list_ids(self.namespace)

    def _list_ids(self, namespace: str) -> list[str]:
        """Every id in `namespace`, one retried request per page."""
        ids: list[str] = []
        if not self._index_exists():
            return ids
        token: str | None = None
        while True:
            page = self.index.list_paginated(namespace=namespace, pagination_token=token)
            ids.extend(entry.id for entry in page.vectors or [])
            token = page.pagination.next if page.pagination else None
            if not token:
                return ids

    def read_records(self) -> dict[str, dict[str, Any]]:
        return self.read_records_by_key(self._list_ids(self.catalog_namespace))

    def read_records_by_key(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            vector_id: json.loads(metadata["record"])
            for vector_id, metadata in self._fetch(self.catalog_namespace, keys)
        }

    def record_keys(self) -> list[str]:
        return self._list_ids(self.catalog_namespace)

    def read_records_since(self, stamp: float) -> dict[str, dict[str, Any]] | None:
        found: dict[str, dict[str, Any]] = {}
        if not self._index_exists():
            return found
        token: str | None = None
        while True:
            page = self.index.fetch_by_metadata(
                filter={WRITTEN_FIELD: {"$gte": stamp}},
                namespace=self.catalog_namespace,
                pagination_token=token,
            )
            for vector_id, vector in page.vectors.items():
                found[vector_id] = json.loads(vector.metadata["record"])
            token = page.pagination.next if page.pagination else None
            if not token:
                return found

    def write_records(self, records: dict[str, dict[str, Any]]) -> None:
        index = self.index  # created by the first write
        unit = [1.0] + [0.0] * (self.dimension - 1)
        written = time.time()
        entries = [
            {
                "id": key,
                "values": unit,
                "metadata": {"record": json.dumps(v, ensure_ascii=False), WRITTEN_FIELD: written},
            }
            for key, v in records.items()
        ]
        for part in split_upserts(entries):
            index.upsert(vectors=part, namespace=self.catalog_namespace, show_progress=False)

    def delete_records(self, keys: Sequence[str]) -> None:
        if not keys or not self._index_exists():
            return
        for part in batched(list(keys), MAX_UPSERT_VECTORS):
            self.index.delete(ids=list(part), namespace=self.catalog_namespace)

    def drop(self) -> None:
        for namespace in (self.namespace, self.catalog_namespace):
            if self._list_ids(namespace):
                self.index.delete(delete_all=True, namespace=namespace)


def _control_error(settings: Settings, action: str, exc: PineconeError) -> RagAppError:
    where = settings.pinecone_host or "Pinecone"
    status = getattr(exc, "status_code", None)
    detail = " ".join(str(exc).split())[:300]
    if isinstance(exc, PineconeConnectionError | PineconeTimeoutError):
        return RemoteServiceError(
            f"cannot reach {where} to {action} ({detail}). Check PINECONE_HOST and that the "
            "server is running (`rag-app pinecone-local`), or your network for Pinecone."
        )
    if status in (401, 403):
        return RemoteServiceError(
            f"{where} refused PINECONE_API_KEY (HTTP {status}) to {action}. Set a valid "
            "PINECONE_API_KEY in the environment or .env."
        )
    if status == 429 or (status is not None and status >= 500):
        return RemoteServiceError(
            f"{where} is busy (HTTP {status}) and could not {action}: wait a moment and run the "
            "same command again (it resumes)."
        )
    return RemoteServiceError(
        f"{where} refused to {action} (HTTP {status}: {detail}). Check PINECONE_INDEX, "
        "PINECONE_CLOUD and PINECONE_REGION."
    )


def _client(settings: Settings) -> Pinecone:
    from pinecone import RetryConfig

    check_store_settings(settings.model_copy(update={"vector_store": "pinecone"}))
    api_key = settings.pinecone_api_key.get_secret_value() if settings.pinecone_api_key else ""
    return Pinecone(
        api_key=api_key or "pclocal",
        host=_http_url(settings.pinecone_host) if settings.pinecone_host else None,
        retry_config=RetryConfig(max_retries=3, backoff_factor=0.05, max_wait=2.0),
        timeout=30.0,
    )


def _http_url(host: str) -> str:
    return host if host.startswith(("http://", "https://")) else f"http://{host}"
