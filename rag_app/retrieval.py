"""The one query-side retriever: dense (the vector store), keyword (BM25) or both fused.

`HybridRetriever` is a LlamaIndex `BaseRetriever`, so it plugs into LlamaIndex query engines.
The keyword index is a cache derived from the store: `KeywordSync` keeps it next to the
collection's data under RAG_DATA_DIR, updates it from the ingestion path (add, replace,
delete), and rebuilds it from the store's chunk texts whenever the catalog's fingerprint shows
that the store changed in a way the cache did not see (another process, another machine), or
the index was tokenized by another version of the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag_app.embeddings import Embedder
from rag_app.files import write_atomically
from rag_app.fusion import fuse
from rag_app.ingestion import searched_text
from rag_app.keyword import TOKENIZER_VERSION, KeywordIndex
from rag_app.rerank import RERANK_CANDIDATES, Reranker
from rag_app.settings import RetrieverName
from rag_app.stores.base import Backend

#: Candidates each retriever contributes before fusion, as a multiple of top_k. Deeper lists do
#: not pay: 20, 40 or 80 candidates give XQuAD en hybrid hit@1 within 0.002 of each other.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 20
FINGERPRINT_FILE = "fingerprint.json"


def catalog_fingerprint(backend: Backend) -> str:
    """Changes whenever any document is added, replaced or deleted."""
    rows = sorted(
        (r.doc_id, r.content_hash, r.n_chunks, r.complete) for r in backend.documents().values()
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


class KeywordSync:
    """A `KeywordIndex` for one collection, persisted beside it and kept in sync."""

    def __init__(self, backend: Backend, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.index = self._load_or_rebuild()

    def _load_or_rebuild(self) -> KeywordIndex:
        fingerprint = catalog_fingerprint(self.backend)
        if self._saved_fingerprint() == fingerprint and KeywordIndex.exists(self.directory):
            return KeywordIndex.load(self.directory)
        index = KeywordIndex()
        ids = [i for r in self.backend.documents().values() for i in r.chunk_ids()]
        nodes = self.backend.fetch_nodes(ids) if ids else {}
        index.add(list(nodes), [searched_text(n) for n in nodes.values()])
        self._save(index, fingerprint)
        return index

    def _saved_fingerprint(self) -> str | None:
        """The catalog the saved index was built from; None if none, or from another tokenizer."""
        path = self.directory / FINGERPRINT_FILE
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        return saved["catalog"] if saved.get("tokenizer") == TOKENIZER_VERSION else None

    def _save(self, index: KeywordIndex, fingerprint: str) -> None:
        index.save(self.directory)
        stamp = {"catalog": fingerprint, "tokenizer": TOKENIZER_VERSION}
        write_atomically(self.directory / FINGERPRINT_FILE, json.dumps(stamp))

    def chunks_written(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self.index.add(ids, texts)

    def chunks_deleted(self, ids: Sequence[str]) -> None:
        self.index.delete(ids)

    def commit(self) -> None:
        """Persist after an ingest or delete, stamped with the store's new fingerprint."""
        self._save(self.index, catalog_fingerprint(self.backend))


class HybridRetriever(BaseRetriever):
    """Dense, keyword or fused retrieval over one backend, scores in [0, 1]-ish per mode."""

    def __init__(
        self,
        backend: Backend,
        embedder: Embedder,
        keyword: KeywordSync | None,
        mode: RetrieverName = "hybrid",
        top_k: int = 5,
        reranker: Reranker | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.embedder = embedder
        self.keyword = keyword
        self.mode = mode
        self.top_k = top_k
        self.reranker = reranker

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str, self.top_k)

    def search(self, query: str, top_k: int) -> list[NodeWithScore]:
        """The top_k chunks for `query`, reranked when a reranker is configured."""
        if self.reranker is None:
            return self._first_stage(query, top_k)
        candidates = self._first_stage(query, top_k * RERANK_CANDIDATES)
        return self.reranker.rerank(query, candidates, top_k)

    def _first_stage(self, query: str, top_k: int) -> list[NodeWithScore]:
        if self.mode == "dense":
            return self._dense(query, top_k)
        if self.mode == "keyword":
            return self._with_nodes(self._keyword(query, top_k), {})
        candidates = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
        dense = self._dense(query, candidates)
        keyword = self._keyword(query, candidates)
        fused = fuse([(n.node.node_id, n.score or 0.0) for n in dense], keyword, top_k)
        return self._with_nodes(fused, {n.node.node_id: n.node for n in dense})

    def _dense(self, query: str, top_k: int) -> list[NodeWithScore]:
        return self.backend.query(self.embedder.embed_query(query), top_k)

    def _keyword(self, query: str, top_k: int) -> list[tuple[str, float]]:
        if self.keyword is None:
            return []
        return self.keyword.index.search(query, top_k)

    def _with_nodes(
        self, ranked: list[tuple[str, float]], known: dict[str, TextNode]
    ) -> list[NodeWithScore]:
        missing = [i for i, _ in ranked if i not in known]
        if missing:
            known = {**known, **self.backend.fetch_nodes(missing)}
        return [NodeWithScore(node=known[i], score=s) for i, s in ranked if i in known]
