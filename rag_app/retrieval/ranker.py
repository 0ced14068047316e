"""The one retrieval rule: dense, keyword or both fused, then each hit's absolute relevance.

It ranks any kind of stored item: `HybridRetriever` (rag_app/retrieval/retriever.py) ranks
LlamaIndex nodes for query and chat engines, and `RagApp.retrieve` / `rag-app retrieve` rank
plain `StoredChunk`s, which the memory store serves without importing LlamaIndex (a second of
start-up). The two are the same ranking over the same store (tests/test_retrieve_paths.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rag_app.retrieval.fusion import fuse
from rag_app.retrieval.keyword_sync import KeywordSearch, KeywordSync
from rag_app.retrieval.relevance import Relevance, Signal, dense_weight, language, min_relevance
from rag_app.retrieval.rerank import RERANK_CANDIDATES
from rag_app.settings import RetrieverName

#: Candidates each retriever contributes before fusion, as a multiple of top_k. Deeper lists do
#: not pay: 20, 40 or 80 candidates give XQuAD en hybrid hit@1 within 0.002 of each other.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 20

Item = TypeVar("Item")
#: (id, item, score) triples, best first.
Hits = list[tuple[str, Item, float]]


@dataclass(frozen=True)
class Ranked(Generic[Item]):
    """One result: the item, its rank score, its relevance and whether it reaches the
    threshold of this model and question (rag_app.retrieval.relevance)."""

    id: str
    item: Item
    score: float
    relevance: float
    relevant: bool


@dataclass
class Ranker(Generic[Item]):
    """`dense(query, k)` and `fetch(ids)` say how the store serves items; `rerank(query, hits,
    k)`, when set, rescores the first stage's RERANK_CANDIDATES x k hits."""

    dense: Callable[[str, int], Hits]
    fetch: Callable[[Sequence[str]], dict[str, Item]]
    keyword: KeywordSearch | None
    mode: RetrieverName
    model_id: str
    min_relevance: float | None = None
    rerank: Callable[[str, Hits, int], Hits] | None = None

    @property
    def signal(self) -> Signal:
        """Which relevance these results carry (rag_app.retrieval.relevance)."""
        if self.mode == "dense" or not self._covers:
            return "dense"
        return "keyword" if self.mode == "keyword" else "hybrid"

    @property
    def _covers(self) -> bool:
        """Whether the keyword side tells a chunk's coverage (the local index; not Pinecone's)."""
        return isinstance(self.keyword, KeywordSync)

    def search(self, query: str, top_k: int) -> list[Ranked[Item]]:
        threshold = min_relevance(self.model_id, self.signal, self.min_relevance, query)
        weight = dense_weight(self.model_id, language(query))
        found = []
        for (item_id, item, score), signals in self.search_with_relevance(query, top_k):
            relevance = signals.score(self.signal, weight)
            found.append(Ranked(item_id, item, score, relevance, relevance >= threshold))
        return found

    def search_with_relevance(self, query: str, top_k: int) -> list[tuple[tuple, Relevance]]:
        """The top_k hits, each with its absolute relevance signals."""
        if self.rerank is None:
            hits, dense = self._first_stage(query, top_k)
        else:
            candidates, dense = self._first_stage(query, top_k * RERANK_CANDIDATES)
            hits = self.rerank(query, candidates, top_k)
        ids = [item_id for item_id, _, _ in hits]
        coverage = self.keyword.index.coverage(query, ids) if self._covers else {}
        floor = min(dense.values(), default=None)
        return [(hit, Relevance(dense.get(hit[0], floor), coverage.get(hit[0]))) for hit in hits]

    def _first_stage(self, query: str, top_k: int) -> tuple[Hits, dict[str, float]]:
        """The ranked hits, and the cosine similarity of those the dense list found."""
        if self.mode == "dense":
            hits = self.dense(query, top_k)
            return hits, _similarities(hits)
        if self.mode == "keyword":
            return self._with_items(self._keyword(query, top_k), {}), {}
        candidates = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
        dense = self.dense(query, candidates)
        fused = fuse([(i, s) for i, _, s in dense], self._keyword(query, candidates), top_k)
        return self._with_items(fused, {i: item for i, item, _ in dense}), _similarities(dense)

    def _keyword(self, query: str, top_k: int) -> list[tuple[str, float]]:
        if self.keyword is None:
            return []
        return self.keyword.search(query, top_k)

    def _with_items(self, ranked: list[tuple[str, float]], known: dict[str, Item]) -> Hits:
        missing = [i for i, _ in ranked if i not in known]
        if missing:
            known = {**known, **self.fetch(missing)}
        return [(i, known[i], s) for i, s in ranked if i in known]


def _similarities(hits: Hits) -> dict[str, float]:
    return {item_id: float(score) for item_id, _, score in hits}
