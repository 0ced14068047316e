"""The two ways of ranking agree: plain chunks (`RagApp.retrieve`, `rag-app retrieve`, no
LlamaIndex) and nodes (`HybridRetriever`, what LlamaIndex query and chat engines use); and so do
the two ways of answering offline (`Collection.extract`, the offline `rag-app query`, and the
LlamaIndex query engine of `RagApp.query`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from rag_app.answers.answerers import source_of
from rag_app.app import RagApp
from rag_app.collection import Collection
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
QUESTIONS = [
    "What does ef_search control in HNSW?",
    "HNSW의 M 파라미터는 무엇인가?",
    "BM25",
    "xyzzy plugh frobnicate",
]
PROBE = (
    "import sys\n"
    "from rag_app.cli.entry import main\n"
    "code = main(sys.argv[1:])\n"
    "print('LLAMA=' + str('llama_index.core' in sys.modules))\n"
    "sys.exit(code)\n"
)


def _node_sources(app: RagApp, question: str, mode: str) -> list[dict]:
    retriever = app._retriever(5, mode)  # type: ignore[arg-type]
    found = retriever.search(question, 5)
    return [asdict(source_of(n, hit)) for n, hit in enumerate(found, start=1)]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "dense"])
def test_plain_chunk_ranking_equals_the_llamaindex_retrievers(
    make_app: Callable[..., RagApp], mode: str
) -> None:
    app = make_app()
    app.ingest([SAMPLES])
    for question in QUESTIONS:
        plain = [asdict(s) for s in app.retrieve(question, 5, retriever=mode)]  # type: ignore[arg-type]
        assert plain == _node_sources(app, question, mode), question


def test_cli_retrieve_imports_no_llamaindex_and_matches_ragapp(
    make_settings: Callable[..., Settings], embedder
) -> None:
    settings = make_settings(vector_store="memory")
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([SAMPLES])
        expected = {q: [asdict(s) for s in app.retrieve(q)] for q in QUESTIONS[:2]}
    for question, sources in expected.items():
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "retrieve", question, "--json"],
            env=cli_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out, probe = done.stdout.strip().splitlines()
        assert probe == "LLAMA=False"
        assert json.loads(out) == sources


def test_offline_answers_equal_the_llamaindex_query_engine(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app(min_relevance=0.5)
    app.ingest([SAMPLES])
    for question in QUESTIONS:
        for top_k in (None, 2):
            expected = asdict(app.query(question, top_k, cache=False))
            assert asdict(app.extract(question, top_k)) == expected, (question, top_k)


def _cli_query(settings: Settings, *args: str, **env: str) -> tuple[str, str]:
    """`rag-app query` output and whether it imported LlamaIndex."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "query", *args],
        env={**cli_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *out, probe = done.stdout.strip().splitlines()
    return "\n".join(out), probe


def test_cli_offline_query_imports_no_llamaindex_and_matches_ragapp(
    make_settings: Callable[..., Settings], embedder
) -> None:
    settings = make_settings(vector_store="memory")
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([SAMPLES])
        expected = {q: app.query(q, cache=False) for q in QUESTIONS[:2]}
    for question, answer in expected.items():
        out, probe = _cli_query(settings, question, "--json")
        assert probe == "LLAMA=False"
        assert json.loads(out) == asdict(answer)
        out, probe = _cli_query(settings, question)
        assert probe == "LLAMA=False"
        assert out.splitlines()[:2] == ["Answer (extractive):", answer.text]


def test_cli_query_goes_through_the_engine_when_the_cache_keeps_extractive_answers(
    make_settings: Callable[..., Settings], embedder
) -> None:
    settings = make_settings(vector_store="memory", cache="exact", cache_extractive=True)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([SAMPLES])
    question = QUESTIONS[0]
    first, probe = _cli_query(settings, question, "--json")
    assert probe == "LLAMA=True"
    with RagApp(settings, embedder=embedder) as app:
        assert app.answer_cache.stats().entries == 1
    assert _cli_query(settings, question, "--json", "--no-cache") == (first, "LLAMA=False")


def test_a_search_only_process_sees_chunks_persisted_after_it_opened(
    make_settings: Callable[..., Settings], embedder, tmp_path: Path
) -> None:
    settings = make_settings(vector_store="memory")
    (tmp_path / "first.md").write_text("Apples grow on trees in orchards.", encoding="utf-8")
    with RagApp(settings, embedder=embedder) as writer:
        writer.ingest([tmp_path / "first.md"])
        with Collection(settings, embedder=embedder) as reader:
            assert [s.doc_id for s in reader.retrieve("apples", 3)] == ["first.md"]
            (tmp_path / "second.md").write_text("Zebras live in Africa.", encoding="utf-8")
            writer.ingest([tmp_path / "second.md"])
            assert reader.retrieve("zebras", 1)[0].doc_id == "second.md"
            assert "vector_store" not in reader.backend.__dict__


def test_cli_retrieve_on_an_empty_collection_says_so(make_settings) -> None:
    settings = make_settings(vector_store="memory")
    done = subprocess.run(
        rag_app_command("retrieve", "anything"),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "has no documents" in done.stderr
