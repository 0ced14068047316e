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
        # The docstring under each field is its description (docs/configuration.md shows them).
        use_attribute_docstrings=True,
    )

    vector_store: VectorStoreName = _env("RAG_VECTOR_STORE", "memory")
    """Which vector store holds the collection: `memory` (default, offline), `chroma` (embedded, or
    a server with CHROMA_HOST) or `pinecone` (serverless with PINECONE_API_KEY, or a local server
    with PINECONE_HOST).
    """
    data_dir: Path = _env("RAG_DATA_DIR", Path(".rag_data"))
    """Where the memory store, embedded Chroma, the keyword index, the embedding cache and eval run
    records persist (created on the first write).
    """
    doc_root: Path | None = _env("RAG_DOC_ROOT", None)
    """Document ids of files are their paths relative to this folder; unset: `<git work tree
    name>/<path>` inside a git work tree, else the absolute path.
    """
    collection: str = _env("RAG_COLLECTION", "rag_app", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,44}$")
    """Collection name (a Chroma collection, a memory-store folder, a Pinecone namespace unless
    PINECONE_NAMESPACE is set); letters, digits, `_` and `-`, at most 45.
    """
    embed_model: str = _env("RAG_EMBED_MODEL", "e5")
    """Embedding model: offline `e5` (multilingual-e5-small), `use` (multilingual USE v3), `local`
    or `minilm` (all-MiniLM-L6-v2, English only); or `openai:<model>`, `hf:<name or path>`. After a
    change, `rag-app reindex` re-embeds an existing collection.
    """
    embed_batch_size: int = _env("RAG_EMBED_BATCH_SIZE", 64, ge=1, le=2048)
    """Texts per embedding batch."""
    embed_concurrency: int = _env("RAG_EMBED_CONCURRENCY", 8, ge=1, le=64)
    """Embedding requests in flight at once to an `openai:` model (halved on each rate limit, then
    grown back); 1 sends one at a time and pipelines nothing. Local models are compute-bound and
    ignore it (see Remote ingestion).
    """
    llm: str = _env("RAG_LLM", "auto")
    """Answers: `auto` (`openai:gpt-4o-mini` when OPENAI_API_KEY is set, else `extractive`),
    `extractive` (offline, quotes the best sentences) or `openai:<model>`.
    """
    chunk_size: int | None = _env("RAG_CHUNK_SIZE", None, ge=32, le=8192)
    """Chunk size in the embedding model's own tokens; unset: fit the model's window (at most 512).
    """
    chunk_overlap: int = _env("RAG_CHUNK_OVERLAP", 32, ge=0)
    """Tokens shared by consecutive chunks."""
    top_k: int = _env("RAG_TOP_K", 5, ge=1, le=100)
    """Sources per question (1-100; `--top-k` overrides per command)."""
    retriever: RetrieverName = _env("RAG_RETRIEVER", "hybrid")
    """Retrieval: `hybrid` (dense + BM25 keyword, fused per query), `dense` or `keyword`."""
    reranker: str = _env("RAG_RERANKER", "none")
    """Optional cross-encoder reranking of the retrieved candidates: `none` or `hf:<name or path>`.
    """
    min_relevance: float | None = _env("RAG_MIN_RELEVANCE", None, ge=0.0, le=1.0)
    """Relevance (0-1) under which a source is not relevant ("nothing relevant found"); unset: the
    threshold calibrated for the embedding model, retriever and question language.
    """
    memory_index: MemoryIndexName = _env("RAG_MEMORY_INDEX", "exact")
    """Memory store search: `exact` cosine or `hnsw` (faiss)."""
    hnsw_m: int = _env("RAG_HNSW_M", 16, ge=2, le=256)
    """HNSW links per node (Chroma collections and RAG_MEMORY_INDEX=hnsw); fixed when a Chroma
    collection is created.
    """
    hnsw_ef_construction: int = _env("RAG_HNSW_EF_CONSTRUCTION", 100, ge=4, le=4096)
    """HNSW candidate list while building; fixed when a Chroma collection is created."""
    hnsw_ef_search: int = _env("RAG_HNSW_EF_SEARCH", 64, ge=1, le=4096)
    """HNSW candidate list while searching; can change at any time."""
    cache: CacheMode = _env("RAG_CACHE", "off")
    """Answer cache kept in the vector store: `off`, `exact` or `semantic` (exact first, then the
    nearest cached question).
    """
    cache_threshold: float | None = _env("RAG_CACHE_THRESHOLD", None, ge=-1.0, le=1.0)
    """Cosine a new question needs to a cached one for a semantic hit; unset: measured per embedding
    model (e5 0.975, use 0.865, local 0.94, others 0.97).
    """
    cache_extractive: bool = _env("RAG_CACHE_EXTRACTIVE", False)
    """Also cache extractive answers (cheap to recompute, so off by default)."""

    chroma_host: str | None = _env("CHROMA_HOST", None)
    """A Chroma server (`chroma run --path DIR --port 8000`) instead of embedded Chroma."""
    chroma_port: int = _env("CHROMA_PORT", 8000, ge=1, le=65535)
    """Port of the Chroma server at CHROMA_HOST."""
    chroma_path: Path | None = _env("CHROMA_PATH", None)
    """Embedded Chroma folder; unset: `$RAG_DATA_DIR/chroma`."""

    pinecone_api_key: SecretStr | None = _env("PINECONE_API_KEY", None)
    """Pinecone serverless API key (a secret: masked in `rag-app config` and logs)."""
    pinecone_index: str = _env("PINECONE_INDEX", "rag-app", pattern=r"^[a-z0-9][a-z0-9-]{0,44}$")
    """Pinecone index (created when missing: dimension from the embedding model, cosine,
    PINECONE_CLOUD / PINECONE_REGION).
    """
    pinecone_namespace: str = _env("PINECONE_NAMESPACE", "")
    """Namespace inside the Pinecone index; empty: RAG_COLLECTION."""
    pinecone_cloud: str = _env("PINECONE_CLOUD", "aws")
    """Cloud of a Pinecone serverless index created by the app."""
    pinecone_region: str = _env("PINECONE_REGION", "us-east-1")
    """Region of a Pinecone serverless index created by the app."""
    pinecone_host: str | None = _env("PINECONE_HOST", None)
    """A local Pinecone-compatible server instead of the cloud, e.g. `http://127.0.0.1:5080`
    (`rag-app pinecone-local --port 5080`).
    """
    pinecone_sparse_index: str | None = _env(
        "PINECONE_SPARSE_INDEX", None, pattern=r"^[a-z0-9][a-z0-9-]{0,44}$"
    )
    """Run the BM25 half of hybrid retrieval in this Pinecone sparse index (created when missing)
    instead of a local keyword index; needs RAG_VECTOR_STORE=pinecone.
    """

    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY", None)
    """OpenAI API key, or the key of any OpenAI-compatible server (a secret: masked in `rag-app
    config` and logs).
    """
    openai_base_url: str | None = _env("OPENAI_BASE_URL", None)
    """An OpenAI-compatible server (Ollama, vLLM, ...) instead of OpenAI."""
    openai_timeout: float = _env("RAG_OPENAI_TIMEOUT", 60.0, gt=0, le=600)
    """Seconds one OpenAI request may wait for an answer (connecting: at most 3)."""
    retry_seconds: float = _env("RAG_RETRY_SECONDS", 10.0, gt=0, le=600)
    """Seconds transient failures (connection refused, timeouts, 429, 5xx) of OpenAI, a Chroma
    server and Pinecone are retried before the command stops with one error line (an unreachable
    server is reported within about 13 s).
    """

    image_embed_model: str = _env("RAG_IMAGE_EMBED_MODEL", "openai/clip-vit-base-patch32")
    """CLIP model for images and prompts: a Hugging Face hub name or a local folder saved with
    `save_pretrained` (transformers `CLIPModel`).
    """
    vision_llm: str = _env("RAG_VISION_LLM", "openai:gpt-4o")
    """Vision chat model of `rag-app describe` / `reimagine`: `openai:<model>` on OPENAI_BASE_URL.
    """
    image_gen: str = _env("RAG_IMAGE_GEN", "openai:dall-e-3")
    """Image generation model of `rag-app generate` / `reimagine`: `openai:<model>` on
    OPENAI_BASE_URL.
    """

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
    """LLM-as-judge of `eval answers` / `eval compare`: `openai:<model>` on OPENAI_BASE_URL; unset:
    no judge unless `--judge` is given.
    """
    judge_timeout: float = _env("RAG_JUDGE_TIMEOUT", 60.0, gt=0, le=3600)
    """Seconds per judge request before it counts as failed (after retries)."""

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


def check_sparse_index_settings(settings: Settings) -> None:
    """PINECONE_SPARSE_INDEX with another store is refused when the app opens, not at first use."""
    if settings.pinecone_sparse_index and settings.vector_store != "pinecone":
        raise ConfigError(
            "PINECONE_SPARSE_INDEX runs keyword search in Pinecone and needs "
            "RAG_VECTOR_STORE=pinecone; unset it to use the local keyword index."
        )


def check_embedder_settings(settings: Settings) -> None:
    """Configuration errors of RAG_EMBED_MODEL that need no model loaded to be found."""
    if settings.embed_model.startswith("openai:") and settings.openai_api_key is None:
        raise ConfigError(
            f"RAG_EMBED_MODEL={settings.embed_model!r} needs OPENAI_API_KEY "
            "(set it in the environment or .env, or use RAG_EMBED_MODEL=e5)."
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
