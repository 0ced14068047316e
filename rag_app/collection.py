"""`Collection`: one collection of the configured store, opened to find sources.

It holds what a search needs (settings, backend, embedder, keyword index) and `retrieve`, and
imports no LlamaIndex: `rag-app retrieve` and the offline `rag-app query` run on it and answer
in less time than importing LlamaIndex alone takes (docs/performance.md). `RagApp`
(rag_app/app.py) is a Collection plus ingestion, answers, images and the LlamaIndex surface, so
both retrieve alike: the same `Ranker` (rag_app/retrieval/ranker.py) ranks plain chunks here
and nodes in LlamaIndex engines; `extract` answers as RagApp's extractive query engine does.
"""

from __future__ import annotations

from functools import cached_property
from typing import Self

from rag_app.answers.extractive import extract_answer
from rag_app.answers.types import Answer, Source
from rag_app.embeddings.models import Embedder, build_embedder, embedding_model_id
from rag_app.errors import ConfigError
from rag_app.retrieval.keyword_sync import KeywordSearch, open_keyword_search
from rag_app.retrieval.ranker import Hits, Ranked, Ranker
from rag_app.retrieval.rerank import Reranker, build_reranker
from rag_app.settings import (
    RetrieverName,
    Settings,
    check_embedder_settings,
    check_question,
    check_sparse_index_settings,
    check_top_k,
)
from rag_app.stores.base import Backend, StoredChunk
from rag_app.stores.registry import open_backend


class Collection:
    """Find the sources of questions in one collection of the configured vector store."""

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self._owns_embedder = embedder is None
        check_sparse_index_settings(settings)
        if embedder is None:
            check_embedder_settings(settings)
        else:
            self.embedder = embedder
        self.backend: Backend = open_backend(settings, lambda: self.embedder.dimension, collection)
        self._embedding_checked = False
        self._collection = collection or settings.collection

    # The embedding model takes seconds to load and the keyword index syncs with the catalog:
    # both are built on first use, so `docs list`, `docs delete` and configuration errors are
    # fast, and a run that fails early leaves no cache or index files behind.

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.settings)

    @cached_property
    def keyword(self) -> KeywordSearch | None:
        return open_keyword_search(self.backend, self.settings)

    @cached_property
    def reranker(self) -> Reranker | None:
        return build_reranker(self.settings.reranker)

    def retrieve(
        self, question: str, top_k: int | None = None, retriever: RetrieverName | None = None
    ) -> list[Source]:
        """The sources for a question, best first (no answer); `retriever` overrides
        RAG_RETRIEVER for this call."""
        check_question(question)
        check_top_k(top_k)
        self._check_embedding()
        ranker = self._chunk_ranker(retriever or self.settings.retriever)
        found = ranker.search(question, top_k or self.settings.top_k)
        return [_source(number, hit) for number, hit in enumerate(found, start=1)]

    def extract(self, question: str, top_k: int | None = None) -> Answer:
        """The offline answer (the sources' best sentences) with its sources: what `RagApp.query`
        answers with RAG_LLM=extractive and no answer cache, without LlamaIndex's engine."""
        sources = self.retrieve(question, top_k)
        return Answer(question, extract_answer(question, sources), "extractive", sources)

    def _chunk_ranker(self, mode: RetrieverName) -> Ranker[StoredChunk]:
        self._check_mode(mode)
        return Ranker(
            dense=self._dense_chunks,
            fetch=self.backend.fetch_chunks,
            keyword=self.keyword,
            mode=mode,
            model_id=self.embedder.model_id,
            min_relevance=self.settings.min_relevance,
            rerank=self._rerank_chunks if self.reranker is not None else None,
        )

    def _check_mode(self, mode: RetrieverName) -> None:
        if mode != "dense" and self.keyword is None:
            raise ConfigError(
                f"the {mode} retriever needs the keyword index, which RAG_RETRIEVER=dense does "
                "not keep: ask for the dense retriever, or set RAG_RETRIEVER=hybrid"
            )

    def _dense_chunks(self, query: str, top_k: int) -> Hits:
        found = self.backend.search(self.embedder.embed_query(query), top_k)
        return [(chunk.id, chunk, score) for chunk, score in found]

    def _rerank_chunks(self, query: str, hits: Hits, top_k: int) -> Hits:
        """The cross-encoder reads the stored nodes (their titles included), as in LlamaIndex
        engines; it loads torch and LlamaIndex anyway."""
        from llama_index.core.schema import NodeWithScore

        assert self.reranker is not None
        nodes = self.backend.fetch_nodes([item_id for item_id, _, _ in hits])
        chunks = {item_id: chunk for item_id, chunk, _ in hits}
        candidates = [NodeWithScore(node=nodes[i], score=s) for i, _, s in hits if i in nodes]
        return [
            (hit.node.node_id, chunks[hit.node.node_id], float(hit.score or 0.0))
            for hit in self.reranker.rerank(query, candidates, top_k)
        ]

    def _model_id(self) -> str:
        """The embedding model's id, without loading the model."""
        embedder = self.__dict__.get("embedder")
        return embedder.model_id if embedder else embedding_model_id(self.settings)

    def _check_model_id(self) -> None:
        """A store built with another model is refused before the model is loaded."""
        model_id = self._model_id()
        manifest = self.backend.manifest()
        if manifest is not None and manifest["embed_model"] != model_id:
            self.backend.check_embedding(model_id, manifest["dimension"])

    def _check_embedding(self) -> None:
        if not self._embedding_checked:
            self._check_model_id()
            self.backend.check_embedding(self.embedder.model_id, self.embedder.dimension)
            self._embedding_checked = True

    def close(self) -> None:
        self.backend.close()
        embedder = self.__dict__.get("embedder")
        if self._owns_embedder and embedder is not None and embedder.cache:
            embedder.cache.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _source(number: int, hit: Ranked[StoredChunk]) -> Source:
    chunk = hit.item
    return Source(
        number=number,
        doc_id=str(chunk.metadata.get("doc_id") or chunk.ref_doc_id or ""),
        score=hit.score,
        text=chunk.text,
        start_char=chunk.start_char,
        end_char=chunk.end_char,
        source=str(chunk.metadata.get("source", "")),
        relevance=hit.relevance,
        relevant=hit.relevant,
    )
