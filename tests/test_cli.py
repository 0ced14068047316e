"""The `rag-app` command in real subprocesses: persistence, exit codes, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.ingestion.loaders import load_paths
from rag_app.ingestion.pipeline import GROUP_CHUNKS
from rag_app.settings import Settings
from tests.conftest import backend_overrides, cli_env, rag_app_command

TIMEOUT = 300
DOCS = 2 * GROUP_CHUNKS


def run(
    settings: Settings, *args: str, input_text: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        rag_app_command(*args),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        input=input_text,
    )


@pytest.fixture
def cli_settings(
    make_settings: Callable[..., Settings], backend_name: str, request: pytest.FixtureRequest
) -> Settings:
    collection = f"cli{abs(hash(request.node.nodeid)) % 10**8}"
    return make_settings(**backend_overrides(backend_name, request), collection=collection)


def write_docs(folder: Path, count: int, sentences: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        body = " ".join(
            f"Document {i} sentence {j} mentions topic{i} and keyword{j}." for j in range(sentences)
        )
        (folder / f"doc{i:04d}.txt").write_text(body)
    return folder


def test_a_second_process_sees_what_the_first_ingested(cli_settings: Settings) -> None:
    folder = write_docs(Path("docs"), 3)
    ingest = run(cli_settings, "ingest", str(folder))
    assert ingest.returncode == 0, ingest.stderr
    assert "3 added" in ingest.stdout
    listed = run(cli_settings, "docs", "list", "--json")
    assert [d["doc_id"] for d in json.loads(listed.stdout)] == [
        "docs/doc0000.txt",
        "docs/doc0001.txt",
        "docs/doc0002.txt",
    ]
    retrieved = run(cli_settings, "retrieve", "topic1", "--json")
    assert json.loads(retrieved.stdout)[0]["doc_id"] == "docs/doc0001.txt"
    again = run(cli_settings, "ingest", str(folder))
    assert "0 added, 0 replaced, 3 unchanged" in again.stdout


def test_query_prints_the_mode_and_numbered_sources(cli_settings: Settings) -> None:
    run(cli_settings, "ingest", str(write_docs(Path("docs"), 2)))
    result = run(cli_settings, "query", "Which document mentions topic1?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Answer (extractive):")
    assert "[1] docs/doc0001.txt" in result.stdout


def test_docs_delete_and_missing_ids(cli_settings: Settings) -> None:
    run(cli_settings, "ingest", str(write_docs(Path("docs"), 2)))
    result = run(cli_settings, "docs", "delete", "docs/doc0000.txt", "docs/missing.txt")
    assert result.returncode == 1
    assert "not found: docs/missing.txt" in result.stderr
    listed = json.loads(run(cli_settings, "docs", "list", "--json").stdout)
    assert [d["doc_id"] for d in listed] == ["docs/doc0001.txt"]


def test_ingest_exits_non_zero_and_names_skipped_files(cli_settings: Settings) -> None:
    folder = write_docs(Path("docs"), 1)
    (folder / "bad.txt").write_bytes(b"\xff\xfe\x00\x00")
    result = run(cli_settings, "ingest", str(folder), "missing.md")
    assert result.returncode == 1
    assert "skipped docs/bad.txt: binary file" in result.stderr
    assert "skipped missing.md: no such file" in result.stderr
    assert "1 added" in result.stdout and "2 skipped" in result.stdout


def test_chat_answers_several_turns(cli_settings: Settings) -> None:
    run(cli_settings, "ingest", str(write_docs(Path("docs"), 3)))
    result = run(cli_settings, "chat", input_text="What about topic2?\nAnd topic0?\n\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Sources:") == 2
    assert "[1] docs/doc0002.txt" in result.stdout
    assert "[1] docs/doc0000.txt" in result.stdout


def test_stores_reports_why_a_backend_is_unusable(make_settings: Callable[..., Settings]) -> None:
    result = run(make_settings(), "stores")
    assert result.returncode == 0
    assert "* memory    usable" in result.stdout
    assert "chroma    usable" in result.stdout
    assert "pinecone  unavailable: RAG_VECTOR_STORE=pinecone needs PINECONE_API_KEY" in (
        result.stdout
    )


@pytest.mark.parametrize("backend_name", ["memory", "chroma-server", "pinecone"], indirect=True)
def test_killed_ingest_rerun_ends_with_the_exact_chunk_count(
    cli_settings: Settings, embedder: Embedder
) -> None:
    # One short chunk per document: two write groups (GROUP_CHUNKS), the kill lands in the second.
    folder = write_docs(Path("docs"), DOCS, sentences=1)
    process = subprocess.Popen(
        rag_app_command("ingest", str(folder), "--no-progress"),
        env=cli_env(cli_settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    probe = RagApp(cli_settings.model_copy(update={"retriever": "dense"}), embedder=embedder)
    deadline = time.monotonic() + TIMEOUT
    while len(probe.backend.read_records()) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = probe.documents()
    assert len(interrupted) < DOCS or not all(r.complete for r in interrupted)
    probe.close()

    rerun = run(cli_settings, "ingest", str(folder), "--no-progress")
    assert rerun.returncode == 0, rerun.stderr

    app = RagApp(cli_settings, embedder=embedder)
    documents, _ = load_paths([folder])
    expected = sum(len(app.chunker.split(d)) for d in documents)
    records = app.documents()
    assert len(records) == DOCS and all(r.complete for r in records)
    assert sum(r.n_chunks for r in records) == expected
    assert app.backend.count() == expected
    app.backend.drop()
    app.close()


def test_pinecone_local_command_serves_the_app(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from tests.support.ports import free_port

    port = free_port()
    server = subprocess.Popen(
        rag_app_command("pinecone-local", "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "control plane on http://127.0.0.1:" in (
            server.stdout.readline() if server.stdout else ""
        )
        settings = make_settings(vector_store="pinecone", pinecone_host=f"http://127.0.0.1:{port}")
        ingest = run(settings, "ingest", str(write_docs(Path("docs"), 2)))
        assert ingest.returncode == 0, ingest.stderr
        retrieved = json.loads(run(settings, "retrieve", "topic1", "--json").stdout)
        assert retrieved[0]["doc_id"] == "docs/doc0001.txt"
    finally:
        server.terminate()
        server.wait(timeout=30)
