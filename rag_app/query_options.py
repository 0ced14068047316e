"""Which LlamaIndex query options every backend answers the same way, checked before a query.

Filled in below; for now every query passes through unchanged.
"""

from __future__ import annotations

from llama_index.core.vector_stores.types import VectorStoreQuery

from rag_app.stores.base import Backend


def check_query(query: VectorStoreQuery, backend: Backend) -> VectorStoreQuery:
    return query
