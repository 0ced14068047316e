"""The local test servers behave like the real services the app talks to.

Every other test trusts these servers, so this suite checks them through the same clients the
app uses: the official `openai` client, LlamaIndex's OpenAI classes and `chromadb.HttpClient`.
It also pins what LlamaIndex accepts against a custom base URL (model-name checks).
"""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_index.core.llms import ChatMessage
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai import OpenAI as LlamaOpenAI

from tests.support.chroma_server import ChromaServer, http_client, running_chroma_server
from tests.support.openai_server import running_openai_server
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(120)


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cosine(left: list[float], right: list[float]) -> float:
    dot = sum(a * b for a, b in zip(left, right, strict=True))
    return dot / (math.hypot(*left) * math.hypot(*right))


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "openai-requests.jsonl"


@pytest.fixture
def base_url(log_path: Path) -> Iterator[str]:
    with running_openai_server(log_path=log_path) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in {model.id for model in client.models.list()}


def test_embeddings_have_count_dimension_and_word_similarity(client: openai.OpenAI) -> None:
    texts = [
        "Chroma stores document vectors",
        "document vectors are stored in Chroma",
        "the cat sat on a warm windowsill",
    ]
    response = client.embeddings.create(model="text-embedding-3-small", input=texts)

    vectors = [item.embedding for item in response.data]
    assert response.model == "text-embedding-3-small"
    assert response.usage.total_tokens > 0
    assert [len(vector) for vector in vectors] == [64, 64, 64]
    assert all(math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-5) for vector in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


def test_embeddings_are_deterministic_and_accept_strings_floats_and_dimensions(
    client: openai.OpenAI,
) -> None:
    model = "text-embedding-3-small"
    first = client.embeddings.create(model=model, input="same text").data[0].embedding
    again = client.embeddings.create(model=model, input="same text", encoding_format="float")
    sized = client.embeddings.create(model=model, input="same text", dimensions=16)

    assert first == pytest.approx(again.data[0].embedding, rel=1e-6)
    assert len(sized.data[0].embedding) == 16


def test_chat_completion_echoes_last_user_message(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Answer from the context."},
            {"role": "user", "content": "Context: Paris is in France.\nQuestion: where?"},
        ],
    )

    assert response.choices[0].message.content == (
        "ECHO: Context: Paris is in France.\nQuestion: where?"
    )
    assert response.choices[0].finish_reason == "stop"


def test_chat_completion_echo_is_truncated_to_200_characters(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 500}]
    )

    assert response.choices[0].message.content == "ECHO: " + "x" * 200


def test_echo_tail_echoes_the_end_of_the_last_user_message() -> None:
    with running_openai_server(echo_chars=12, echo_tail=True) as url:
        client = openai.OpenAI(base_url=url, api_key="test-key")
        content = "Sources: the same text\n\nQuestion: why?"
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": content}]
        )
    assert response.choices[0].message.content == "ECHO: " + content[-12:]


def test_streaming_chat_completion_echoes_in_several_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream this answer please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == "ECHO: stream this answer please"
    assert len([piece for piece in pieces if piece]) > 1
    assert chunks[-1].usage is not None


def test_missing_api_key_is_rejected_with_openai_error_shape(base_url: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{base_url}/models", timeout=10)

    assert raised.value.code == 401
    assert set(json.loads(raised.value.read())["error"]) == {"message", "type", "code"}


def test_non_bearer_authorization_is_rejected(base_url: str) -> None:
    client = openai.OpenAI(
        base_url=base_url, api_key="k", max_retries=0, default_headers={"Authorization": "Basic x"}
    )

    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_log_records_requests_without_the_key(client: openai.OpenAI, log_path: Path) -> None:
    client.embeddings.create(model="text-embedding-3-small", input=["logged text"])

    [entry] = read_log(log_path)
    assert entry["path"] == "/v1/embeddings"
    assert entry["authorization"] is True
    assert entry["body"]["input"] == ["logged text"]
    assert "authorization" not in entry["headers"]
    assert "test-key" not in log_path.read_text(encoding="utf-8")


def test_injected_rate_limits_are_retried_by_the_openai_client(log_path: Path) -> None:
    with running_openai_server(log_path=log_path, fail_first=2) as url:
        client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=3)
        response = client.embeddings.create(model="text-embedding-3-small", input="retry me")

    assert len(response.data[0].embedding) == 64
    assert [entry["status"] for entry in read_log(log_path)] == [429, 429, 200]


def test_injected_server_errors_surface_without_retries(log_path: Path) -> None:
    with running_openai_server(log_path=log_path, fail_first=1, fail_status=500) as url:
        client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.models.list()
        assert client.models.list().data

    assert [entry["status"] for entry in read_log(log_path)] == [500, 200]


def test_embed_delay_answers_late_and_concurrent_requests_overlap(log_path: Path) -> None:
    with running_openai_server(log_path=log_path, embed_delay_ms=300) as url:
        client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
        began = time.monotonic()

        def create(text: str) -> Any:
            return client.embeddings.create(model="text-embedding-3-small", input=text)

        with ThreadPoolExecutor(4) as pool:
            done = list(pool.map(create, ["one", "two", "three", "four"]))
        elapsed = time.monotonic() - began
        client.models.list()

    assert [len(response.data) for response in done] == [1, 1, 1, 1]
    assert elapsed >= 0.3
    entries = read_log(log_path)
    assert max(e["in_flight"] for e in entries if e["path"] == "/v1/embeddings") == 4
    assert entries[-1]["path"] == "/v1/models" and entries[-1]["in_flight"] == 1


def test_rate_limit_storm_fails_a_fraction_of_requests_then_clears(log_path: Path) -> None:
    with (
        running_openai_server(log_path=log_path, storm_rate=0.3, storm_seconds=1.0) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer k"}) as http,
    ):
        body = {"model": "text-embedding-3-small", "input": "storm"}
        during = [http.post("/embeddings", json=body) for _ in range(10)]
        time.sleep(1.1)
        after = [http.post("/embeddings", json=body).status_code for _ in range(10)]

    statuses = [r.status_code for r in during]
    assert statuses.count(429) == 3
    assert [i for i, status in enumerate(statuses) if status == 429] == [3, 6, 9]
    limited = during[3]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert float(limited.headers["retry-after-ms"]) > 0
    assert after == [200] * 10


def test_llamaindex_embedding_works_against_the_server(base_url: str) -> None:
    embedding = OpenAIEmbedding(model_name="text-embedding-3-small", api_base=base_url, api_key="k")

    batch = embedding.get_text_embedding_batch(["apples and pears", "pears and apples", "tax"])
    query = embedding.get_query_embedding("apples and pears")

    assert [len(vector) for vector in batch] == [64, 64, 64]
    assert query == pytest.approx(batch[0], rel=1e-6)
    assert cosine(batch[0], batch[1]) > cosine(batch[0], batch[2])


def test_llamaindex_embedding_model_names_and_dimensions(base_url: str, log_path: Path) -> None:
    custom = OpenAIEmbedding(model_name="local-embedder", api_base=base_url, api_key="k")
    sized = OpenAIEmbedding(
        model="text-embedding-3-small", dimensions=16, api_base=base_url, api_key="k"
    )

    assert len(custom.get_text_embedding("x")) == 64
    assert len(sized.get_text_embedding("x")) == 16
    assert [entry["body"]["model"] for entry in read_log(log_path)] == [
        "local-embedder",
        "text-embedding-3-small",
    ]
    with pytest.raises(ValueError, match="not a valid OpenAIEmbeddingModelType"):
        OpenAIEmbedding(model="local-embedder", api_base=base_url, api_key="k")


def test_llamaindex_llm_complete_chat_and_streams(base_url: str) -> None:
    llm = LlamaOpenAI(model="gpt-4o-mini", api_base=base_url, api_key="k")
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="what is retrieval augmented generation"),
    ]

    assert llm.complete("hello there").text == "ECHO: hello there"
    assert llm.chat(messages).message.content == "ECHO: what is retrieval augmented generation"
    assert "".join(r.delta or "" for r in llm.stream_complete("stream me")) == "ECHO: stream me"
    streamed = list(llm.stream_chat(messages))
    assert streamed[-1].message.content == "ECHO: what is retrieval augmented generation"


def test_llamaindex_llm_rejects_unknown_model_names_at_call_time(base_url: str) -> None:
    llm = LlamaOpenAI(model="local-llm", api_base=base_url, api_key="k")

    with pytest.raises(ValueError, match="Unknown model 'local-llm'"):
        llm.complete("hello")


def test_chroma_server_serves_a_collection_and_frees_its_port(tmp_path: Path) -> None:
    with running_chroma_server(tmp_path / "chroma") as (host, port):
        collection = http_client(host, port).create_collection("support_test")
        collection.add(
            ids=["near", "far"],
            embeddings=[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            documents=["near document", "far document"],
        )
        result = collection.query(query_embeddings=[[0.9, 0.1, 0.0]], n_results=1)

    assert result["ids"] == [["near"]]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()


def test_chroma_server_can_be_killed_and_restarted_with_its_data(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "chroma", port=free_port())
    server.start()
    try:
        collection = http_client(server.host, server.port).create_collection("survivor")
        collection.add(ids=["a"], embeddings=[[1.0, 0.0]], documents=["kept"])

        server.kill()
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            collection.count()

        server.start()
        assert http_client(server.host, server.port).get_collection("survivor").count() == 1
    finally:
        server.stop()
