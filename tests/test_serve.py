"""`rag-app serve`: the HTTP API, its OpenAI-compatible endpoints, security, load and faults.

Most cases use FastAPI's TestClient over a real `RagApp` (memory store, offline e5, the
bundled samples); the `openai` client, concurrency and the store-outage cases go through a
real uvicorn server on 127.0.0.1 (tests/support/serve_server.py).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.server import Service, create_app
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command
from tests.support.chroma_server import ChromaServer
from tests.support.serve_server import running_server

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
QUESTIONS = [
    "What does ef_search control in HNSW?",
    "벡터 데이터베이스는 무엇을 저장하나요?",
    "What is retrieval-augmented generation?",
    "HNSW 알고리즘은 어떻게 동작하나요?",
    "What does a vector database store?",
]
KEY = "s3cret-token-for-tests"


def _service(settings: Settings, embedder: Embedder) -> Service:
    app = RagApp(settings, embedder=embedder)
    app.ingest([SAMPLES])
    return Service(app)


@pytest.fixture
def service(make_settings: Callable[..., Settings], embedder: Embedder) -> Service:
    return _service(make_settings(), embedder)


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service), raise_server_exceptions=False) as test_client:
        yield test_client


def _no_trace(response: httpx.Response) -> dict[str, Any]:
    """An error body: JSON with a message, no traceback."""
    assert "Traceback" not in response.text
    body = response.json()
    assert body["error"]["message"]
    return body


def test_query_answers_with_numbered_sources_like_ragapp(client, service) -> None:
    response = client.post("/v1/query", json={"question": QUESTIONS[0], "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    expected = asdict(service.app.query(QUESTIONS[0], 3))
    assert body == expected
    first = body["sources"][0]
    assert first["doc_id"].endswith("hnsw.md")
    assert {"start_char", "end_char", "score", "relevance", "relevant"} <= set(first)
    assert "[1]" in body["text"]


def test_query_streams_server_sent_events(client, service) -> None:
    response = client.post("/v1/query", json={"question": QUESTIONS[1], "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
        for block in response.text.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and "delta" in names
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    assert streamed == events[-1][1]["text"] == service.app.query(QUESTIONS[1]).text
    assert events[0][1]["sources"] == events[-1][1]["sources"]
    assert service.active_streams == 0


def test_retrieve_takes_retriever_and_query_takes_filters(client) -> None:
    keyword = client.post("/v1/retrieve", json={"question": "ef_search", "retriever": "keyword"})
    assert keyword.status_code == 200
    assert keyword.json()[0]["doc_id"].endswith("hnsw.md")
    filtered = client.post(
        "/v1/query",
        json={"question": QUESTIONS[0], "filters": {"source": keyword.json()[0]["source"]}},
    )
    assert filtered.status_code == 200
    assert {s["doc_id"] for s in filtered.json()["sources"]} == {keyword.json()[0]["doc_id"]}


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("post", "/v1/query", {"question": "  "}, 400),
        ("post", "/v1/query", {"question": "x", "top_k": 0}, 422),
        ("post", "/v1/query", {"question": "x", "retriever": "magic"}, 422),
        ("post", "/v1/query", {"top_k": 2}, 422),
        ("post", "/v1/query", "not json", 422),
        ("post", "/v1/chat/completions", {"model": "other", "messages": [{"role": "user"}]}, 404),
        ("post", "/v1/chat/completions", {"model": "rag_app", "messages": []}, 422),
        ("get", "/v1/nothing-here", None, 404),
        ("delete", "/v1/documents/no/such/doc.md", None, 404),
    ],
)
def test_bad_requests_get_json_errors(client, method, path, payload, status) -> None:
    kwargs = {"content": payload} if isinstance(payload, str) else {"json": payload}
    response = getattr(client, method)(path, **({} if payload is None else kwargs))
    assert response.status_code == status
    _no_trace(response)


def test_empty_collection_is_a_409_naming_the_fix(make_settings, embedder) -> None:
    service = Service(RagApp(make_settings(collection="empty"), embedder=embedder))
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        response = client.post("/v1/query", json={"question": "anything?"})
    assert response.status_code == 409
    assert "POST /v1/documents" in _no_trace(response)["error"]["message"]


def test_upload_dedups_replaces_and_reports_bad_files_per_file(client) -> None:
    note = ("files", ("note.md", b"# Zebra\n\nThe zebra index stores stripes."))
    first = client.post("/v1/documents", files=[note]).json()
    assert first["added"] == ["uploads/note.md"]
    again = client.post("/v1/documents", files=[note]).json()
    assert again["unchanged"] == ["uploads/note.md"]
    changed = ("files", ("note.md", b"# Zebra\n\nThe zebra index stores spots now."))
    bad = [
        ("files", ("../../etc/passwd.txt", b"x")),
        ("files", ("..\\win.txt", b"x")),
        ("files", ("program.exe", b"MZ")),
        ("files", ("blank.txt", b"   ")),
    ]
    report = client.post("/v1/documents", files=[changed, *bad]).json()
    assert report["replaced"] == ["uploads/note.md"]
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"../../etc/passwd.txt", "..\\win.txt", "program.exe", "blank.txt"}
    assert "path separators" in reasons["../../etc/passwd.txt"]
    assert ".exe files are not accepted" in reasons["program.exe"]
    assert not Path("/etc/passwd.txt").exists()
    ids = [d["doc_id"] for d in client.get("/v1/documents").json()]
    assert ids.count("uploads/note.md") == 1
    hit = client.post("/v1/retrieve", json={"question": "zebra spots", "top_k": 1}).json()[0]
    assert "spots now" in hit["text"]
    assert client.delete("/v1/documents/uploads/note.md").json() == {"deleted": "uploads/note.md"}
    assert "uploads/note.md" not in [d["doc_id"] for d in client.get("/v1/documents").json()]


def test_upload_limits(make_settings, embedder) -> None:
    settings = make_settings(upload_max_bytes=100, upload_max_files=2)
    service = Service(RagApp(settings, embedder=embedder))
    with TestClient(create_app(service, warm=False), raise_server_exceptions=False) as client:
        many = [("files", (f"{n}.txt", b"some text")) for n in range(3)]
        assert client.post("/v1/documents", files=many).status_code == 413
        big = client.post("/v1/documents", files=[("files", ("big.txt", b"x" * 101))]).json()
        assert "RAG_UPLOAD_MAX_BYTES" in big["skipped"][0]["reason"]
        assert big["added"] == []


def test_api_key_guards_every_endpoint_but_health(make_settings, embedder) -> None:
    service = _service(make_settings(api_key=KEY), embedder)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        assert client.get("/v1/health").status_code == 200
        for method, path in [("get", "/v1/documents"), ("get", "/v1/models")]:
            assert getattr(client, method)(path).status_code == 401
            wrong = {"Authorization": "Bearer wrong"}
            assert getattr(client, method)(path, headers=wrong).status_code == 401
        denied = client.post("/v1/query", json={"question": QUESTIONS[0]})
        assert denied.status_code == 401
        assert KEY not in denied.text
        good = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/documents", headers=good).status_code == 200
        query = client.post("/v1/query", json={"question": QUESTIONS[0]}, headers=good)
        assert query.status_code == 200


def test_cors_off_unless_configured(make_settings, embedder) -> None:
    origin = {"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (("", False), ("http://elsewhere.test", True)):
        service = Service(RagApp(make_settings(cors_origins=origins), embedder=embedder))
        with TestClient(create_app(service, warm=False)) as client:
            response = client.options("/v1/query", headers=origin)
        assert ("access-control-allow-origin" in response.headers) is allowed


def test_serve_refuses_a_network_bind_without_a_key(make_settings) -> None:
    env = cli_env(make_settings())
    result = subprocess.run(
        rag_app_command("serve", "--host", "0.0.0.0", "--port", "1"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --host 0.0.0.0") and "RAG_API_KEY" in result.stderr


def test_openai_client_streaming_and_not(service) -> None:
    with running_server(service) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)
        assert [m.id for m in client.models.list()] == ["rag_app"]
        messages = [{"role": "user", "content": QUESTIONS[0]}]
        completion = client.chat.completions.create(model="rag_app", messages=messages)
        expected = service.app.query(QUESTIONS[0])
        assert completion.choices[0].message.content == expected.text
        sources = completion.model_extra["sources"]
        assert [s["doc_id"] for s in sources] == [s.doc_id for s in expected.sources]
        chunks = list(
            client.chat.completions.create(model="rag_app", messages=messages, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == expected.text
        assert chunks[0].model_extra["sources"] == sources
        assert chunks[-1].choices[0].finish_reason == "stop"
        with pytest.raises(openai.NotFoundError, match="no model 'gpt-4o'"):
            client.chat.completions.create(model="gpt-4o", messages=messages)


def test_http_answers_match_the_cli(service, make_settings) -> None:
    with running_server(service) as url:
        body = httpx.post(f"{url}/v1/query", json={"question": QUESTIONS[1]}, timeout=30).json()
    result = subprocess.run(
        rag_app_command("query", QUESTIONS[1], "--json"),
        env=cli_env(make_settings()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert body == json.loads(result.stdout)


def test_a_client_leaving_mid_stream_leaks_no_work(service) -> None:
    with running_server(service) as url:
        with httpx.stream(
            "POST", f"{url}/v1/query", json={"question": QUESTIONS[0], "stream": True}, timeout=30
        ) as response:
            next(response.iter_lines())  # the first event line, then hang up
        deadline = time.monotonic() + 10
        while service.active_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.active_streams == 0
        after = httpx.post(f"{url}/v1/query", json={"question": QUESTIONS[0]}, timeout=30)
        assert after.status_code == 200


def _load(url: str, clients: int = 32, per_client: int = 10) -> list[httpx.Response]:
    def one_client(number: int) -> list[httpx.Response]:
        with httpx.Client(base_url=url, timeout=60) as http:
            return [
                http.post("/v1/query", json={"question": QUESTIONS[(number + i) % len(QUESTIONS)]})
                for i in range(per_client)
            ]

    with ThreadPoolExecutor(clients) as pool:
        return [r for batch in pool.map(one_client, range(clients)) for r in batch]


@pytest.mark.parametrize("store", ["memory", "chroma-server"])
def test_32_clients_get_the_answers_ragapp_gives(store, make_settings, embedder, request) -> None:
    overrides: dict[str, Any] = {"collection": "load"}
    if store == "chroma-server":
        server: ChromaServer = request.getfixturevalue("chroma_server")
        overrides |= {"vector_store": "chroma", "chroma_host": server.host}
        overrides |= {"chroma_port": server.port, "collection": f"load{time.time_ns()}"}
    service = _service(make_settings(**overrides), embedder)
    expected = {q: asdict(service.app.query(q)) for q in QUESTIONS}
    with running_server(service) as url:
        responses = _load(url)
    assert len(responses) == 320
    assert [r.status_code for r in responses] == [200] * 320
    for response in responses:
        body = response.json()
        assert body == expected[body["question"]]


def test_queries_never_see_a_half_written_upload(service) -> None:
    """Each version of the upload says its version in every chunk: a query sees one version."""

    def version(n: int) -> tuple[str, tuple[str, bytes]]:
        paragraph = f"Zebra stripes version {n} marks this chunk of the upload. " * 30
        return ("files", ("zebra.md", "\n\n".join([paragraph] * 6).encode()))

    stop = threading.Event()
    seen: list[set[str]] = []
    failures: list[int] = []

    with running_server(service) as url:

        def ask() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while not stop.is_set():
                    response = http.post("/v1/retrieve", json={"question": "zebra stripes"})
                    if response.status_code != 200:
                        failures.append(response.status_code)
                        continue
                    texts = [s["text"] for s in response.json() if "zebra" in s["doc_id"]]
                    seen.append({t.split("version ")[1].split()[0] for t in texts})

        askers = [threading.Thread(target=ask) for _ in range(4)]
        for thread in askers:
            thread.start()
        with httpx.Client(base_url=url, timeout=120) as http:
            reports = [http.post("/v1/documents", files=[version(n)]).json() for n in range(3)]
        stop.set()
        for thread in askers:
            thread.join(timeout=60)
    assert failures == []
    assert reports[0]["added"] == ["uploads/zebra.md"]
    assert [r["replaced"] for r in reports[1:]] == [["uploads/zebra.md"]] * 2
    assert seen and all(len(versions) <= 1 for versions in seen)


def test_store_outage_is_a_503_and_recovers(make_settings, embedder, tmp_path) -> None:
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    try:
        settings = make_settings(
            vector_store="chroma",
            chroma_host=server.host,
            chroma_port=server.port,
            retry_seconds=2,
        )
        service = _service(settings, embedder)
        with running_server(service) as url:
            ask = {"question": QUESTIONS[0]}
            assert httpx.post(f"{url}/v1/query", json=ask, timeout=30).status_code == 200
            server.kill()
            down = httpx.post(f"{url}/v1/query", json=ask, timeout=60)
            assert down.status_code == 503
            assert "Check that the server is running" in _no_trace(down)["error"]["message"]
            assert httpx.get(f"{url}/v1/health", timeout=60).status_code == 503
            server.start()
            back = httpx.post(f"{url}/v1/query", json=ask, timeout=60)
            assert back.status_code == 200
            assert back.json()["sources"]
    finally:
        if server.running:
            server.stop()
