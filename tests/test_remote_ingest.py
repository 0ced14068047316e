"""Remote ingestion: concurrent OpenAI embedding calls, pipelined writes, rate-limit storms.

Against the loopback OpenAI-compatible server (embedding latency and 429 storms by flag) and
the local Pinecone server, through the app's own clients.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import Document

from rag_app.app import RagApp
from rag_app.embeddings.models import build_embedder
from rag_app.embeddings.remote import AdaptiveLimit, embed_in_order, request_batches
from rag_app.settings import Settings
from tests.support.openai_server import running_openai_server

pytestmark = pytest.mark.timeout(180)

#: Its own index: the session's local Pinecone server holds other tests' 384-d indexes.
PINECONE_INDEX = "remote-ingest-64d"

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]


def documents(count: int) -> list[Document]:
    """Distinct one-chunk documents whose words say which document they are."""
    return [
        Document(
            id_=f"doc{i}",
            text=f"Document {i} talks about {WORDS[i % len(WORDS)]} and {WORDS[i // len(WORDS)]}.",
        )
        for i in range(count)
    ]


def remote_settings(make_settings: Callable[..., Settings], url: str, **overrides: Any) -> Settings:
    values = {
        "embed_model": "openai:text-embedding-3-small",
        "openai_api_key": "sk-test",
        "openai_base_url": url,
        "embed_batch_size": 2,
        "embed_concurrency": 4,
        **overrides,
    }
    return make_settings(**values)


def embedding_requests(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in entries if e["path"] == "/v1/embeddings"]


# ----------------------------------------------------------------------- the building blocks


def test_limit_halves_once_per_window_and_grows_back() -> None:
    limit = AdaptiveLimit(8)
    holding = threading.Barrier(3)

    def rate_limited() -> None:
        with limit.slot():
            holding.wait()  # all three in flight under the first limit...
            limit.observe(429)  # ...so their 429s are one window: one cut

    threads = [threading.Thread(target=rate_limited) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limit.limit == 4 and limit.cuts == 1
    with limit.slot():
        limit.observe(429)  # a request started after the cut: a new window
    assert limit.limit == 2 and limit.cuts == 2
    for _ in range(60):
        with limit.slot():
            limit.observe(200)
    assert limit.limit == 8
    assert limit.lowest == 2


def test_limit_bounds_the_calls_in_flight() -> None:
    limit = AdaptiveLimit(2)
    with limit.slot():
        limit.observe(429)
    peak = 0
    lock = threading.Lock()

    def call(_: int) -> None:
        nonlocal peak
        with limit.slot():
            with lock:
                peak = max(peak, limit.in_flight)
            time.sleep(0.01)

    embed_in_order(call, list(range(8)), 4)
    assert peak == 1


def test_request_batches_respect_count_and_token_bounds() -> None:
    texts = ["a" * 10] * 5 + ["b" * 50, "c" * 20]
    assert request_batches(texts, 2, 1000) == [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]
    assert request_batches(texts, 100, 60) == [range(0, 5), range(5, 6), range(6, 7)]
    assert request_batches([], 4) == []


def test_embed_in_order_keeps_order_and_stops_at_the_first_failure() -> None:
    started: list[int] = []

    def slow_first(item: int) -> int:
        started.append(item)
        time.sleep(0.05 if item == 0 else 0.0)
        return item * 10

    assert embed_in_order(slow_first, list(range(6)), 3) == [0, 10, 20, 30, 40, 50]

    def failing(item: int) -> int:
        started.append(item)
        time.sleep(0.02)
        if item == 1:
            raise ValueError("bad batch")
        return item

    started.clear()
    with pytest.raises(ValueError, match="bad batch"):
        embed_in_order(failing, list(range(50)), 2)
    assert len(started) < 50


# ------------------------------------------------------------------- against the servers


def test_concurrent_embedding_keeps_order_caps_requests_and_dedups(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "openai.jsonl"
    texts = [f"text number {i} about {WORDS[i % len(WORDS)]}" for i in range(24)]
    with running_openai_server(log_path=log, embed_delay_ms=100) as url:
        serial = build_embedder(remote_settings(make_settings, url, embed_concurrency=1), False)
        expected = serial.embed_texts(texts)
        log.write_text("")
        settings = remote_settings(make_settings, url, data_dir=tmp_path / "concurrent")
        concurrent = build_embedder(settings)
        got = concurrent.embed_texts(texts + texts[:3])
        requests = len(embedding_requests(log))
        again = concurrent.embed_texts(texts)
    np.testing.assert_allclose(got, np.vstack([expected, expected[:3]]), rtol=1e-6)
    np.testing.assert_allclose(again, expected, rtol=1e-6)
    assert concurrent.texts_embedded == 24
    assert requests == 12
    assert len(embedding_requests(log)) == requests  # the cache answered the second call
    assert max(e["in_flight"] for e in embedding_requests(log)) in (2, 3, 4)
    assert all(len(e["body"]["input"]) <= 2 for e in embedding_requests(log))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, float, float]]]:
    """(what, start, end) of every group embedding and chunk write of the ingests that follow."""
    from rag_app.ingestion import pipeline

    events: list[tuple[str, float, float]] = []

    def timing(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                events.append((name, began, time.monotonic()))

        return timed

    monkeypatch.setattr(pipeline, "GROUP_CHUNKS", 4)
    for name in ("_prepare_group", "_write_group"):
        monkeypatch.setattr(pipeline.Ingestor, name, timing(name, getattr(pipeline.Ingestor, name)))
    yield events


@pytest.mark.parametrize("concurrency", [1, 4])
def test_writes_overlap_embedding_only_when_concurrent(
    make_settings: Callable[..., Settings],
    pinecone_local: str,
    recorded: list[tuple[str, float, float]],
    concurrency: int,
) -> None:
    with running_openai_server(embed_delay_ms=150) as url:
        settings = remote_settings(
            make_settings,
            url,
            embed_concurrency=concurrency,
            vector_store="pinecone",
            pinecone_host=pinecone_local,
            pinecone_index=PINECONE_INDEX,
            collection=f"overlap{concurrency}",
        )
        with RagApp(settings) as app:
            report = app.ingest(documents(16))
            assert app.backend.count() == 16
            assert all(r.complete for r in app.documents())
            assert app.retrieve("Document 5 foxtrot")[0].doc_id == "doc5"
            app.backend.drop()
    assert report.chunks_written == 16
    embeds = [e for e in recorded if e[0] == "_prepare_group"]
    writes = [e for e in recorded if e[0] == "_write_group"]
    assert len(embeds) == len(writes) >= 4
    overlapped = any(embeds[i + 1][1] < writes[i][2] for i in range(len(writes) - 1))
    assert overlapped == (concurrency > 1)


def test_a_rate_limit_storm_slows_the_ingest_but_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings], pinecone_local: str, tmp_path: Path
) -> None:
    log = tmp_path / "openai.jsonl"
    with running_openai_server(
        log_path=log, embed_delay_ms=20, storm_rate=0.3, storm_seconds=60
    ) as url:
        settings = remote_settings(
            make_settings,
            url,
            vector_store="pinecone",
            pinecone_host=pinecone_local,
            pinecone_index=PINECONE_INDEX,
            collection="storm",
            retry_seconds=30,
        )
        with RagApp(settings) as app:
            report = app.ingest(documents(40))
            limit = app.embedder.limit
            assert app.backend.count() == 40
            catalogued = [i for record in app.documents() for i in record.chunk_ids()]
            assert sorted(app.backend.list_chunk_ids()) == sorted(catalogued)
            assert all(r.complete for r in app.documents())
            again = app.ingest(documents(40))
            app.backend.drop()
    statuses = [e["status"] for e in embedding_requests(log)]
    assert statuses.count(429) >= 5
    assert report.ok and report.texts_embedded == 40 and report.chunks_written == 40
    assert again.unchanged == [f"doc{i}" for i in range(40)] and again.texts_embedded == 0
    assert limit is not None and limit.cuts >= 1 and limit.lowest < 4


class Interrupting:
    """A change listener that fails once the first group is written (as a Ctrl-C would)."""

    def chunks_written(self, ids: Any, texts: Any) -> None:
        raise KeyboardInterrupt

    def prepare_written(self, ids: Any, texts: Any) -> Callable[[], None]:
        """Prepared ahead like the keyword index; the interrupt comes in the writing thread."""
        return lambda: self.chunks_written(ids, texts)

    def chunks_deleted(self, ids: Any) -> None:
        """Nothing to record."""


def test_an_interrupted_pipelined_ingest_stops_its_threads_and_a_rerun_completes(
    make_settings: Callable[..., Settings],
    pinecone_local: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag_app.ingestion import pipeline

    monkeypatch.setattr(pipeline, "GROUP_CHUNKS", 4)
    with running_openai_server(embed_delay_ms=50) as url:
        settings = remote_settings(
            make_settings,
            url,
            vector_store="pinecone",
            pinecone_host=pinecone_local,
            pinecone_index=PINECONE_INDEX,
            collection="interrupted",
        )
        with RagApp(settings) as app:
            first = pipeline.Ingestor(app.backend, app.embedder, app.chunker, [Interrupting()])
            with pytest.raises(KeyboardInterrupt):
                first.ingest(documents(24))
            assert not [t for t in threading.enumerate() if t.name.startswith("rag-ingest")]
            embedded_before = app.embedder.texts_embedded
            report = app.ingest(documents(24))
            assert report.ok and report.replaced == ["doc0", "doc1", "doc2", "doc3"]  # pending
            assert len(report.added) == 20
            catalogued = [i for record in app.documents() for i in record.chunk_ids()]
            assert all(r.complete for r in app.documents())
            assert sorted(app.backend.list_chunk_ids()) == sorted(catalogued)
            assert app.backend.count() == 24
            assert app.embedder.texts_embedded - embedded_before < 24  # ahead work was cached
            app.backend.drop()


def test_pinecone_upsert_parts_are_sent_concurrently_and_all_land(
    make_settings: Callable[..., Settings],
    pinecone_local: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag_app.stores import pinecone

    monkeypatch.setattr(pinecone, "MAX_UPSERT_VECTORS", 5)  # 37 chunks: 8 upsert requests
    threads: list[str] = []
    with running_openai_server() as url:
        settings = remote_settings(
            make_settings,
            url,
            vector_store="pinecone",
            pinecone_host=pinecone_local,
            pinecone_index=PINECONE_INDEX,
            collection="parts",
        )
        with RagApp(settings) as app:
            sdk_index = app.backend.vector_store._pinecone_index._target
            real_upsert = sdk_index.upsert

            def upsert(*args: Any, **kwargs: Any) -> Any:
                if kwargs.get("namespace") == app.backend.namespace:
                    threads.append(threading.current_thread().name)
                    time.sleep(0.05)  # a service's latency, so the requests overlap
                return real_upsert(*args, **kwargs)

            sdk_index.upsert = upsert
            report = app.ingest(documents(37))
            catalogued = [i for record in app.documents() for i in record.chunk_ids()]
            stored = app.backend.list_chunk_ids()
            fetched = app.backend.fetch_nodes(catalogued)
            app.backend.drop()
    assert report.chunks_written == 37
    assert len(threads) == 8 and len(set(threads)) == pinecone.UPSERT_CONCURRENCY
    assert sorted(stored) == sorted(catalogued) and len(stored) == 37
    assert sorted(fetched) == sorted(catalogued)


def test_ingest_batches_get_the_vectors_llamaindex_s_openai_embedding_gets(
    make_settings: Callable[..., Settings],
) -> None:
    texts = ["first line\nsecond line", "한국어 문장입니다.", "", "mixed 漢字 text"]
    with running_openai_server() as url:
        embedder = build_embedder(remote_settings(make_settings, url), cache=False)
        assert embedder.requests is not None
        batched = embedder.embed_texts(texts)
        reference = np.asarray(embedder.model.get_text_embedding_batch(texts), np.float32)
    assert batched.dtype == np.float32 and batched.shape == (len(texts), 64)
    np.testing.assert_allclose(batched, reference, rtol=0, atol=1e-7)


def test_a_server_answering_json_floats_is_decoded_too() -> None:
    from rag_app.embeddings.openai_batch import decode

    vector = [0.25, -0.5, 1.0]
    as_base64 = base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")
    np.testing.assert_array_equal(decode(as_base64), decode(vector))
    assert decode(vector).dtype == np.float32


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_request_holds_at_most_rag_embed_batch_size_texts(
    make_settings: Callable[..., Settings], tmp_path: Path, concurrency: int
) -> None:
    log = tmp_path / "openai.jsonl"
    texts = [f"text number {i}" for i in range(150)]
    with running_openai_server(log_path=log) as url:
        settings = remote_settings(
            make_settings, url, embed_batch_size=64, embed_concurrency=concurrency
        )
        embedder = build_embedder(settings, cache=False)
        assert embedder.embed_texts(texts).shape == (150, 64)
    sizes = [len(e["body"]["input"]) for e in embedding_requests(log)]
    assert sorted(sizes, reverse=True) == [64, 64, 22]
