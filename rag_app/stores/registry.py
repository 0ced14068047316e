"""The store factory: RAG_VECTOR_STORE names a backend class here.

A new backend is one module with a `Backend` subclass plus one line in `BACKENDS`. Modules are
imported only when their backend is used: chromadb and the Pinecone SDK take a second or more
to import, which every command on the memory store would otherwise pay.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from rag_app.errors import ConfigError
from rag_app.settings import Settings
from rag_app.stores.base import Backend

BACKENDS: dict[str, str] = {
    "memory": "rag_app.stores.memory.backend:MemoryBackend",
    "chroma": "rag_app.stores.chroma:ChromaBackend",
    "pinecone": "rag_app.stores.pinecone:PineconeBackend",
}


def backend_class(name: str) -> type[Backend]:
    try:
        module, class_name = BACKENDS[name].split(":")
    except KeyError:
        raise ConfigError(f"RAG_VECTOR_STORE={name!r} is not one of {sorted(BACKENDS)}.") from None
    return getattr(importlib.import_module(module), class_name)


def open_backend(
    settings: Settings, dimension: Callable[[], int], collection: str | None = None
) -> Backend:
    """The configured backend for `collection` (default RAG_COLLECTION)."""
    cls = backend_class(settings.vector_store)
    return cls.open(settings, collection or settings.collection, dimension)


def availability(settings: Settings) -> dict[str, str | None]:
    """Each backend's reason it cannot be used now (None when it can)."""
    return {name: backend_class(name).unavailable_reason(settings) for name in BACKENDS}
