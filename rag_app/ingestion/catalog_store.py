"""`CatalogVectorStore`: the vector store the factory hands to LlamaIndex code.

LlamaIndex writes through `vector_store.add` / `delete` only, and those know nothing of the
app's catalog (rag_app/stores/base.py) or its keyword index, so documents written by
`VectorStoreIndex.from_documents`, `index.insert` or `insert_nodes` would be invisible to
`rag-app docs list`, to BM25 and to re-ingestion, and a re-insert would duplicate them. This
thin wrapper over a backend's (fixed) LlamaIndex store sends every write through the same
`Ingestor` as `rag-app ingest`, so it is recorded the same way (pending record, chunks, final
record) and the keyword index follows:

- `add` groups nodes by `ref_doc_id` (a node without one is a document of its own). Each group
  is the document's new version: its chunks get the stable ids `<doc key>:<position>`, so
  re-inserting a document overwrites it, and the old version's surplus chunks are deleted.
  LlamaIndex splits big inserts into batches (`insert_batch_size`, 2048 nodes); a group whose
  first node's PREVIOUS relationship is the last node this store wrote for the document
  continues that document instead of replacing it.
- `delete(ref_doc_id)` deletes the document's chunks and its record.
- `delete_nodes` and `clear` with arguments that would cut documents apart are refused with
  `CatalogWriteError` (the catalog counts whole documents), never executed half-way.
- `query` checks the query's options against what every backend answers identically
  (`rag_app.stores.query_options`), then runs on the wrapped store; MMR runs here, the same for all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr

from rag_app.errors import EmbeddingMismatchError, RagAppError
from rag_app.ingestion.pipeline import (
    ChangeListener,
    Ingestor,
    PendingDocument,
)
from rag_app.ingestion.records import flatten_metadata, oversized
from rag_app.stores.base import Backend, DocRecord, chunk_ids, searched_text
from rag_app.stores.query_options import check_query

#: Metadata the catalog adds to every chunk; never embedded, never shown to an LLM.
CATALOG_METADATA = ["doc_id", "chunk_index"]


class CatalogWriteError(RagAppError):
    """A LlamaIndex call that would leave the catalog and the chunks disagreeing."""


class CatalogVectorStore(BasePydanticVectorStore):
    """A backend's vector store whose writes keep the catalog and the keyword index."""

    stores_text: bool = True
    is_embedding_query: bool = True
    flat_metadata: bool = False

    _backend: Backend = PrivateAttr()
    _ingestor: Ingestor = PrivateAttr()
    _on_change: Any = PrivateAttr()
    #: doc id -> (LlamaIndex id of the last node written, chunks written so far) in this store.
    _tails: dict[str, tuple[str, int]] = PrivateAttr(default_factory=dict)

    def __init__(self, ingestor: Ingestor, on_change: Any = None) -> None:
        """`on_change()` runs after every write (the app commits its keyword index there)."""
        super().__init__()
        self._backend = ingestor.backend
        self._ingestor = ingestor
        self._on_change = on_change or (lambda: None)

    @classmethod
    def class_name(cls) -> str:
        return "CatalogVectorStore"

    @property
    def client(self) -> Any:
        return self._backend.vector_store.client

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def listeners(self) -> list[ChangeListener]:
        return self._ingestor.listeners

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Write nodes as documents; returns their stored ids. Nodes LlamaIndex embedded keep
        their vectors; nodes without one are embedded with the app's model."""
        groups: dict[str, list[BaseNode]] = {}
        for node in nodes:
            groups.setdefault(node.ref_doc_id or node.node_id, []).append(node)
        self._check_dimension(nodes)
        catalog = self._backend.documents()
        work = [
            self._pending(doc_id, group, catalog.get(doc_id)) for doc_id, group in groups.items()
        ]
        try:
            self._ingestor.write(work)
        finally:
            self._on_change()
        for pending, (doc_id, group) in zip(work, groups.items(), strict=True):
            self._tails[doc_id] = (group[-1].node_id, pending.end)
        stored = {
            id(n): s.node_id
            for p, group in zip(work, groups.values(), strict=True)
            for n, s in zip(group, p.nodes, strict=True)
        }
        return [stored[id(n)] for n in nodes]

    def _check_dimension(self, nodes: Sequence[BaseNode]) -> None:
        wanted = self._ingestor.embedder.dimension
        for node in nodes:
            got = len(node.embedding) if node.embedding is not None else wanted
            if got != wanted:
                raise EmbeddingMismatchError(
                    f"Node {node.node_id!r} has a {got}-dimension embedding, but the "
                    f"{self._backend.name} store at {self._backend.location} holds "
                    f"{wanted}-dimension vectors of {self._ingestor.embedder.model_id!r}. Build "
                    f"the index with embed_model=rag_app.embed_model() (or RagApp.embed_model)."
                )

    def _pending(
        self, doc_id: str, group: list[BaseNode], old: DocRecord | None
    ) -> PendingDocument:
        previous = group[0].relationships.get(NodeRelationship.PREVIOUS)
        tail = self._tails.get(doc_id)
        continues = (
            old is not None
            and tail is not None
            and isinstance(previous, RelatedNodeInfo)
            and (previous.node_id, old.n_chunks) == tail
        )
        first = tail[1] if continues and tail else 0
        nodes = [
            _catalog_node(node, doc_id, position, chunk_id)
            for position, (node, chunk_id) in enumerate(
                zip(group, chunk_ids(doc_id, first + len(group), first), strict=True), start=first
            )
        ]
        too_big = oversized(nodes)
        if too_big:
            raise CatalogWriteError(f"Document {doc_id!r}: {too_big}; nothing was written.")
        digest = _content_hash(old.content_hash if first and old else "", nodes)
        source = str(group[0].metadata.get("source") or group[0].metadata.get("file_path") or "")
        record = DocRecord(doc_id, digest, first + len(nodes), source)
        return PendingDocument(record, nodes, old.n_chunks if old else 0, first)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete a document: every chunk and its catalog record (absent ids do nothing)."""
        try:
            self._ingestor.delete([ref_doc_id])
        finally:
            self._tails.pop(ref_doc_id, None)
            self._on_change()

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        if not node_ids and not filters:
            return
        raise CatalogWriteError(
            f"delete_nodes() on the {self._backend.name} store would remove single chunks and "
            "leave their documents half-indexed in the catalog. Delete whole documents with "
            "index.delete_ref_doc(doc_id) (or `rag-app docs delete DOC_ID`)."
        )

    def clear(self) -> None:
        """Delete every document (the store's catalog says which)."""
        try:
            self._ingestor.delete(list(self._backend.documents()))
        finally:
            self._tails.clear()
            self._on_change()

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        if filters is not None:
            raise CatalogWriteError(
                "get_nodes(filters=...) is not supported by the rag_app stores; query with "
                "filters, or get nodes by id."
            )
        found = self._backend.fetch_nodes(node_ids or [])
        return [found[i] for i in node_ids or [] if i in found]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Cosine top-k, or MMR, after the options are checked (`rag_app.stores.query_options`)."""
        checked, mmr = check_query(query, self._backend.name, kwargs)
        if mmr is None:
            return self._backend.vector_store.query(checked, **kwargs)
        wide = replace(checked, similarity_top_k=mmr.prefetch)
        found = self._backend.vector_store.query(wide, **kwargs)
        nodes, cosines = found.nodes or [], found.similarities or []
        if not nodes or query.query_embedding is None:
            return found
        vectors = self._ingestor.embedder.embed_texts([searched_text(n) for n in nodes])
        _, picked = get_top_k_mmr_embeddings(
            list(query.query_embedding),
            vectors.tolist(),
            similarity_top_k=query.similarity_top_k,
            embedding_ids=list(range(len(nodes))),
            mmr_threshold=mmr.threshold,
        )
        return VectorStoreQueryResult(
            nodes=[nodes[i] for i in picked],
            similarities=[cosines[i] for i in picked],
            ids=[nodes[i].node_id for i in picked],
        )


def _catalog_node(node: BaseNode, doc_id: str, position: int, chunk_id: str) -> TextNode:
    """The node as the catalog stores it: stable id, flat metadata, its document as source."""
    metadata = {**flatten_metadata(node.metadata), "doc_id": doc_id, "chunk_index": position}
    stored = TextNode(
        id_=chunk_id,
        text=node.get_content(),
        embedding=node.embedding,
        metadata=metadata,
        excluded_embed_metadata_keys=[*node.excluded_embed_metadata_keys, *CATALOG_METADATA],
        excluded_llm_metadata_keys=[*node.excluded_llm_metadata_keys, *CATALOG_METADATA],
        start_char_idx=getattr(node, "start_char_idx", None),
        end_char_idx=getattr(node, "end_char_idx", None),
    )
    stored.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
    return stored


def _content_hash(before: str, nodes: Sequence[TextNode]) -> str:
    """Changes with any chunk's text or metadata (continued batches chain the hash)."""
    payload = json.dumps(
        [before, [[searched_text(n), n.metadata] for n in nodes]],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
