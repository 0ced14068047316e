"""rag_app: one ingestion and one query path over memory, Chroma and Pinecone (LlamaIndex).

Names are imported on first use, so light entry points (the local Pinecone server, `config`)
start without loading LlamaIndex and the embedding stack.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RagApp": "rag_app.app",
    "Collection": "rag_app.collection",
    "Settings": "rag_app.settings",
    "load_settings": "rag_app.settings",
    "vector_store": "rag_app.llamaindex",
    "embed_model": "rag_app.llamaindex",
    "storage_context": "rag_app.llamaindex",
    "llm": "rag_app.llamaindex",
    "response_synthesizer": "rag_app.llamaindex",
    "shared_app": "rag_app.llamaindex",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rag_app' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
