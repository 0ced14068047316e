"""Settings from explicit arguments > environment > `.env` > defaults.

The environment variable names are a public contract (benchmarks, notebooks and CI set them),
so every field carries its variable name as an alias. A bad value is reported as one
`ConfigError` naming the variable and what it accepts, never as a pydantic traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_app.errors import ConfigError, RagAppError

VectorStoreName = Literal["memory", "chroma", "pinecone"]
RetrieverName = Literal["hybrid", "dense", "keyword"]
MemoryIndexName = Literal["exact", "hnsw"]
CacheMode = Literal["off", "exact", "semantic"]
#: Embedding models shipped inside wheels (rag_app/embeddings/models.py); `minilm` is `local`.
OFFLINE_EMBED_MODELS = ("e5", "use", "local", "minilm")


def _env(name: str, default: Any, **kwargs: Any) -> Any:
    """A field read from environment variable `name`; the field name works as a keyword too."""
    return Field(default, validation_alias=AliasChoices(name, name.lower()), **kwargs)


class Settings(BaseSettings):
    """Every knob of the application, one field per environment variable."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
        case_sensitive=False,
    )

    vector_store: VectorStoreName = _env("RAG_VECTOR_STORE", "memory")
    data_dir: Path = _env("RAG_DATA_DIR", Path(".rag_data"))
    doc_root: Path | None = _env("RAG_DOC_ROOT", None)
    collection: str = _env("RAG_COLLECTION", "rag_app", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,44}$")
    embed_model: str = _env("RAG_EMBED_MODEL", "e5")
    embed_batch_size: int = _env("RAG_EMBED_BATCH_SIZE", 64, ge=1, le=2048)
    llm: str = _env("RAG_LLM", "auto")
    chunk_size: int | None = _env("RAG_CHUNK_SIZE", None, ge=32, le=8192)
    chunk_overlap: int = _env("RAG_CHUNK_OVERLAP", 32, ge=0)
    top_k: int = _env("RAG_TOP_K", 5, ge=1, le=100)
    retriever: RetrieverName = _env("RAG_RETRIEVER", "hybrid")
    reranker: str = _env("RAG_RERANKER", "none")
    min_relevance: float | None = _env("RAG_MIN_RELEVANCE", None, ge=0.0, le=1.0)
    memory_index: MemoryIndexName = _env("RAG_MEMORY_INDEX", "exact")
    hnsw_m: int = _env("RAG_HNSW_M", 16, ge=2, le=256)
    hnsw_ef_construction: int = _env("RAG_HNSW_EF_CONSTRUCTION", 100, ge=4, le=4096)
    hnsw_ef_search: int = _env("RAG_HNSW_EF_SEARCH", 64, ge=1, le=4096)
    cache: CacheMode = _env("RAG_CACHE", "off")
    cache_threshold: float | None = _env("RAG_CACHE_THRESHOLD", None, ge=-1.0, le=1.0)
    cache_extractive: bool = _env("RAG_CACHE_EXTRACTIVE", False)

    chroma_host: str | None = _env("CHROMA_HOST", None)
    chroma_port: int = _env("CHROMA_PORT", 8000, ge=1, le=65535)
    chroma_path: Path | None = _env("CHROMA_PATH", None)

    pinecone_api_key: SecretStr | None = _env("PINECONE_API_KEY", None)
    pinecone_index: str = _env("PINECONE_INDEX", "rag-app", pattern=r"^[a-z0-9][a-z0-9-]{0,44}$")
    pinecone_namespace: str = _env("PINECONE_NAMESPACE", "")
    pinecone_cloud: str = _env("PINECONE_CLOUD", "aws")
    pinecone_region: str = _env("PINECONE_REGION", "us-east-1")
    pinecone_host: str | None = _env("PINECONE_HOST", None)
    pinecone_sparse_index: str | None = _env(
        "PINECONE_SPARSE_INDEX", None, pattern=r"^[a-z0-9][a-z0-9-]{0,44}$"
    )

    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY", None)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", None)
    openai_timeout: float = _env("RAG_OPENAI_TIMEOUT", 60.0, gt=0, le=600)
    retry_seconds: float = _env("RAG_RETRY_SECONDS", 10.0, gt=0, le=600)

    image_embed_model: str = _env("RAG_IMAGE_EMBED_MODEL", "openai/clip-vit-base-patch32")
    vision_llm: str = _env("RAG_VISION_LLM", "openai:gpt-4o")
    image_gen: str = _env("RAG_IMAGE_GEN", "openai:dall-e-3")

    api_key: SecretStr | None = _env(
        "RAG_API_KEY",
        None,
        description="bearer token `rag-app serve` requires on every endpoint but health; "
        "required to bind anything but loopback",
    )
    upload_max_bytes: int = _env(
        "RAG_UPLOAD_MAX_BYTES", 20_000_000, ge=1, description="largest file `serve` accepts"
    )
    upload_max_files: int = _env(
        "RAG_UPLOAD_MAX_FILES", 20, ge=1, le=1000, description="files per `serve` upload"
    )
    cors_origins: str = _env(
        "RAG_CORS_ORIGINS",
        "",
        description="comma-separated origins `serve` allows cross-origin requests from (none)",
    )

    judge: str | None = _env("RAG_JUDGE", None)
    judge_timeout: float = _env("RAG_JUDGE_TIMEOUT", 60.0, gt=0, le=3600)

    @field_validator("embed_model")
    @classmethod
    def _check_embed_model(cls, value: str) -> str:
        if value in OFFLINE_EMBED_MODELS or _has_payload(value, ("openai:", "hf:")):
            return value
        raise ValueError(
            "expected 'e5', 'use', 'local' (or 'minilm'), 'openai:<model>' or 'hf:<name or path>'"
        )

    @field_validator("reranker")
    @classmethod
    def _check_reranker(cls, value: str) -> str:
        if value == "none" or _has_payload(value, ("hf:",)):
            return value
        raise ValueError("expected 'none' or 'hf:<cross-encoder name or path>'")

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, value: str) -> str:
        if value in ("auto", "extractive") or _has_payload(value, ("openai:",)):
            return value
        raise ValueError("expected 'auto', 'extractive' or 'openai:<model>'")

    @field_validator("vision_llm", "image_gen")
    @classmethod
    def _check_openai_model(cls, value: str) -> str:
        if _has_payload(value, ("openai:",)):
            return value
        raise ValueError("expected 'openai:<model>' (any OpenAI-compatible server)")

    @field_validator("judge")
    @classmethod
    def _check_judge(cls, value: str | None) -> str | None:
        if value is None or _has_payload(value, ("openai:",)):
            return value
        raise ValueError("expected 'openai:<model>' (any OpenAI-compatible server)")

    @property
    def resolved_llm(self) -> str:
        """`auto` picks OpenAI when a key is set, else extractive answers."""
        if self.llm != "auto":
            return self.llm
        return "openai:gpt-4o-mini" if self.openai_api_key else "extractive"

    @property
    def resolved_chroma_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    def masked(self) -> dict[str, str]:
        """Effective settings by environment variable name, every secret masked."""
        shown: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown_value = mask_secret(value.get_secret_value())
            else:
                shown_value = "" if value is None else str(value)
            shown[env_name(field)] = shown_value
        return shown


def check_store_settings(settings: Settings) -> None:
    """Store configuration errors found from the settings alone (before any slow import)."""
    if settings.vector_store == "pinecone" and not (
        settings.pinecone_api_key or settings.pinecone_host
    ):
        raise ConfigError(
            "RAG_VECTOR_STORE=pinecone needs PINECONE_API_KEY (Pinecone serverless), or "
            "PINECONE_HOST pointing at a local server started with "
            "`rag-app pinecone-local --port 5080` (PINECONE_HOST=http://127.0.0.1:5080)."
        )


def check_data_dir(data_dir: Path) -> None:
    """Refuse a RAG_DATA_DIR that is a file or cannot be written, before anything runs."""
    existing = data_dir.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"RAG_DATA_DIR={data_dir} cannot be used: {existing} is a file, not a folder. Point "
            "RAG_DATA_DIR at a folder (it is created if missing)."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"RAG_DATA_DIR={data_dir} cannot be used: {existing} is not writable. Point "
            "RAG_DATA_DIR at a folder you can write, or fix its permissions."
        )


def check_top_k(top_k: int | None) -> None:
    """A per-call top-k must fit the range RAG_TOP_K accepts."""
    field = Settings.model_fields["top_k"]
    low, high = (next(getattr(m, a) for m in field.metadata if hasattr(m, a)) for a in ("ge", "le"))
    if top_k is not None and not low <= top_k <= high:
        raise ConfigError(
            f"top-k {top_k} is out of range: give {low} to {high} (as for RAG_TOP_K)."
        )


def _has_payload(value: str, prefixes: tuple[str, ...]) -> bool:
    return any(value.startswith(p) and len(value) > len(p) for p in prefixes)


def env_name(field: Any) -> str:
    """The environment variable a field reads (its first alias)."""
    return field.validation_alias.choices[0]


def mask_secret(secret: str) -> str:
    """Show that a secret is set without revealing any of it."""
    return "****" if secret else ""


def load_settings(**overrides: Any) -> Settings:
    """Build settings; turn validation failures into one readable `ConfigError`."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    fields = Settings.model_fields
    lines = []
    for err in exc.errors():
        field_name = str(err["loc"][0]) if err["loc"] else ""
        field = fields.get(field_name) or next(
            (f for f in fields.values() if field_name in f.validation_alias.choices), None
        )
        variable = env_name(field) if field else field_name
        message = err["msg"].removeprefix("Value error, ")
        lines.append(
            f"{variable}={err.get('input')!r} is invalid: {message}. Set {variable} "
            f"in the environment or .env to an allowed value."
        )
    return "\n".join(lines)


def check_question(question: str) -> None:
    if not question.strip():
        raise RagAppError(
            "The question is empty: ask something, e.g. `rag-app query 'What is X?'`."
        )
