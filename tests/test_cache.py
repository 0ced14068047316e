"""The answer cache: exact and semantic hits, invalidation, sharing, and LLM calls saved."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import Document, PromptTemplate

from rag_app import cli
from rag_app.answers.cache import CACHE_SUFFIX, THRESHOLDS
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command
from tests.support.openai_server import running_openai_server

DOCS = [
    Document(id_="hnsw", text="HNSW parameter ef_search sets the candidate list while searching."),
    Document(id_="paris", text="Paris is the capital of France and home of the Eiffel Tower."),
]
QUESTION = "What does ef_search control in HNSW?"
#: Cosine to QUESTION with e5 (the default): 0.992 (a paraphrase), 0.949 (another parameter).
PARAPHRASE = "In HNSW, what is ef_search controlling?"
NEAR_MISS = "What does ef_construction control in HNSW?"
OTHER = "What is the capital of France?"
#: Extractive answers, cached on request: the cheapest answers to test the cache with.
CACHED = {"cache": "semantic", "llm": "extractive", "cache_extractive": True}


def test_crafted_pairs_sit_on_either_side_of_the_shipped_threshold(embedder: Embedder) -> None:
    threshold = THRESHOLDS[embedder.model_id]
    vectors = [embedder.embed_query(q) for q in (QUESTION, PARAPHRASE, NEAR_MISS)]
    similarity = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    assert similarity[0] >= threshold > similarity[1]


def test_exact_hit_semantic_hit_and_misses(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with RagApp(make_settings(**CACHED), embedder=embedder) as app:
        app.ingest(DOCS)
        first = app.query(QUESTION)
        again = app.query("  " + QUESTION.replace(" ", "   "))
        paraphrased = app.query(PARAPHRASE)
        near_miss = app.query(NEAR_MISS)
        other_top_k = app.query(QUESTION, top_k=1)
        skipped = app.query(QUESTION, cache=False)
        stats = app.answer_cache.stats()
    assert first.mode == "extractive"
    assert again.mode == "cache:exact"
    assert (again.text, again.sources) == (first.text, first.sources)
    assert paraphrased.mode.startswith("cache:semantic (similarity 0.9")
    assert paraphrased.mode.endswith(f'to "{QUESTION}")')
    assert (paraphrased.question, paraphrased.text) == (PARAPHRASE, first.text)
    assert paraphrased.sources == first.sources
    assert near_miss.mode == other_top_k.mode == skipped.mode == "extractive"
    assert (stats.hits, stats.exact_hits, stats.semantic_hits, stats.misses) == (2, 1, 1, 3)
    assert stats.entries == 3


def test_exact_mode_leaves_paraphrases_alone(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with RagApp(make_settings(**{**CACHED, "cache": "exact"}), embedder=embedder) as app:
        app.ingest(DOCS)
        app.query(QUESTION)
        assert app.query(QUESTION).mode == "cache:exact"
        assert app.query(PARAPHRASE).mode == "extractive"


def test_extractive_answers_are_not_cached_unless_asked(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with RagApp(make_settings(cache="exact", llm="extractive"), embedder=embedder) as app:
        app.ingest(DOCS)
        modes = {app.query(QUESTION).mode for _ in range(2)}
        assert modes == {"extractive"}
        assert app.answer_cache.stats().entries == 0


def test_changed_or_deleted_source_invalidates_what_cited_it(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app(**CACHED)
    app.ingest(DOCS)
    app.query(QUESTION)
    app.query(OTHER, top_k=1)  # cites only "paris"
    assert app.query(QUESTION).mode == "cache:exact"

    app.ingest([Document(id_="hnsw", text="HNSW parameter ef_search was renamed to beam.")])
    fresh = app.query(PARAPHRASE)  # the stale entry is a semantic candidate, never served
    assert fresh.mode == "extractive" and "renamed" in fresh.text
    again = app.query(QUESTION)  # its exact entry is gone; the fresh one is similar
    assert again.mode.startswith("cache:semantic") and again.text == fresh.text
    assert app.query(OTHER, top_k=1).mode == "cache:exact"  # not citing "hnsw": still valid

    app.delete(["hnsw"])
    assert app.query(QUESTION).mode == "extractive"
    assert app.query(OTHER, top_k=1).mode == "cache:exact"


def test_a_source_changed_while_answering_is_never_served(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with RagApp(make_settings(**CACHED), embedder=embedder) as app:
        app.ingest(DOCS)
        assert app.answer_cache.lookup(QUESTION) is None  # the miss sees the catalog...
        answer = app.query(QUESTION, cache=False)
        app.ingest([Document(id_="hnsw", text="HNSW parameter ef_search was renamed to beam.")])
        app.answer_cache.store(answer)  # ...and the entry records what the miss saw
        assert app.query(QUESTION).mode == "extractive"


def test_a_second_process_shares_the_cache(make_app: Callable[..., RagApp]) -> None:
    app = make_app(**CACHED)
    app.ingest(DOCS)
    stored = app.query(QUESTION)
    result = subprocess.run(
        rag_app_command("query", "--json", QUESTION),
        env=cli_env(app.settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "cache:exact"
    assert answer["text"] == stored.text
    assert [s["doc_id"] for s in answer["sources"]] == [s.doc_id for s in stored.sources]
    assert app.answer_cache.stats().hits == 1  # counted by the other process, in the store


def test_a_hit_makes_no_llm_call(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    log = tmp_path / "openai.jsonl"

    def llm_calls() -> int:
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(json.loads(line)["path"].endswith("/chat/completions") for line in lines)

    with running_openai_server(log_path=log) as url:
        settings = make_settings(
            llm="openai:gpt-4o-mini",
            openai_api_key="sk-test",
            openai_base_url=url,
            cache="semantic",
        )
        with RagApp(settings, embedder=embedder) as app:
            app.ingest(DOCS)
            first = app.query(QUESTION)
            assert (first.mode, llm_calls()) == ("openai:gpt-4o-mini", 1)
            assert app.query(QUESTION).mode == "cache:exact"
            answer, pieces = app.stream_query(PARAPHRASE)
            assert "".join(pieces) == first.text and answer.mode.startswith("cache:semantic")
            assert llm_calls() == 1
            assert app.query(QUESTION, cache=False).mode == "openai:gpt-4o-mini"
            assert llm_calls() == 2

            _, pieces = app.stream_query(OTHER)
            next(pieces)
            pieces.close()  # an interrupted stream is not stored
            assert app.answer_cache.stats().entries == 1
            _, pieces = app.stream_query(OTHER)
            streamed = "".join(pieces)
            assert app.query(OTHER).text == streamed
            assert llm_calls() == 4

            session = app.chat()
            turns = []
            for question in (QUESTION, OTHER):
                answer, pieces = session.ask(question)
                turns.append(("".join(pieces), answer.mode))
            assert turns[0] == (first.text, "cache:exact")  # first turn: no history
            assert turns[1][1] == "openai:gpt-4o-mini"  # after a turn: keyed by the history
            assert llm_calls() == 6  # a follow-up turn condenses the question, then answers


def test_cli_cache_stats_and_clear(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(**CACHED)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest(DOCS)
        app.query(QUESTION)
        app.query(QUESTION)
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["cache", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 1, 0.5)
    assert cli.main(["cache", "clear"]) == 0
    assert cli.main(["cache", "stats"]) == 0
    out = capsys.readouterr().out
    assert "entries   0" in out and "hit rate  0.0%" in out
    with RagApp(settings, embedder=embedder) as app:
        assert [d.doc_id for d in app.documents()] == ["hnsw", "paris"]  # documents untouched


def test_no_cache_flags_skip_the_cache_and_chat_says_what_the_cache_served(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(**CACHED)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest(DOCS)
        app.query(QUESTION)
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["query", QUESTION]) == 0
    assert capsys.readouterr().out.startswith("Answer (cache:exact):")
    assert cli.main(["query", "--no-cache", QUESTION]) == 0
    assert capsys.readouterr().out.startswith("Answer (extractive):")
    for flags, served in (([], "(cache:semantic (similarity 0.9"), (["--no-cache"], None)):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{PARAPHRASE}\n\n"))
        assert cli.main(["chat", *flags]) == 0
        out = capsys.readouterr().out
        assert (served in out) if served else ("(cache:" not in out)
    assert cli.main(["cache", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["exact_hits"], stats["semantic_hits"], stats["misses"]) == (1, 1, 1)


def test_the_prompt_templates_are_part_of_the_key(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    settings = make_settings(llm="openai:gpt-4o-mini", openai_api_key="sk-test")
    with RagApp(settings, embedder=embedder) as app:
        default = app._prompts()
        assert app._prompts(app.as_query_engine(streaming=True)) == default
        custom = app.as_query_engine(text_qa_template=PromptTemplate("{context_str} {query_str}"))
        assert app._prompts(custom) != default
        cache = app.answer_cache
        assert cache.context_key(None) == cache.context_key(None, prompts=default)
        assert cache.context_key(None, prompts=app._prompts(custom)) != cache.context_key(None)
        session = app.chat()
        assert session._prompts() != default


def test_docs_list_neither_loads_the_model_nor_opens_the_cache(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(**CACHED)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest(DOCS)
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(RagApp, "embedder", property(_fail), raising=True)
    assert cli.main(["docs", "list"]) == 0
    assert not [p for p in settings.data_dir.rglob("*") if CACHE_SUFFIX in p.name]


def test_cache_stats_and_clear_do_not_load_the_model(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    settings = make_settings(**CACHED)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest(DOCS)
        app.query(QUESTION)
        collection = app.answer_cache.collection
    with RagApp(settings) as app:
        assert app.answer_cache.collection == collection  # the model id, known unloaded
        assert app.answer_cache.stats().entries == 1
        app.answer_cache.clear()
        assert "embedder" not in app.__dict__


def _fail(_: object) -> None:
    raise AssertionError("the embedding model was loaded")
