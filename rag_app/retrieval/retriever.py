"""The one query-side retriever: dense (the vector store), keyword (BM25) or both fused.

`HybridRetriever` is a LlamaIndex `BaseRetriever`, so it plugs into LlamaIndex query engines.
Its keyword half is a `KeywordSearch`: the local index kept by `keyword_sync.KeywordSync`, or
`pinecone_sparse.PineconeKeyword` with Pinecone and PINECONE_SPARSE_INDEX.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag_app.embeddings.models import Embedder
from rag_app.retrieval.fusion import fuse
from rag_app.retrieval.keyword_sync import KeywordSearch, KeywordSync
from rag_app.retrieval.relevance import (
    Relevance,
    RelevantNode,
    Signal,
    dense_weight,
    language,
    min_relevance,
)
from rag_app.retrieval.rerank import RERANK_CANDIDATES, Reranker
from rag_app.settings import RetrieverName
from rag_app.stores.base import Backend

#: Candidates each retriever contributes before fusion, as a multiple of top_k. Deeper lists do
#: not pay: 20, 40 or 80 candidates give XQuAD en hybrid hit@1 within 0.002 of each other.
CANDIDATE_FACTOR = 4


MIN_CANDIDATES = 20


class HybridRetriever(BaseRetriever):
    """Dense, keyword or fused retrieval over one backend, scores in [0, 1]-ish per mode."""

    def __init__(
        self,
        backend: Backend,
        embedder: Embedder,
        keyword: KeywordSearch | None,
        mode: RetrieverName = "hybrid",
        top_k: int = 5,
        reranker: Reranker | None = None,
        min_relevance: float | None = None,
    ) -> None:
        """`min_relevance` overrides the model's relevance threshold (RAG_MIN_RELEVANCE)."""
        super().__init__()
        self.backend = backend
        self.embedder = embedder
        self.keyword = keyword
        self.mode = mode
        self.top_k = top_k
        self.reranker = reranker
        self.min_relevance = min_relevance

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str, self.top_k)

    def search(self, query: str, top_k: int) -> list[RelevantNode]:
        """The top_k chunks for `query`, reranked when a reranker is configured, each with its
        relevance and whether it reaches the threshold for this model and question."""
        signal = self.signal
        model = self.embedder.model_id
        threshold = min_relevance(model, signal, self.min_relevance, query)
        weight = dense_weight(model, language(query))
        found = []
        for hit, signals in self.search_with_relevance(query, top_k):
            relevance = signals.score(signal, weight)
            found.append(
                RelevantNode(
                    node=hit.node,
                    score=hit.score,
                    relevance=relevance,
                    relevant=relevance >= threshold,
                )
            )
        return found

    def search_with_relevance(
        self, query: str, top_k: int
    ) -> list[tuple[NodeWithScore, Relevance]]:
        """The top_k chunks, each with its absolute relevance signals
        (rag_app.retrieval.relevance)."""
        if self.reranker is None:
            hits, dense = self._first_stage(query, top_k)
        else:
            candidates, dense = self._first_stage(query, top_k * RERANK_CANDIDATES)
            hits = self.reranker.rerank(query, candidates, top_k)
        ids = [hit.node.node_id for hit in hits]
        coverage = self.keyword.index.coverage(query, ids) if self._covers else {}
        floor = min(dense.values(), default=None)
        return [
            (hit, Relevance(dense.get(i, floor), coverage.get(i)))
            for hit, i in zip(hits, ids, strict=True)
        ]

    @property
    def _covers(self) -> bool:
        """Whether the keyword side tells a chunk's coverage (the local index; not Pinecone's)."""
        return isinstance(self.keyword, KeywordSync)

    @property
    def signal(self) -> Signal:
        """Which relevance this retriever's sources carry (rag_app.retrieval.relevance)."""
        if self.mode == "dense" or not self._covers:
            return "dense"
        return "keyword" if self.mode == "keyword" else "hybrid"

    def _first_stage(self, query: str, top_k: int) -> tuple[list[NodeWithScore], dict[str, float]]:
        """The ranked chunks, and the cosine similarity of those the dense list found."""
        if self.mode == "dense":
            hits = self._dense(query, top_k)
            return hits, _similarities(hits)
        if self.mode == "keyword":
            return self._with_nodes(self._keyword(query, top_k), {}), {}
        candidates = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
        dense = self._dense(query, candidates)
        keyword = self._keyword(query, candidates)
        fused = fuse([(n.node.node_id, n.score or 0.0) for n in dense], keyword, top_k)
        return self._with_nodes(fused, {n.node.node_id: n.node for n in dense}), _similarities(
            dense
        )

    def _dense(self, query: str, top_k: int) -> list[NodeWithScore]:
        return self.backend.query(self.embedder.embed_query(query), top_k)

    def _keyword(self, query: str, top_k: int) -> list[tuple[str, float]]:
        if self.keyword is None:
            return []
        return self.keyword.search(query, top_k)

    def _with_nodes(
        self, ranked: list[tuple[str, float]], known: dict[str, TextNode]
    ) -> list[NodeWithScore]:
        missing = [i for i, _ in ranked if i not in known]
        if missing:
            known = {**known, **self.backend.fetch_nodes(missing)}
        return [NodeWithScore(node=known[i], score=s) for i, s in ranked if i in known]


def _similarities(hits: list[NodeWithScore]) -> dict[str, float]:
    return {hit.node.node_id: float(hit.score or 0.0) for hit in hits}
