"""A large single document streams: bounded memory, progress as it goes, a cache a kill keeps.

The user trial's file was 4.65 MB on one line (no newline, no sentence end): nothing showed
for minutes, memory peaked at 1.38 GB and a kill -9 lost every embedding. These tests pin the
structure that fixes it, with small groups and a hashing embedder (peak RSS figures live in
benchmarks/large_file_bench.py).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document
from llama_index.core.schema import TextNode

import rag_app.ingestion.chunking
import rag_app.ingestion.pipeline
from rag_app.app import RagApp
from rag_app.embeddings.models import CACHE_COMMIT_TEXTS, Embedder, EmbeddingCache
from rag_app.ingestion.chunking import Chunker
from rag_app.ingestion.loaders import load_paths
from rag_app.settings import Settings, load_settings
from tests.test_embedding_cache import CountingEmbedding, counting_embedder

WORDS = ["vector", "store", "chunk", "embedding", "retrieval", "graph", "index", "query"]
GROUP = 8
SECTION = 5_000
TIMEOUT = 120


def single_line(characters: int, seed: int = 0) -> str:
    """Words and numbers on one line: no newline, no sentence end (the trial's worst case)."""
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < characters:
        words.append(f"{rng.choice(WORDS)}{rng.randint(0, 999)}")
        size += len(words[-1]) + 1
    return " ".join(words)


def small_chunks(data_dir: Path, store: str = "memory") -> Settings:
    return load_settings(data_dir=data_dir, vector_store=store, chunk_size=40, chunk_overlap=0)


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rag_app.ingestion.pipeline, "GROUP_CHUNKS", GROUP)


def test_a_huge_single_line_is_chunked_a_section_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rag_app.ingestion.chunking, "SECTION_CHARS", SECTION)
    text = single_line(3 * SECTION + 1234)
    chunker = Chunker(64, 8, str.split)
    seen: list[int] = []
    split = chunker._splitter.get_nodes_from_documents

    def spying_split(documents: Sequence[Document], **kwargs: Any) -> list:
        seen.extend(len(d.text) for d in documents)
        return split(documents, **kwargs)

    object.__setattr__(chunker._splitter, "get_nodes_from_documents", spying_split)
    chunks = chunker.iter_split(Document(id_="big", text=text))
    first = next(chunks)
    assert len(seen) == 1  # the first chunk came before the rest was split
    nodes = [first, *chunks]
    assert len(seen) == 4 and max(seen) <= SECTION and sum(seen) == len(text)
    for node in nodes:
        assert text[node.start_char_idx : node.end_char_idx] == node.text
    assert [n.start_char_idx for n in nodes] == sorted(n.start_char_idx for n in nodes)
    assert nodes[-1].end_char_idx == len(text)
    assert sum(len(n.text.split()) for n in nodes) >= len(text.split())  # overlaps


def test_the_cache_commits_every_part_so_a_crash_keeps_them(tmp_path: Path) -> None:
    class FailingEmbedding(CountingEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            if len(self.seen) >= 2 * CACHE_COMMIT_TEXTS + 10:
                raise RuntimeError("killed")
            return super()._get_text_embedding(text)

    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embedder = Embedder(FailingEmbedding(embed_batch_size=4), "test:failing", 40, str.split, cache)
    with pytest.raises(RuntimeError):
        embedder.embed_texts([f"text {i}" for i in range(4 * CACHE_COMMIT_TEXTS)])
    assert cache_rows(tmp_path / "cache.sqlite") == 2 * CACHE_COMMIT_TEXTS


class RecordingBar:
    """Stands in for tqdm: records each update with how many chunks the chunker had made."""

    last: RecordingBar

    def __init__(self, *args: Any, produced: list[int], **kwargs: Any) -> None:
        self.disabled = kwargs.get("disable", False)
        self.produced = produced
        self.updates: list[tuple[int, int]] = []
        RecordingBar.last = self

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, amount: int) -> None:
        self.updates.append((amount, self.produced[0]))

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass


def test_progress_advances_per_group_while_one_large_document_is_ingested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_groups: None
) -> None:
    produced = [0]
    monkeypatch.setattr(rag_app.ingestion.pipeline, "PROGRESS_MIN_CHARS", 0)
    monkeypatch.setattr(
        rag_app.ingestion.pipeline, "tqdm", lambda *a, **k: RecordingBar(*a, produced=produced, **k)
    )
    text = single_line(20_000)
    with RagApp(small_chunks(tmp_path), embedder=counting_embedder(tmp_path / "c.db")) as app:
        split = app.chunker.iter_split

        def counting_split(document: Document) -> Any:
            for node in split(document):
                produced[0] += 1
                yield node

        app.chunker.iter_split = counting_split  # type: ignore[method-assign]
        report = app.ingest_documents([Document(id_="big", text=text)], show_progress=True)
    bar = RecordingBar.last
    assert not bar.disabled and report.chunks_written > 3 * GROUP
    assert len(bar.updates) == -(-report.chunks_written // GROUP)
    assert bar.updates[0][1] <= GROUP + 1  # written before the chunker went further
    assert sum(amount for amount, _ in bar.updates) == len(text)


def test_embedded_chunks_alive_at_once_stay_within_one_group(
    tmp_path: Path, small_groups: None
) -> None:
    alive: list[weakref.ref] = []
    most_alive = 0
    with RagApp(small_chunks(tmp_path), embedder=counting_embedder(tmp_path / "c.db")) as app:
        upsert = app.backend.upsert

        def spying_upsert(nodes: Sequence[TextNode]) -> None:
            nonlocal most_alive
            alive.extend(weakref.ref(n) for n in nodes)
            most_alive = max(most_alive, sum(1 for r in alive if (n := r()) and n.embedding))
            upsert(nodes)

        app.backend.upsert = spying_upsert  # type: ignore[method-assign]
        report = app.ingest_documents([Document(id_="big", text=single_line(20_000))])
        assert app.backend.count() == report.chunks_written > 3 * GROUP
    assert 0 < most_alive <= GROUP


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return int(db.execute("SELECT count(*) FROM embeddings").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


class SlowLoggedEmbedding(CountingEmbedding):
    """Slow enough to be killed mid-file; appends each embedded batch's size to a log first."""

    log: str

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        time.sleep(0.05)
        with open(self.log, "a") as log:
            log.write(f"{len(texts)}\n")
        return super()._get_text_embeddings(texts)


def _ingest_slowly(settings: Settings, path: Path, log: Path) -> None:
    # a spawned child does not inherit the monkeypatch
    rag_app.ingestion.pipeline.GROUP_CHUNKS = GROUP
    model = SlowLoggedEmbedding(embed_batch_size=GROUP, log=str(log))
    cache = EmbeddingCache(settings.data_dir / "embedding_cache.sqlite")
    embedder = Embedder(model, "test:counting", 40, str.split, cache)
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([path])


@pytest.mark.parametrize("store", ["memory", "chroma"])
def test_a_kill_mid_file_loses_at_most_one_group_and_the_rerun_is_exact(
    tmp_path: Path, small_groups: None, store: str
) -> None:
    settings = small_chunks(tmp_path / "data", store)
    big = tmp_path / "big.txt"
    big.write_text(single_line(40_000), encoding="utf-8")
    cache, log = settings.data_dir / "embedding_cache.sqlite", tmp_path / "embedded.log"
    # spawn, not fork: a forked child inherits embedded Chroma's threads and hangs in it.
    child = multiprocessing.get_context("spawn").Process(
        target=_ingest_slowly, args=(settings, big, log)
    )
    child.start()
    deadline = time.monotonic() + TIMEOUT
    while cache_rows(cache) < 4 * GROUP and time.monotonic() < deadline:
        assert child.is_alive()
        time.sleep(0.02)
    assert cache_rows(cache) >= 4 * GROUP, "the ingest never got going"
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(timeout=30)
    embedded = sum(int(n) for n in log.read_text().split())
    kept = cache_rows(cache)
    assert embedded - GROUP <= kept <= embedded

    with RagApp(settings, embedder=counting_embedder(cache)) as app:
        assert [r.complete for r in app.documents()] in ([], [False])  # killed mid-file
        expected = len(app.chunker.split(load_paths([big])[0][0]))
        assert kept < expected
        report = app.ingest([big])
        assert report.texts_embedded == expected - kept
        records = app.documents()
        assert [(r.n_chunks, r.complete) for r in records] == [(expected, True)]
        assert app.backend.count() == report.chunks_written == expected
        assert app.check().consistent
