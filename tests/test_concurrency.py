"""Many writers, one store, nothing lost: processes and `RagApp` objects on every backend.

Embeddings come from the loopback OpenAI-compatible server (tests/support/openai_server.py)
through the real OpenAI client, so a writer subprocess starts without loading the local model
(about a third of the CPU); what is under test (stores, catalog, keyword index) is the same for
any embedder.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llama_index.core.schema import TextNode

from rag_app.app import RagApp
from rag_app.retrieval.keyword_index import KeywordIndex
from rag_app.settings import Settings
from tests.conftest import backend_overrides, cli_env, rag_app_command
from tests.support.openai_server import running_openai_server

TIMEOUT = 300
#: The staggered writer starts this much later, while the first ones are loading or writing.
STAGGER_SECONDS = 2.0
DOCS_PER_WRITER = 3


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    with running_openai_server(dim=64) as url:
        yield url


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    backend_name: str,
    request: pytest.FixtureRequest,
    openai_url: str,
) -> Iterator[Settings]:
    settings = make_settings(
        **backend_overrides(backend_name, request),
        collection=f"conc{uuid.uuid4().hex[:10]}",
        pinecone_index="rag-concurrency",
        embed_model="openai:text-embedding-3-small",
        openai_api_key="sk-concurrency-test",
        openai_base_url=openai_url,
        llm="extractive",
    )
    yield settings
    with RagApp(settings) as app:
        app.backend.drop()


def write_docs(folder: Path, tag: str) -> dict[str, str]:
    """A few one-chunk files, each with a keyword no other file has; file name -> keyword."""
    folder.mkdir(parents=True)
    keywords = {}
    for i in range(DOCS_PER_WRITER):
        keyword = f"zq{tag}{i}vex"
        (folder / f"{tag}{i}.txt").write_text(
            f"Field note {i} of series {tag}. The survey of {keyword} ended; {keyword} was rare."
        )
        keywords[f"{tag}{i}.txt"] = keyword
    return keywords


def assert_all_retrievable(app: RagApp, expected: dict[str, str]) -> None:
    """Exact chunk counts, every document found top-1 by its keyword, a consistent check."""
    records = {Path(r.doc_id).name: r for r in app.documents()}
    assert sorted(records) == sorted(expected)
    assert all(r.complete for r in records.values())
    assert app.backend.count() == sum(r.n_chunks for r in records.values())
    for name, keyword in expected.items():
        assert Path(app.retrieve(keyword, top_k=1)[0].doc_id).name == name, keyword
        hits = app.keyword.index.search(keyword, 1)  # as the retrieve just above left it
        assert hits and hits[0][0] in records[name].chunk_ids(), keyword
    report = app.check()
    assert report.consistent, report.lines()


def start_ingest(settings: Settings, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        rag_app_command("ingest", "--no-progress", str(folder)),
        env=cli_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_processes_and_a_long_lived_app_write_concurrently(
    settings: Settings, tmp_path: Path
) -> None:
    long_lived = RagApp(settings)  # opened before anyone writes, like a notebook's app
    expected: dict[str, str] = {}
    folders = {}
    for tag in "abcde":
        folders[tag] = tmp_path / tag
        expected |= write_docs(folders[tag], tag)
    writers = [start_ingest(settings, folders["a"]), start_ingest(settings, folders["b"])]
    time.sleep(STAGGER_SECONDS)
    writers.append(start_ingest(settings, folders["c"]))  # staggered: a and b are under way
    assert long_lived.ingest([folders["d"]]).added  # while the processes write
    for writer in writers:
        output, _ = writer.communicate(timeout=TIMEOUT)
        assert writer.returncode == 0, output
        assert f"{DOCS_PER_WRITER} added" in output
    # The CLI wrote since the app last looked: its next ingest and its reads must see that.
    assert len(long_lived.ingest([folders["e"]]).added) == DOCS_PER_WRITER
    assert_all_retrievable(long_lived, expected)
    with RagApp(settings) as fresh:
        assert_all_retrievable(fresh, expected)
        assert len(fresh.ingest(list(folders.values())).unchanged) == len(expected)
    long_lived.close()


def test_two_app_objects_in_one_process(settings: Settings, tmp_path: Path) -> None:
    first, second = RagApp(settings), RagApp(settings)
    expected = {}
    for tag, app in (("a", first), ("b", second), ("c", first)):
        expected |= write_docs(tmp_path / tag, tag)
        assert len(app.ingest([tmp_path / tag]).added) == DOCS_PER_WRITER
    # `second` last saw the store before `first` wrote c: it must still delete c0 everywhere.
    second.delete([r.doc_id for r in first.documents() if Path(r.doc_id).name == "c0.txt"])
    del expected["c0.txt"]
    for app in (first, second):
        assert_all_retrievable(app, expected)
        app.close()


def orphan_node(app: RagApp) -> TextNode:
    text = "An orphan chunk that no catalog record claims, about zqorphanvex."
    return TextNode(id_="f" * 20 + ":0", text=text, embedding=app.embedder.embed_query(text))


def test_check_finds_and_repairs_what_went_wrong_behind_the_app(
    settings: Settings, tmp_path: Path
) -> None:
    expected = write_docs(tmp_path / "a", "a")
    app = RagApp(settings)
    app.ingest([tmp_path / "a"])
    records = {Path(r.doc_id).name: r for r in app.documents()}
    app.backend.delete_chunks(records["a0.txt"].chunk_ids())
    orphan = orphan_node(app)
    app.backend.upsert([orphan])
    app.backend.flush()
    index = KeywordIndex.load(app.keyword.directory)
    index.delete(records["a1.txt"].chunk_ids())
    index.save(app.keyword.directory)

    found = app.check()
    assert {d.kind: d.ids for d in found.differences} == {
        "missing_chunks": records["a0.txt"].chunk_ids(),
        "orphan_chunks": [orphan.node_id],
        "keyword_missing": records["a1.txt"].chunk_ids(),
        "keyword_extra": records["a0.txt"].chunk_ids(),  # gone from the store only
    }
    assert not found.consistent and found.unrepaired == found.differences

    repaired = app.check(repair=True)
    assert repaired.differences and not repaired.unrepaired
    after = app.check()
    assert [(d.kind, d.ids) for d in after.differences] == [
        ("incomplete", [records["a0.txt"].doc_id])
    ]
    report = app.ingest([tmp_path / "a"])
    assert report.replaced == [records["a0.txt"].doc_id]
    assert_all_retrievable(app, expected)

    for path in app.keyword.directory.iterdir():
        path.unlink()
    assert {d.kind for d in app.check().differences} == {"keyword_missing"}
    assert not app.check(repair=True).unrepaired
    assert_all_retrievable(app, expected)
    app.close()


@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_docs_check_command_reports_repairs_and_exits(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "a", "a")
    with RagApp(settings) as app:
        app.ingest([tmp_path / "a"])
        app.backend.upsert([orphan_node(app)])
        app.backend.flush()

    def docs_check(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            rag_app_command("docs", "check", *flags),
            env=cli_env(settings),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    found = docs_check()
    assert found.returncode == 1, found.stderr
    assert "orphan_chunks: 1 chunk(s) no catalog record claims" in found.stdout
    repaired = docs_check("--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired: deleted 1 orphan chunk(s) from the store" in repaired.stdout
    with RagApp(settings) as app:
        assert app.check().lines()[-1] == "consistent"


def test_an_open_after_another_process_wrote_fetches_only_what_it_wrote(
    settings: Settings, tmp_path: Path
) -> None:
    """Incremental keyword sync: the next open fetches the new documents' chunks, nothing else,
    and (on Chroma and Pinecone) never reads the whole catalog."""
    write_docs(tmp_path / "a", "a")
    with RagApp(settings) as app:
        app.ingest([tmp_path / "a"])  # the keyword index is saved under RAG_DATA_DIR
    expected = write_docs(tmp_path / "b", "b")
    dense_writer = settings.model_copy(update={"retriever": "dense"})  # leaves the index alone
    writer = subprocess.run(
        rag_app_command("ingest", "--no-progress", str(tmp_path / "b")),
        env=cli_env(dense_writer),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert writer.returncode == 0, writer.stdout + writer.stderr
    with RagApp(settings) as app:
        fetched: list[str] = []
        whole_catalog_reads: list[int] = []
        fetch, read_all = app.backend.fetch_nodes, app.backend.read_records
        app.backend.fetch_nodes = lambda ids: fetched.extend(ids) or fetch(ids)  # type: ignore[method-assign]
        app.backend.read_records = lambda: whole_catalog_reads.append(1) or read_all()  # type: ignore[method-assign]
        assert app.keyword is not None  # opens and syncs the keyword index
        app.backend.fetch_nodes, app.backend.read_records = fetch, read_all  # type: ignore[method-assign]
        written = [r for r in app.documents() if Path(r.doc_id).name in expected]
        assert sorted(fetched) == sorted(i for r in written for i in r.chunk_ids())
        if app.backend.name != "memory":  # memory's catalog is a local file, read whole
            assert not whole_catalog_reads
        for name, keyword in expected.items():
            assert Path(app.retrieve(keyword, top_k=1)[0].doc_id).name == name
