"""Factory functions for LlamaIndex code: the configured vector store, embedding model,
storage context, LLM and response synthesizer.

Each takes the same settings as the CLI (keyword overrides > environment > .env > defaults,
see `Settings`), so the one line that differs between backends is the one that picks the
store. The store, model and context come from one `RagApp` per settings (kept open until the
process exits, embedding models shared between apps), so `vector_store()`, `embed_model()` and
`storage_context()` called with the same overrides are one store and one model, and what
LlamaIndex writes through them is catalogued like `rag-app ingest`'s documents.
"""

from __future__ import annotations

import atexit
import hashlib
import json
from typing import Any

from llama_index.core import StorageContext
from llama_index.core.llms import LLM
from llama_index.core.response_synthesizers import BaseSynthesizer

from rag_app.answers.answerers import build_answerer
from rag_app.app import RagApp
from rag_app.embeddings.llama_embedding import CachedEmbedding
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.ingestion.catalog_store import CatalogVectorStore
from rag_app.settings import Settings, load_settings

_apps: dict[str, RagApp] = {}
_embedders: dict[str, Embedder] = {}


def shared_app(**overrides: Any) -> RagApp:
    """The `RagApp` behind the factory functions for these settings (created on first use)."""
    settings = load_settings(**overrides)
    key = _key(settings, *type(settings).model_fields)
    if key not in _apps:
        _apps[key] = RagApp(settings, embedder=_embedder(settings))
    return _apps[key]


def vector_store(**overrides: Any) -> CatalogVectorStore:
    """The configured backend as a LlamaIndex `BasePydanticVectorStore`."""
    return shared_app(**overrides).vector_store


def embed_model(**overrides: Any) -> CachedEmbedding:
    """The LlamaIndex `BaseEmbedding` the store is built with (embedding cache included)."""
    return shared_app(**overrides).embed_model


def storage_context(**overrides: Any) -> StorageContext:
    """`StorageContext.from_defaults(vector_store=vector_store(**overrides))`."""
    return StorageContext.from_defaults(vector_store=vector_store(**overrides))


def llm(**overrides: Any) -> LLM:
    """The configured LLM; offline (no LLM configured) LlamaIndex's MockLLM, never asked."""
    return build_answerer(load_settings(**overrides)).llm


def response_synthesizer(streaming: bool = False, **overrides: Any) -> BaseSynthesizer:
    """The app's synthesizer: LlamaIndex's with numbered sources, or extractive offline."""
    return build_answerer(load_settings(**overrides)).synthesizer(streaming=streaming)


def close_shared() -> None:
    """Close every app the factory functions opened (also run at exit)."""
    for app in _apps.values():
        app.close()
    for embedder in _embedders.values():
        if embedder.cache:
            embedder.cache.close()
    _apps.clear()
    _embedders.clear()


def _embedder(settings: Settings) -> Embedder:
    key = _key(settings, "embed_model", "embed_batch_size", "data_dir", "openai_base_url")
    if key not in _embedders:
        _embedders[key] = build_embedder(settings)
    return _embedders[key]


def _key(settings: Settings, *fields: str) -> str:
    """The settings' identity (secrets hashed, never kept in clear)."""
    values = {}
    for name in fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = hashlib.sha256(value.get_secret_value().encode()).hexdigest()
        values[name] = str(value)
    return json.dumps(values, sort_keys=True)


atexit.register(close_shared)
