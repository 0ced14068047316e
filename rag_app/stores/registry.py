"""The store factory: RAG_VECTOR_STORE names a backend class here.

A new backend is one module with a `Backend` subclass plus one line in `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from rag_app.errors import ConfigError
from rag_app.settings import Settings
from rag_app.stores.base import Backend
from rag_app.stores.chroma import ChromaBackend
from rag_app.stores.memory import MemoryBackend
from rag_app.stores.pinecone import PineconeBackend

BACKENDS: dict[str, type[Backend]] = {
    "memory": MemoryBackend,
    "chroma": ChromaBackend,
    "pinecone": PineconeBackend,
}


def open_backend(
    settings: Settings, dimension: Callable[[], int], collection: str | None = None
) -> Backend:
    """The configured backend for `collection` (default RAG_COLLECTION)."""
    try:
        backend_class = BACKENDS[settings.vector_store]
    except KeyError:
        raise ConfigError(
            f"RAG_VECTOR_STORE={settings.vector_store!r} is not one of {sorted(BACKENDS)}."
        ) from None
    return backend_class.open(settings, collection or settings.collection, dimension)


def availability(settings: Settings) -> dict[str, str | None]:
    """Each backend's reason it cannot be used now (None when it can)."""
    return {name: cls.unavailable_reason(settings) for name, cls in BACKENDS.items()}
