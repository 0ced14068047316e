"""OpenAI embeddings and LLM against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import Document

from rag_app.app import RagApp
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command
from tests.support.openai_server import running_openai_server

SECRET = "sk-test-do-not-print-0123456789"
DOCS = [
    Document(id_="hnsw", text="HNSW parameter ef_search sets the candidate list while searching."),
    Document(id_="paris", text="Paris is the capital of France and home of the Eiffel Tower."),
]


def openai_settings(make_settings: Callable[..., Settings], url: str) -> Settings:
    return make_settings(
        embed_model="openai:text-embedding-3-small",
        llm="openai:gpt-4o-mini",
        openai_api_key=SECRET,
        openai_base_url=url,
    )


def requests_to(log: Path, path: str) -> list[dict]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in entries if e["path"].endswith(path)]


def test_openai_embeddings_and_answers_go_through_the_base_url(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "openai.jsonl"
    with (
        running_openai_server(dim=32, log_path=log, echo_chars=4000) as url,
        RagApp(openai_settings(make_settings, url)) as app,
    ):
        assert app.embedder.dimension == 32
        app.ingest(DOCS)
        answer = app.query("What does ef_search set?")
    assert answer.mode == "openai:gpt-4o-mini"
    assert answer.sources[0].doc_id == "hnsw"
    assert answer.text.startswith("ECHO: Sources:")
    chat = requests_to(log, "/chat/completions")[-1]["body"]
    prompt = chat["messages"][-1]["content"]
    assert "What does ef_search set?" in prompt
    assert "[1] HNSW parameter ef_search" in prompt
    assert chat["model"] == "gpt-4o-mini"
    embedded = [e["body"]["input"] for e in requests_to(log, "/embeddings")]
    assert any(DOCS[0].text in (b if isinstance(b, list) else [b]) for b in embedded)
    assert all(e["authorization"] for e in requests_to(log, "/v1/"))


def test_streamed_answer_arrives_in_pieces(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with running_openai_server(dim=32) as url, RagApp(openai_settings(make_settings, url)) as app:
        app.ingest(DOCS)
        answer, pieces = app.stream_query("capital of France?")
        received = list(pieces)
    assert len(received) > 1
    assert answer.text == "".join(received)
    assert answer.text.startswith("ECHO:")


def test_transient_openai_errors_are_retried(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "openai.jsonl"
    with (
        running_openai_server(dim=32, fail_first=2, log_path=log) as url,
        RagApp(openai_settings(make_settings, url)) as app,
    ):
        app.ingest(DOCS)
        assert app.retrieve("Eiffel Tower")[0].doc_id == "paris"
    statuses = [e["status"] for e in requests_to(log, "/embeddings")]
    assert statuses[:2] == [429, 429]
    assert 200 in statuses


def test_openai_without_a_key_is_one_clear_error(make_settings: Callable[..., Settings]) -> None:
    from rag_app.errors import ConfigError

    with pytest.raises(ConfigError, match="needs OPENAI_API_KEY"):
        RagApp(make_settings(embed_model="openai:text-embedding-3-small"))


def test_the_api_key_never_reaches_output_or_debug_logs(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    Path("notes.txt").write_text("The notes say that HNSW has three parameters.")
    with running_openai_server(dim=32) as url:
        settings = openai_settings(make_settings, url)
        env = {**cli_env(settings), "RAG_LOG_LEVEL": "DEBUG"}
        runs = [
            subprocess.run(
                rag_app_command(*args), env=env, capture_output=True, text=True, timeout=300
            )
            for args in (["ingest", "notes.txt"], ["query", "What is in the notes?"], ["config"])
        ]
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert "DEBUG" in runs[1].stderr
    assert "OPENAI_API_KEY=****" in runs[2].stdout
