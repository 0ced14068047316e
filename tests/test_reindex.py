"""`rag-app reindex`: a collection re-embedded with a new model from its stored chunks alone.

The store is built with multilingual USE (512-d) and re-embedded with the default e5 (384-d),
so the rebuild also changes the dimension; the source files are deleted first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.errors import EmbeddingMismatchError
from rag_app.ingestion.reindex import reindex
from rag_app.settings import Settings
from tests.conftest import backend_overrides, cli_env, rag_app_command

TIMEOUT = 300
TOPICS = ["서울", "한강", "北京", "長江", "HNSW", "Chroma", "Pinecone", "BM25"]


def korean_texts(count: int, sentences: int = 4) -> list[str]:
    return [
        " ".join(
            f"문서 {i}의 {j}번째 문장은 {TOPICS[i % len(TOPICS)]}{i}에 관한 설명이다."
            for j in range(sentences)
        )
        for i in range(count)
    ]


def build_with_use(settings: Settings, use_embedder: Embedder, texts: list[str]) -> int:
    with RagApp(settings.model_copy(update={"embed_model": "use"}), embedder=use_embedder) as app:
        app.ingest_texts(texts)
        return app.backend.count()


@pytest.mark.parametrize("backend_name", ["memory", "chroma"], indirect=True)
def test_reindex_re_embeds_every_chunk_with_the_new_model(
    make_settings: Callable[..., Settings],
    backend_name: str,
    request: pytest.FixtureRequest,
    embedder: Embedder,
    use_embedder: Embedder,
) -> None:
    settings = make_settings(**backend_overrides(backend_name, request), collection="reidx")
    texts = korean_texts(6)
    chunks = build_with_use(settings, use_embedder, texts)

    report = reindex(settings, embedder)
    assert (report.documents, report.chunks) == (6, chunks)
    assert report.previous_model == use_embedder.model_id
    with RagApp(settings, embedder=embedder) as app:
        assert app.backend.manifest() == {"embed_model": embedder.model_id, "dimension": 384}
        assert app.backend.count() == chunks
        assert all(r.complete for r in app.documents())
        assert app.retrieve("長江3에 관한 설명", 1)[0].text == texts[3]
        assert "3 unchanged" not in app.ingest_texts(texts[:1]).summary()  # re-chunked for e5
        app.backend.drop()


def test_reindex_refuses_a_new_dimension_on_pinecone_and_keeps_the_store(
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
    embedder: Embedder,
    use_embedder: Embedder,
) -> None:
    settings = make_settings(
        **backend_overrides("pinecone", request), pinecone_index="reidx-512", collection="reidx"
    )
    chunks = build_with_use(settings, use_embedder, korean_texts(2))
    with pytest.raises(EmbeddingMismatchError, match="Set PINECONE_INDEX to another index"):
        reindex(settings, embedder)
    with RagApp(settings.model_copy(update={"embed_model": "use"}), embedder=use_embedder) as app:
        assert app.backend.count() == chunks
        app.backend.drop()


def test_reindex_twice_has_nothing_to_do(
    make_settings: Callable[..., Settings], embedder: Embedder, use_embedder: Embedder
) -> None:
    settings = make_settings()
    build_with_use(settings, use_embedder, korean_texts(2))
    reindex(settings, embedder)
    again = reindex(settings, embedder)
    assert again.summary(embedder.model_id).startswith("nothing to do")
    assert again.texts_embedded == 0


def test_killed_reindex_resumes_and_ends_with_every_chunk(
    make_settings: Callable[..., Settings], embedder: Embedder, use_embedder: Embedder
) -> None:
    settings = make_settings()
    texts = korean_texts(60, sentences=2)
    chunks = build_with_use(settings, use_embedder, texts)
    snapshots = settings.data_dir / "reindex"
    process = subprocess.Popen(
        rag_app_command("reindex", "--no-progress"),
        env=cli_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + TIMEOUT
    while not list(snapshots.glob("*.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert list(snapshots.glob("*.json")), "the kill came after the reindex finished"

    rerun = subprocess.run(
        rag_app_command("reindex", "--no-progress"),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"re-embedded {chunks} chunks of 60 documents" in rerun.stdout
    assert "(resumed)" in rerun.stdout
    assert not list(snapshots.glob("*.json"))
    with RagApp(settings, embedder=embedder) as app:
        assert app.backend.count() == chunks
        assert app.backend.manifest()["embed_model"] == embedder.model_id
        assert app.retrieve("한강41에 관한 설명", 1)[0].text == texts[41]
