"""`rag-app migrate` / `RagApp.migrate_to`: every pair of backends, kill -9 and refusals.

One source corpus per backend (the bundled samples, the held-out pictures and their prompts)
is built once per module and copied to every other backend; each target is checked for zero
embeddings, a passing verification, a clean `docs check` and the same search results.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.errors import RagAppError
from rag_app.migration.targets import target_settings
from rag_app.retrieval.keyword_index import KeywordIndex
from rag_app.settings import Settings, load_settings
from rag_app.stores.base import DocRecord, chunk_ids
from rag_app.stores.memory.backend import MemoryBackend
from rag_app.stores.registry import open_backend
from rag_lab.shapes import Shape, save_prompts
from tests.conftest import BACKENDS, backend_overrides, cli_env, rag_app_command
from tests.support.tiny_clip import HELD_OUT_SEED

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
PAIRS = [(s, t) for s in BACKENDS for t in BACKENDS if s != t]
TIMEOUT = 120


def target_options(name: str, request: pytest.FixtureRequest, folder: Path) -> dict[str, Any]:
    """`migrate_to` arguments that name backend `name` as the target, in a folder of its own."""
    overrides = backend_overrides(name, request)
    store = overrides.pop("vector_store")
    options: dict[str, Any] = {"data_dir": folder}
    if name == "chroma":
        options |= {"chroma_host": "", "chroma_path": folder / "chroma"}
    options |= overrides
    return {"to": store, **options}


def target_flags(options: dict[str, Any]) -> list[str]:
    flags = ["--to", options["to"]]
    for field, value in options.items():
        if field != "to":
            flags += [f"--{field.replace('_', '-')}", str(value)]
    return flags


@pytest.fixture(scope="module")
def sources(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    tiny_clip: Path,
    held_out: dict[Shape, Path],
) -> Callable[[str, pytest.FixtureRequest], Settings]:
    """The source corpus on a backend: built on first use, shared by the pairs from it."""
    built: dict[str, Settings] = {}
    prompts = save_prompts(tmp_path_factory.mktemp("prompts"), HELD_OUT_SEED + 1)

    def source(name: str, request: pytest.FixtureRequest) -> Settings:
        if name not in built:
            settings = load_settings(
                **backend_overrides(name, request),
                data_dir=tmp_path_factory.mktemp(f"source-{name}"),
                doc_root=SAMPLES.parent,
                collection=f"src-{name}",
                image_embed_model=str(tiny_clip),
            )
            with RagApp(settings, embedder=embedder) as app:
                app.backend.drop()
                app.images.drop()
                assert app.ingest([SAMPLES]).ok
                assert app.ingest([next(iter(held_out.values())).parent]).ok
                assert app.ingest_prompts(prompts).ok
            built[name] = settings
        return built[name]

    return source


def snapshot(settings: Settings, embedder: Embedder) -> tuple[int, dict, list[str]]:
    with RagApp(settings, embedder=embedder) as app:
        ids = [s.doc_id for s in app.retrieve("HNSW 그래프의 ef_construction", top_k=3)]
        return app.backend.count(), app.backend.read_records(), ids


@pytest.mark.parametrize(("source_name", "target_name"), PAIRS)
def test_every_pair_round_trips_text_images_and_prompts_unembedded(
    source_name: str,
    target_name: str,
    sources: Callable[[str, pytest.FixtureRequest], Settings],
    embedder: Embedder,
    held_out: dict[Shape, Path],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    settings = sources(source_name, request)
    before = snapshot(settings, embedder)
    options = target_options(target_name, request, tmp_path / "target")
    collection = f"m{abs(hash(request.node.nodeid)) % 10**8}"
    embedded = embedder.texts_embedded
    with RagApp(settings, embedder=embedder) as app:
        report = app.migrate_to(to_collection=collection, **options)
        clip = app.__dict__.get("clip")
    assert embedder.texts_embedded == embedded and clip is None  # no model ran at all
    assert report.texts_embedded == 0
    assert report.verification is not None and report.verification.ok, report.summary()
    assert report.collections == ["chunks", "images", "prompts"]
    assert snapshot(settings, embedder) == before  # the source is untouched

    store = options.pop("to")
    moved = target_settings(settings, store, collection=collection, **options)
    with RagApp(moved, embedder=embedder) as target:
        try:
            assert target.check().consistent
            count, records, top = snapshot(moved, embedder)
            assert (count, records, top) == before
            circle = held_out[Shape("red", "circle")]
            assert target.search_images(circle, top_k=1)[0].path == str(circle)
            assert len(target.images.prompt_documents()) == len(held_out)
        finally:
            target.backend.drop()
            target.images.drop()


def synthetic_source(settings: Settings, model_id: str, documents: int, per_doc: int) -> None:
    """A source written through the Backend API with random vectors (fast, no model)."""
    backend = open_backend(settings, lambda: 384)
    backend.drop()
    backend.record_embedding(model_id, 384)
    rng = np.random.default_rng(7)
    records = []
    for d in range(documents):
        doc_id = f"doc{d}.md"
        nodes = [
            TextNode(
                id_=node_id,
                text=f"문서 {d}의 {j}번째 조각: 벡터 데이터베이스 이전 {d * per_doc + j}",
                embedding=rng.standard_normal(384).tolist(),
                metadata={"doc_id": doc_id},
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
            )
            for j, node_id in enumerate(chunk_ids(doc_id, per_doc))
        ]
        backend.upsert(nodes)
        records.append(DocRecord(doc_id, f"hash-{d}", per_doc, source=doc_id))
    backend.flush()
    backend.put_documents(records)
    backend.close()


@pytest.mark.parametrize(
    ("source_name", "target_name"), [("memory", "chroma-server"), ("chroma-server", "pinecone")]
)
def test_kill_9_mid_migration_then_the_same_command_completes(
    source_name: str,
    target_name: str,
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    collection = f"k{abs(hash(request.node.nodeid)) % 10**8}"
    settings = make_settings(**backend_overrides(source_name, request), collection=collection)
    synthetic_source(settings, embedder.model_id, documents=40, per_doc=5)
    options = target_options(target_name, request, tmp_path / "target")
    command = rag_app_command(
        "migrate",
        *target_flags(options),
        "--to-collection",
        f"{collection}-to",
        "--batch-size",
        "2",
        "--no-progress",
    )
    checkpoints = settings.data_dir / "migrate"
    process = subprocess.Popen(
        command, env=cli_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not _progress(checkpoints):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done = _progress(checkpoints)
    assert 0 < done < 200, f"the kill did not land mid-way ({done} of 200 chunks)"

    rerun = subprocess.run(
        command, env=cli_env(settings), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "migrated 200 chunks of 40 documents" in rerun.stdout and "(resumed)" in rerun.stdout
    assert "verify: source and target agree" in rerun.stdout
    assert not list(checkpoints.glob("*.json"))
    store = options.pop("to")
    moved = target_settings(settings, store, collection=f"{collection}-to", **options)
    with RagApp(moved, embedder=embedder) as target:
        try:
            assert sorted(target.backend.list_chunk_ids()) == sorted(
                i for d in range(40) for i in chunk_ids(f"doc{d}.md", 5)
            )
            assert target.check().consistent
        finally:
            target.backend.drop()


def _progress(folder: Path) -> int:
    """Chunks the running migration has checkpointed (0 before its first batch)."""
    for path in folder.glob("*.json"):
        try:
            parts = json.loads(path.read_text(encoding="utf-8"))["parts"]
        except (ValueError, KeyError):
            continue
        return int(parts.get("chunks", {}).get("done", 0))
    return 0


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rag_app_command("migrate", "--no-progress", *args),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_refusals_are_one_error_line_and_leave_the_source_untouched(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    use_embedder: Embedder,
    tmp_path: Path,
) -> None:
    settings = make_settings()
    synthetic_source(settings, embedder.model_id, documents=3, per_doc=2)
    before = snapshot(settings, embedder)[:2]
    target = tmp_path / "target"
    other = make_settings(vector_store="chroma", data_dir=target, collection="used")
    synthetic_source(other, use_embedder.model_id, documents=1, per_doc=1)

    mismatch = run_cli(
        settings, "--to", "chroma", "--data-dir", str(target), "--to-collection", "used"
    )
    assert mismatch.returncode == 2 and mismatch.stderr.count("\n") == 1, mismatch.stderr
    assert use_embedder.model_id in mismatch.stderr and embedder.model_id in mismatch.stderr

    first = run_cli(settings, "--to", "chroma", "--data-dir", str(target))
    assert first.returncode == 0, first.stderr
    again = run_cli(settings, "--to", "chroma", "--data-dir", str(target))
    assert again.returncode == 2 and again.stderr.startswith("error: the target already holds")
    assert "--resume" in again.stderr and again.stderr.count("\n") == 1
    assert (
        run_cli(settings, "--to", "chroma", "--data-dir", str(target), "--replace").returncode == 0
    )

    unreachable = run_cli(
        settings, "--to", "chroma", "--chroma-host", "127.0.0.1", "--chroma-port", "9"
    )
    assert unreachable.returncode == 2 and unreachable.stderr.startswith(
        "error: the migration target"
    )
    assert unreachable.stderr.count("\n") == 1

    same = run_cli(settings, "--to", "memory")
    assert same.returncode == 2 and "the target is the source" in same.stderr
    assert snapshot(settings, embedder)[:2] == before


def test_resume_flag_copies_over_a_target_that_holds_data(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    settings = make_settings()
    synthetic_source(settings, embedder.model_id, documents=4, per_doc=3)
    target = make_settings(data_dir=tmp_path / "target")
    synthetic_source(target, embedder.model_id, documents=2, per_doc=3)
    with RagApp(settings, embedder=embedder) as app:
        with pytest.raises(RagAppError, match="already holds"):
            app.migrate_to("memory", data_dir=tmp_path / "target")
        report = app.migrate_to("memory", data_dir=tmp_path / "target", policy="resume")
    assert report.verification is not None and report.verification.ok


def test_answers_flag_copies_the_answer_cache_and_its_entries_still_hit(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    cached = {"cache": "exact", "cache_extractive": True}
    settings = make_settings(**cached)
    synthetic_source(settings, embedder.model_id, documents=4, per_doc=3)
    question = "벡터 데이터베이스 이전은 무엇인가요?"
    with RagApp(settings, embedder=embedder) as app:
        answer = app.query(question)
        assert app.answer_cache.stats().entries == 1
        report = app.migrate_to("chroma", data_dir=tmp_path / "target", answers=True)
    assert report.collections == ["chunks", "answers"] and report.verification.ok
    moved = target_settings(settings, "chroma", data_dir=tmp_path / "target")
    with RagApp(moved, embedder=embedder) as target:
        assert target.answer_cache.stats().entries == 1
        assert target.query(question).text == answer.text
        assert target.answer_cache.stats().hits >= 1


def test_a_pinecone_target_with_a_sparse_index_gets_its_bm25_from_the_copied_chunks(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    pinecone_local: str,
    request: pytest.FixtureRequest,
) -> None:
    settings = make_settings()
    synthetic_source(settings, embedder.model_id, documents=3, per_doc=2)
    collection = f"s{abs(hash(request.node.nodeid)) % 10**8}"
    options = {"pinecone_host": pinecone_local, "pinecone_sparse_index": "migrate-sparse"}
    with RagApp(settings, embedder=embedder) as app:
        report = app.migrate_to("pinecone", to_collection=collection, **options)
    assert report.verification is not None and report.verification.ok
    moved = target_settings(settings, "pinecone", collection=collection, **options)
    with RagApp(moved, embedder=embedder) as target:
        try:
            hits = target.keyword.search("문서 2의 1번째 조각", 3)
            assert hits and hits[0][0] == chunk_ids("doc2.md", 2)[1]
        finally:
            target.keyword.drop()
            target.backend.drop()


def test_the_source_keyword_index_is_copied_only_when_it_holds_the_catalogs_documents(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings()
    synthetic_source(settings, embedder.model_id, documents=4, per_doc=3)
    with RagApp(settings, embedder=embedder) as app:
        expected = app.keyword.search("문서 2의 1번째 조각", 3)  # builds the source's index
    tokenized: list[int] = []
    tokenize = KeywordIndex.tokenize_texts
    monkeypatch.setattr(
        KeywordIndex,
        "tokenize_texts",
        lambda self, texts: (tokenized.append(len(texts)), tokenize(self, texts))[1],
    )

    def migrate(folder: str) -> list[tuple[str, float]]:
        with RagApp(settings, embedder=embedder) as app:
            report = app.migrate_to("chroma", data_dir=tmp_path / folder)
        assert report.verification is not None and report.verification.ok, report.summary()
        moved = target_settings(settings, "chroma", data_dir=tmp_path / folder)
        with RagApp(moved, embedder=embedder) as target:
            assert target.check().consistent
            return target.keyword.search("문서 2의 1번째 조각", 3)

    assert migrate("copied") == expected and tokenized == []
    # A document changed behind the index's back: the index is stale, the chunks are built
    # (ties in BM25 score may then come in another order).
    backend = open_backend(settings, lambda: 384)
    backend.put_documents([DocRecord("doc3.md", "hash-changed", 3, source="doc3.md")])
    backend.close()
    built = migrate("built")
    assert built[0] == expected[0] and [s for _, s in built] == [s for _, s in expected]
    assert sum(tokenized) >= 12


def test_the_copy_runs_with_the_cyclic_collector_paused_and_restores_it(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings()
    synthetic_source(settings, embedder.model_id, documents=4, per_doc=3)
    collecting: list[bool] = []
    write = MemoryBackend.write_embedded

    def spying(self: MemoryBackend, batch: Any) -> None:
        collecting.append(gc.isenabled())
        write(self, batch)

    monkeypatch.setattr(MemoryBackend, "write_embedded", spying)
    assert gc.isenabled()
    with RagApp(settings, embedder=embedder) as app:
        report = app.migrate_to("memory", data_dir=tmp_path / "target")
    assert report.verification is not None and report.verification.ok
    assert collecting and not any(collecting)
    assert gc.isenabled()
