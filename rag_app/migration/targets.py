"""The target of a migration: a second `Settings`, built without editing any file.

The target starts as a copy of the source's settings (so a value not mentioned stays as it is:
RAG_DATA_DIR, the embedding model, the retriever), then takes, in increasing priority:
1. environment variables (or .env entries) named like the source's with the prefix `RAG_TO_`:
   `RAG_TO_CHROMA_HOST`, `RAG_TO_PINECONE_INDEX`, `RAG_TO_COLLECTION`, `RAG_TO_DATA_DIR`, ...;
2. the command's flags (`--to-collection`, `--chroma-host`, `--pinecone-host`, ...), or the
   keyword arguments of `RagApp.migrate_to` (field names: `chroma_host=...`).
An empty flag value clears a setting: `--chroma-host ''` means embedded Chroma even when the
source is a Chroma server. An empty variable is unset, as every variable of `Settings` is.
"""

from __future__ import annotations

import os
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from rag_app.errors import ConfigError
from rag_app.settings import Settings, check_store_settings, env_name

PREFIX = "RAG_TO_"
#: The settings a target may change: where and how the target store is reached.
TARGET_FIELDS = (
    "collection",
    "data_dir",
    "memory_index",
    "hnsw_m",
    "hnsw_ef_construction",
    "hnsw_ef_search",
    "chroma_host",
    "chroma_port",
    "chroma_path",
    "pinecone_api_key",
    "pinecone_index",
    "pinecone_namespace",
    "pinecone_cloud",
    "pinecone_region",
    "pinecone_host",
    "pinecone_sparse_index",
)


def prefixed_variable(field: str) -> str:
    """`chroma_host` -> `RAG_TO_CHROMA_HOST`, `collection` -> `RAG_TO_COLLECTION`."""
    name = env_name(Settings.model_fields[field])
    return PREFIX + name.removeprefix("RAG_")


def target_settings(source: Settings, store: str, **overrides: Any) -> Settings:
    """The target's settings for `store` (memory, chroma, pinecone); see the module doc."""
    values: dict[str, Any] = {
        name: getattr(source, name) for name in type(source).model_fields if name != "vector_store"
    }
    values["vector_store"] = store
    if store != "pinecone":
        values["pinecone_sparse_index"] = None
    from_files = {k.upper(): v for k, v in dotenv_values(".env").items() if v is not None}
    environment = {**from_files, **{k.upper(): v for k, v in os.environ.items()}}
    for field in TARGET_FIELDS:
        variable = prefixed_variable(field)
        if environment.get(variable):  # empty is unset, as for every variable (Settings)
            values[field] = environment[variable]
    for field, value in overrides.items():
        if field not in TARGET_FIELDS:
            raise ConfigError(
                f"{field!r} is not a target setting of a migration; give one of "
                f"{', '.join(TARGET_FIELDS)}."
            )
        values[field] = value
    for field, value in list(values.items()):
        if isinstance(value, SecretStr):
            values[field] = value.get_secret_value()
        elif value == "" and field != "pinecone_namespace":
            values[field] = None  # cleared: back to the default
    values = {k: v for k, v in values.items() if v is not None or _nullable(k)}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_variable(e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"invalid migration target ({problems}); fix that flag or RAG_TO_ variable."
        ) from None
    check_store_settings(settings)
    return settings


def _nullable(field: str) -> bool:
    """A field whose default is None: an explicit None must win over the environment."""
    return Settings.model_fields[field].default is None


def _variable(location: tuple) -> str:
    field = str(location[0]) if location else ""
    return prefixed_variable(field) if field in TARGET_FIELDS else field
