"""An optional reranking stage: a cross-encoder rescores the retrieved candidates.

Off by default (RAG_RERANKER=none): no cross-encoder ships offline. With
`RAG_RERANKER=hf:<name or path>`, LlamaIndex's `SentenceTransformerRerank` rescores
`RERANK_CANDIDATES` x top_k candidates from the retriever and keeps the best top_k.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rag_app.errors import ConfigError

if TYPE_CHECKING:
    from llama_index.core.schema import NodeWithScore

RERANK_CANDIDATES = 4


class Reranker:
    def __init__(self, spec: str) -> None:
        from llama_index.core.postprocessor import SentenceTransformerRerank

        name = spec.removeprefix("hf:")
        if Path(name).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self._model = SentenceTransformerRerank(model=name, device="cpu")
        except OSError as exc:
            raise ConfigError(
                f"RAG_RERANKER={spec!r}: cannot load the cross-encoder ({exc}). Give a local "
                "path or a cached model, or set RAG_RERANKER=none."
            ) from None

    def rerank(
        self, query: str, candidates: list[NodeWithScore], top_k: int
    ) -> list[NodeWithScore]:
        from llama_index.core.schema import QueryBundle

        self._model.top_n = top_k
        return self._model.postprocess_nodes(candidates, QueryBundle(query))


def build_reranker(spec: str) -> Reranker | None:
    return None if spec == "none" else Reranker(spec)
