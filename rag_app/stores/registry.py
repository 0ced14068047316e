"""The store factory: RAG_VECTOR_STORE names a backend class here.

A new backend is one module with a `Backend` subclass plus one line in `BACKENDS`. Modules are
imported only when their backend is used: chromadb and the Pinecone SDK take a second or more
to import, which every command on the memory store would otherwise pay.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from rag_app.errors import ConfigError
from rag_app.settings import Settings, check_store_settings

if TYPE_CHECKING:
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
    return {name: _unavailable_reason(name, settings) for name in BACKENDS}


def _unavailable_reason(name: str, settings: Settings) -> str | None:
    """`Backend.unavailable_reason`, told from the settings alone where they suffice, so that
    `rag-app stores` imports LlamaIndex, chromadb or the Pinecone SDK (a second or more each)
    only to reach a server that is configured."""
    if name == "memory" or (name == "chroma" and not settings.chroma_host):
        return None  # in-process: nothing to reach
    if name == "pinecone":
        try:
            check_store_settings(settings.model_copy(update={"vector_store": "pinecone"}))
        except ConfigError as exc:
            return str(exc)
    return backend_class(name).unavailable_reason(settings)
