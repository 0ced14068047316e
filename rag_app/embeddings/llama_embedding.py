"""`CachedEmbedding`: the app's `Embedder` as a LlamaIndex embedding model.

Kept apart from rag_app/embeddings/models.py so that embedding a question (`rag-app retrieve`)
imports no LlamaIndex.
"""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag_app.embeddings.models import Embedder


class CachedEmbedding(BaseEmbedding):
    """An `Embedder` as a LlamaIndex `BaseEmbedding`: LlamaIndex code embeds through the same
    model and the same on-disk cache as `rag-app ingest`, so vectors agree and nothing is
    embedded twice."""

    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(
            model_name=embedder.model_id,
            embed_batch_size=max(embedder.model.embed_batch_size, 1),
        )
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "RagAppCachedEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_texts(texts).tolist()
