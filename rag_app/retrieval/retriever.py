"""The query-side retriever of LlamaIndex engines: `rag_app.retrieval.ranker` over nodes.

`HybridRetriever` is a LlamaIndex `BaseRetriever`, so it plugs into LlamaIndex query engines.
Its keyword half is a `KeywordSearch`: the local index kept by `keyword_sync.KeywordSync`, or
`pinecone_sparse.PineconeKeyword` with Pinecone and PINECONE_SPARSE_INDEX. The sources carry
their relevance as `RelevantNode`s, so it reaches synthesizers and `response.source_nodes`.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag_app.embeddings.models import Embedder
from rag_app.retrieval.keyword_sync import KeywordSearch
from rag_app.retrieval.ranker import Hits, Ranker
from rag_app.retrieval.relevance import Relevance, Signal
from rag_app.retrieval.rerank import Reranker
from rag_app.settings import RetrieverName
from rag_app.stores.base import Backend


class RelevantNode(NodeWithScore):
    """A retrieved node with its absolute relevance and whether it reaches the threshold."""

    relevance: float
    relevant: bool


def is_relevant(hit: NodeWithScore) -> bool:
    """False only for a node the retriever judged irrelevant (other retrievers judge nothing)."""
    return not isinstance(hit, RelevantNode) or hit.relevant


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
        self.ranker: Ranker[TextNode] = Ranker(
            dense=self._dense,
            fetch=backend.fetch_nodes,
            keyword=keyword,
            mode=mode,
            model_id=embedder.model_id,
            min_relevance=min_relevance,
            rerank=self._rerank if reranker is not None else None,
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str, self.top_k)

    def search(self, query: str, top_k: int) -> list[RelevantNode]:
        """The top_k chunks for `query`, reranked when a reranker is configured, each with its
        relevance and whether it reaches the threshold for this model and question."""
        return [
            RelevantNode(node=r.item, score=r.score, relevance=r.relevance, relevant=r.relevant)
            for r in self.ranker.search(query, top_k)
        ]

    def search_with_relevance(
        self, query: str, top_k: int
    ) -> list[tuple[NodeWithScore, Relevance]]:
        """The top_k chunks, each with its absolute relevance signals
        (rag_app.retrieval.relevance)."""
        return [
            (NodeWithScore(node=node, score=score), signals)
            for (_, node, score), signals in self.ranker.search_with_relevance(query, top_k)
        ]

    @property
    def signal(self) -> Signal:
        """Which relevance this retriever's sources carry (rag_app.retrieval.relevance)."""
        return self.ranker.signal

    def _dense(self, query: str, top_k: int) -> Hits:
        hits = self.backend.query(self.embedder.embed_query(query), top_k)
        return [(hit.node.node_id, hit.node, float(hit.score or 0.0)) for hit in hits]

    def _rerank(self, query: str, candidates: Hits, top_k: int) -> Hits:
        assert self.reranker is not None
        nodes = [NodeWithScore(node=node, score=score) for _, node, score in candidates]
        return [
            (hit.node.node_id, hit.node, float(hit.score or 0.0))
            for hit in self.reranker.rerank(query, nodes, top_k)
        ]
