"""Transient server failures cost retries, never lost or duplicated chunks.

Against real servers: the local Pinecone server answering a fifth of its requests with 429/5xx
(the SDK's own retries must carry the ingest through), and a Chroma server killed in the middle
of an ingest (`rag_app.util.retry` must carry it through a restart, or stop with one clear error
after which a re-run finishes the work). Then the retry helper itself, on a mock transport.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from llama_index.core import Document
from llama_index.core.schema import TextNode

import rag_app.ingestion.pipeline
import rag_app.stores.chroma
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.settings import Settings
from rag_app.stores.base import Backend
from rag_app.util.retry import (
    RetriesExhaustedError,
    RetryingProxy,
    RetryingTransport,
    RetryPolicy,
    call_with_retries,
)
from tests.support.chroma_server import ChromaServer
from tests.support.pinecone_server import running_pinecone_local

#: No waiting between attempts, so the helper's tests take no time.
INSTANT = RetryPolicy(attempts=4, max_seconds=30.0, initial_wait=0.0, max_wait=0.0, jitter=0.0)
#: Gives up within a second: the "server stays down" case.
SHORT = RetryPolicy(attempts=3, max_seconds=2.0, initial_wait=0.05, max_wait=0.2, jitter=0.05)


def documents(n: int) -> list[Document]:
    return [
        Document(id_=f"doc-{i}", text=f"Note {i}: vector databases index embeddings for search.")
        for i in range(n)
    ]


def expected_chunk_ids(app: RagApp) -> list[str]:
    return sorted(i for record in app.documents() for i in record.chunk_ids())


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small writes per ingest, so failures land in the middle of it."""
    monkeypatch.setattr(rag_app.ingestion.pipeline, "GROUP_CHUNKS", 8)


def test_pinecone_ingest_through_a_fifth_of_requests_failing(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    small_groups: None,
) -> None:
    with running_pinecone_local(tmp_path, fault_rate=0.2, fault_seed=20) as url:
        settings = make_settings(vector_store="pinecone", pinecone_host=url, retriever="dense")
        with RagApp(settings, collection="faulty", embedder=embedder) as app:
            report = app.ingest(documents(60))
            assert report.ok and len(report.added) == 60
            listed = app.backend._list_ids(app.backend.namespace)
            assert sorted(listed) == expected_chunk_ids(app)
            assert app.backend.count() == sum(r.n_chunks for r in app.documents()) == len(listed)
            assert app.ingest(documents(60)).unchanged == [d.doc_id for d in documents(60)]
            assert app.backend.count() == len(listed)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    yield server
    server.stop()


def chroma_app(
    server: ChromaServer, make_settings: Callable[..., Settings], embedder: Embedder
) -> RagApp:
    settings = make_settings(
        vector_store="chroma", chroma_host=server.host, chroma_port=server.port, retriever="dense"
    )
    return RagApp(settings, collection="restarts", embedder=embedder)


def kill_on_second_write(backend: Backend, kill: Callable[[], None]) -> None:
    """Make `kill` run just before the backend's second chunk write goes out (the records are
    encoded ahead by `prepare_upsert`; its returned call sends them)."""
    prepare = backend.prepare_upsert
    calls = 0

    def prepare_then_kill(nodes: Sequence[TextNode]) -> Callable[[], None]:
        send = prepare(nodes)

        def send_after_kill() -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                kill()
            send()

        return send_after_kill

    backend.prepare_upsert = prepare_then_kill  # type: ignore[method-assign]


def test_chroma_server_restarted_mid_ingest_is_retried_through(
    chroma: ChromaServer,
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    small_groups: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    restart = threading.Thread(target=chroma.start)

    def kill_and_restart() -> None:
        chroma.kill()
        restart.start()

    with chroma_app(chroma, make_settings, embedder) as app:
        kill_on_second_write(app.backend, kill_and_restart)
        report = app.ingest(documents(40))
        restart.join()
        assert report.ok and len(report.added) == 40
        assert any("retrying" in r.getMessage() for r in caplog.records)
        assert app.backend.count() == sum(r.n_chunks for r in app.documents())
        assert sorted(app.backend.fetch_nodes(expected_chunk_ids(app))) == expected_chunk_ids(app)


def test_chroma_server_that_stays_down_fails_once_and_a_rerun_completes(
    chroma: ChromaServer,
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    small_groups: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rag_app.stores.chroma, "RETRY_POLICY", SHORT)
    with chroma_app(chroma, make_settings, embedder) as app:
        kill_on_second_write(app.backend, chroma.kill)
        with pytest.raises(RetriesExhaustedError, match=f"Chroma server .*:{chroma.port}"):
            app.ingest(documents(40))
    chroma.start()
    with chroma_app(chroma, make_settings, embedder) as app:
        report = app.ingest(documents(40))
        assert report.ok and report.replaced
        assert sorted(report.added + report.replaced + report.unchanged) == sorted(
            d.doc_id for d in documents(40)
        )
        assert len(app.documents()) == 40
        assert app.backend.count() == sum(r.n_chunks for r in app.documents())
        assert sorted(app.backend.fetch_nodes(expected_chunk_ids(app))) == expected_chunk_ids(app)


class Flaky:
    """Fails with `error` on the first `failures` calls, then returns "done"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ConnectionResetError("reset")],
)
def test_transient_errors_are_retried(error: Exception) -> None:
    flaky = Flaky(3, error)
    assert call_with_retries(flaky, "test call", INSTANT) == "done"
    assert flaky.calls == 4


def test_other_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        call_with_retries(flaky, "test call", INSTANT)
    assert flaky.calls == 1


def test_retries_stop_after_the_attempt_bound() -> None:
    flaky = Flaky(100, httpx.ConnectError("refused"))
    with pytest.raises(RetriesExhaustedError, match="test call failed 4 times.*refused"):
        call_with_retries(flaky, "test call", INSTANT)
    assert flaky.calls == 4


def test_retries_stop_after_the_time_bound() -> None:
    flaky = Flaky(10_000, httpx.ConnectError("refused"))
    policy = RetryPolicy(attempts=10_000, max_seconds=0.3, initial_wait=0.01, max_wait=0.05)
    with pytest.raises(RetriesExhaustedError):
        call_with_retries(flaky, "test call", policy)
    assert 1 < flaky.calls < 10_000


def client_answering(statuses: list[int]) -> tuple[httpx.Client, list[int]]:
    """An httpx client whose server answers `statuses` in turn (the last one from then on)."""
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        return httpx.Response(status, json={"status": status})

    transport = RetryingTransport(httpx.MockTransport(answer), "mock server", INSTANT)
    return httpx.Client(transport=transport, base_url="http://mock"), seen


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    client, seen = client_answering([status, status, 200])
    assert client.post("/upsert", json={"ids": ["a"]}).status_code == 200
    assert seen == [status, status, 200]


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_client_error_statuses_are_returned_at_once(status: int) -> None:
    client, seen = client_answering([status, 200])
    assert client.get("/collection").status_code == status
    assert seen == [status]


def test_a_server_error_that_persists_ends_in_one_clear_error() -> None:
    client, seen = client_answering([503])
    with pytest.raises(RetriesExhaustedError, match="mock server: GET /collection.*HTTP 503"):
        client.get("/collection")
    assert seen == [503] * INSTANT.attempts


class SdkError(Exception):
    """An SDK error carrying the HTTP status, as Pinecone's `ApiError` does."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class FlakyIndex:
    """An SDK client whose `upsert` raises `errors` in turn, then succeeds."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0
        self.dimension = 384

    def upsert(self, vectors: list[str]) -> int:
        self.calls += 1
        if self.calls <= len(self.errors):
            raise self.errors[self.calls - 1]
        return len(vectors)


def network_failure() -> Exception:
    """An SDK's wrapper of a network error (as PineconeConnectionError wraps httpx's)."""
    try:
        raise httpx.ConnectError("refused")
    except httpx.ConnectError as cause:
        try:
            raise RuntimeError("connection failed") from cause
        except RuntimeError as wrapper:
            return wrapper


def test_proxy_retries_sdk_errors_by_status_and_cause() -> None:
    index = FlakyIndex([SdkError(503), SdkError(429), network_failure()])
    proxy = RetryingProxy(index, "sdk index", INSTANT)
    assert proxy.upsert(["a", "b"]) == 2
    assert index.calls == 4
    assert proxy.dimension == 384


def test_proxy_does_not_retry_a_client_error() -> None:
    index = FlakyIndex([SdkError(400)])
    with pytest.raises(SdkError, match="HTTP 400"):
        RetryingProxy(index, "sdk index", INSTANT).upsert(["a"])
    assert index.calls == 1
