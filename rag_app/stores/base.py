"""What every vector-store backend provides, and the document catalog built on top of it.

LlamaIndex's vector stores hold chunks, but not the list of documents, their content hashes or
the embedding model that built the collection, and their delete and overwrite semantics differ
per integration. A `Backend` wraps one LlamaIndex vector store with the few operations the
shared ingestion and query paths need, each with the same meaning everywhere:

- `upsert` overwrites a chunk id that exists (never keeps stale text);
- `delete_chunks` deletes exactly the ids given;
- `query` returns cosine similarity as the score, as LlamaIndex nodes; `search` returns the
  same as plain `StoredChunk`s (the memory store answers it without importing LlamaIndex, so
  `rag-app retrieve` starts in well under a second);
- records (`read_records` / `write_records` / `delete_records`) are small JSON documents kept
  inside the store itself (a file, a side collection, a side namespace), so the catalog lives
  where the data lives and a second process or machine sees the same state.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from rag_app.errors import EmbeddingMismatchError
from rag_app.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from llama_index.core.schema import BaseNode, NodeWithScore, TextNode
    from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters

MANIFEST_KEY = "__manifest__"
#: The metadata field of a catalog record that holds when it was written (`time.time()` of the
#: writer), in stores that can select records by it (`read_records_since`).
WRITTEN_FIELD = "written"
#: `NodeRelationship.SOURCE` as a node's JSON spells it (the chunk's document).
SOURCE_RELATIONSHIP = "1"


@dataclass(frozen=True)
class StoredChunk:
    """A stored chunk as plain data: what a retrieval result needs, without LlamaIndex."""

    id: str
    text: str
    metadata: dict[str, Any]
    ref_doc_id: str | None
    start_char: int | None
    end_char: int | None
    #: The metadata keys left out of the embedded and of the LLM's text (LlamaIndex's
    #: `excluded_embed_metadata_keys` / `excluded_llm_metadata_keys`).
    excluded_embed_keys: tuple[str, ...] = ()
    excluded_llm_keys: tuple[str, ...] = ()

    @classmethod
    def of_node(cls, node: BaseNode) -> StoredChunk:
        from llama_index.core.schema import MetadataMode  # a node is given: LlamaIndex is loaded

        return cls(
            id=node.node_id,
            text=node.get_content(metadata_mode=MetadataMode.NONE),
            metadata=dict(node.metadata),
            ref_doc_id=node.ref_doc_id,
            start_char=getattr(node, "start_char_idx", None),
            end_char=getattr(node, "end_char_idx", None),
            excluded_embed_keys=tuple(node.excluded_embed_metadata_keys),
            excluded_llm_keys=tuple(node.excluded_llm_metadata_keys),
        )

    @classmethod
    def of_flat_metadata(cls, metadata: dict[str, Any], text: str | None) -> StoredChunk | None:
        """The chunk a flat metadata dict holds (LlamaIndex's `node_to_metadata_dict`, as
        Chroma and Pinecone store it), read without building the node; None unless it is a
        TextNode's. `text` is the store's own copy of the text (Chroma's document), if any."""
        if metadata.get("_node_type") != "TextNode" or "_node_content" not in metadata:
            return None
        import orjson  # a quarter faster than json here; a copy parses 100k of these

        try:
            node = orjson.loads(metadata["_node_content"])
        except orjson.JSONDecodeError:  # NaN or Infinity, which json.dumps writes
            node = json.loads(metadata["_node_content"])
        source = (node.get("relationships") or {}).get(SOURCE_RELATIONSHIP)
        return cls(
            id=node["id_"],
            text=node.get("text", "") if text is None else text,
            metadata=node.get("metadata") or {},
            ref_doc_id=source.get("node_id") if isinstance(source, dict) else None,
            start_char=node.get("start_char_idx"),
            end_char=node.get("end_char_idx"),
            excluded_embed_keys=tuple(node.get("excluded_embed_metadata_keys") or ()),
            excluded_llm_keys=tuple(node.get("excluded_llm_metadata_keys") or ()),
        )


@dataclass
class EmbeddedBatch:
    """Chunks with their stored vectors as one float32 matrix: row i is `nodes[i]`'s vector.

    Why: `rag-app migrate` copies vectors from store to store. Kept as a matrix they skip
    `TextNode.embedding`, a list of Python floats that pydantic validates on assignment: a
    read into lists and a write back into an array cost more than the memory store's whole
    write of the same chunks. A node may or may not also hold its vector as a list.
    """

    nodes: list[TextNode]
    vectors: np.ndarray

    def embedded_nodes(self) -> list[TextNode]:
        """The nodes, each with its vector as `embedding` (for stores that take lists)."""
        for node, row in zip(self.nodes, self.vectors, strict=True):
            if node.embedding is None:
                node.embedding = row.tolist()
        return self.nodes

    def chunks(self) -> list[StoredChunk]:
        """The chunks as plain data, for a store that keeps only these fields (memory)."""
        return [StoredChunk.of_node(node) for node in self.nodes]


class FlatEmbeddedBatch(EmbeddedBatch):
    """A batch as a store of flat metadata dicts returned it (Chroma): nodes made on demand.

    Why: a Chroma -> memory copy of 100k chunks spent 4 s making LlamaIndex nodes (pydantic
    validation of every field) that the memory store takes apart again. The memory store
    reads `chunks` (one `json.loads` each) instead; other writers ask for `nodes`.
    """

    def __init__(
        self, metadatas: list[dict[str, Any]], texts: list[str | None], vectors: np.ndarray
    ) -> None:
        self.metadatas, self.texts, self.vectors = metadatas, texts, vectors

    @cached_property
    def nodes(self) -> list[TextNode]:  # type: ignore[override]
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        return [
            metadata_dict_to_node(m, t) for m, t in zip(self.metadatas, self.texts, strict=True)
        ]

    def chunks(self) -> list[StoredChunk]:
        if "nodes" in self.__dict__:
            return super().chunks()
        found = [
            StoredChunk.of_flat_metadata(m, t)
            for m, t in zip(self.metadatas, self.texts, strict=True)
        ]
        if any(chunk is None for chunk in found):
            return super().chunks()
        return found  # type: ignore[return-value]


@dataclass(frozen=True)
class DocRecord:
    """One document as the catalog knows it. `complete` is False while an ingest is writing."""

    doc_id: str
    content_hash: str
    n_chunks: int
    source: str = ""
    complete: bool = True

    @property
    def key(self) -> str:
        return doc_key(self.doc_id)

    def chunk_ids(self) -> list[str]:
        return chunk_ids(self.doc_id, self.n_chunks)


def doc_key(doc_id: str) -> str:
    """A short ASCII key for a document id (ids may be long or Korean; stores limit ids)."""
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:20]


def chunk_ids(doc_id: str, n: int, start: int = 0) -> list[str]:
    """Stable chunk ids: a document's key and the chunk's position."""
    key = doc_key(doc_id)
    return [f"{key}:{i}" for i in range(start, n)]


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Backend(ABC):
    """One vector database behind the app's ingestion and query paths."""

    name: ClassVar[str]
    #: Where the data lives, shown by `rag-app stores` and in errors.
    location: str
    #: False when written chunks are durable only after `flush` (memory).
    writes_through: bool = True
    vector_store: BasePydanticVectorStore

    @classmethod
    @abstractmethod
    def open(cls, settings: Settings, collection: str, dimension: Callable[[], int]) -> Backend:
        """Connect to (or create) `collection`; `dimension` is called only if it is needed."""

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        """Why this backend cannot be used with these settings now, or None."""
        return None

    @abstractmethod
    def upsert(self, nodes: Sequence[TextNode]) -> None:
        """Write chunks (with embeddings); an existing id is overwritten."""

    def prepare_upsert(self, nodes: Sequence[TextNode]) -> Callable[[], None]:
        """`upsert(nodes)` in two steps: the returned call writes. A backend that encodes its
        records in Python does that here (any thread: the ingest's look-ahead), so the thread
        that writes in order only sends."""
        return lambda: self.upsert(nodes)

    @abstractmethod
    def delete_chunks(self, ids: Sequence[str]) -> None:
        """Delete exactly these chunk ids; unknown ids are ignored."""

    @abstractmethod
    def fetch_nodes(self, ids: Sequence[str]) -> dict[str, TextNode]:
        """Chunks by id, without embeddings (missing ids are absent from the result)."""

    @abstractmethod
    def fetch_embedded(self, ids: Sequence[str]) -> dict[str, TextNode]:
        """Chunks by id with their stored vectors: what `rag-app migrate` copies unembedded."""

    def read_embedded(self, ids: Sequence[str]) -> EmbeddedBatch:
        """The chunks of `ids` that exist, in that order, with their vectors as a matrix."""
        import numpy as np  # lazy: the catalog side of a backend needs no numpy

        found = self.fetch_embedded(ids)
        nodes = [found[i] for i in ids if i in found]
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        return EmbeddedBatch(nodes, vectors)

    def write_embedded(self, batch: EmbeddedBatch) -> None:
        """`upsert` of a batch read by `read_embedded` (stores that take a matrix override it)."""
        self.upsert(batch.embedded_nodes())

    @abstractmethod
    def count(self) -> int:
        """Number of chunks stored."""

    @abstractmethod
    def list_chunk_ids(self) -> list[str]:
        """Every chunk id stored (paged under the hood), for the consistency check."""

    @abstractmethod
    def read_records(self) -> dict[str, dict[str, Any]]:
        """Every catalog record by key."""

    def read_record(self, key: str) -> dict[str, Any] | None:
        """One catalog record by key; remote stores fetch just that one (see `manifest`)."""
        return self.read_records_by_key([key]).get(key)

    def read_records_by_key(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The catalog records of `keys` that exist (remote stores fetch only those)."""
        records = self.read_records()
        return {key: records[key] for key in keys if key in records}

    def record_keys(self) -> list[str]:
        """Every catalog record's key, without the records (cheaper than `read_records`)."""
        return list(self.read_records())

    def read_records_since(self, stamp: float) -> dict[str, dict[str, Any]] | None:
        """Records written at or after `stamp` (writer's `time.time()`), or None when the
        store keeps no write stamps: then a reader that wants what changed reads everything."""
        return None

    @abstractmethod
    def write_records(self, records: dict[str, dict[str, Any]]) -> None:
        """Create or overwrite catalog records; durable when this returns."""

    @abstractmethod
    def delete_records(self, keys: Sequence[str]) -> None:
        """Delete catalog records by key."""

    @abstractmethod
    def drop(self) -> None:
        """Remove the collection, its chunks and its catalog."""

    def flush(self) -> None:  # noqa: B027 - a no-op for stores that write through
        """Make written chunks durable (stores that write through need nothing)."""

    def close(self) -> None:  # noqa: B027 - a no-op for stores without connections
        """Release clients and files."""

    def query(
        self, embedding: Sequence[float], top_k: int, filters: MetadataFilters | None = None
    ) -> list[NodeWithScore]:
        """Top-k chunks by cosine similarity."""
        # lazy: the catalog side of a backend (`rag-app docs list`) needs no LlamaIndex (1 s)
        from llama_index.core.schema import NodeWithScore
        from llama_index.core.vector_stores.types import VectorStoreQuery

        result = self.vector_store.query(
            VectorStoreQuery(
                query_embedding=list(embedding), similarity_top_k=top_k, filters=filters
            )
        )
        return [
            NodeWithScore(node=node, score=float(score))
            for node, score in zip(result.nodes or [], result.similarities or [], strict=True)
        ]

    def search(self, embedding: Sequence[float], top_k: int) -> list[tuple[StoredChunk, float]]:
        """`query` as plain chunks and scores, best first."""
        return [
            (StoredChunk.of_node(hit.node), float(hit.score or 0.0))
            for hit in self.query(embedding, top_k)
        ]

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        """`fetch_nodes` as plain chunks."""
        return {i: StoredChunk.of_node(node) for i, node in self.fetch_nodes(ids).items()}

    # The catalog: documents and the manifest, stored as records.

    def documents(self) -> dict[str, DocRecord]:
        records = self.read_records()
        records.pop(MANIFEST_KEY, None)
        return {r["doc_id"]: DocRecord(**r) for r in records.values()}

    def put_documents(self, docs: Iterable[DocRecord]) -> None:
        records = {d.key: asdict(d) for d in docs}
        if records:
            self.write_records(records)

    def remove_documents(self, doc_ids: Iterable[str]) -> None:
        keys = [doc_key(d) for d in doc_ids]
        if keys:
            self.delete_records(keys)

    def manifest(self) -> dict[str, Any] | None:
        """The model that built the store: one record, read on every open and first query."""
        return self.read_record(MANIFEST_KEY)

    def check_dimension(self, dimension: int) -> None:  # noqa: B027 - most stores take any
        """Refuse vectors of a dimension the store cannot hold (a Pinecone index keeps its own)."""

    def check_embedding(self, model_id: str, dimension: int) -> None:
        """Refuse a model other than the one that built this store, before anything is written."""
        manifest = self.manifest()
        if manifest is None:
            return
        if (manifest["embed_model"], manifest["dimension"]) != (model_id, dimension):
            built_with = manifest["embed_model"]
            raise EmbeddingMismatchError(
                f"The {self.name} store at {self.location} was built with embedding model "
                f"{built_with!r} (dimension {manifest['dimension']}), but RAG_EMBED_MODEL "
                f"gives {model_id!r} (dimension {dimension}). Run `rag-app reindex` to "
                f"re-embed its chunks with the new model (no source files needed), or set "
                f"RAG_EMBED_MODEL={embed_model_setting(built_with)} to keep using it."
            )

    def record_embedding(self, model_id: str, dimension: int) -> None:
        if self.manifest() is None:
            self.write_records({MANIFEST_KEY: {"embed_model": model_id, "dimension": dimension}})


def embed_model_setting(model_id: str) -> str:
    """The RAG_EMBED_MODEL value that gives `model_id` (offline models have short names)."""
    name, _, _ = model_id.partition(":")
    return name if name in ("e5", "use", "local") else model_id


def encode_record(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def searched_text(node: BaseNode) -> str:
    """What is embedded and keyword-indexed for a chunk: its text under its title."""
    from llama_index.core.schema import MetadataMode  # lazy: see `Backend.query`

    return node.get_content(metadata_mode=MetadataMode.EMBED)
