"""The one ingestion path every backend shares.

Per document: a content hash decides whether anything changed (unchanged documents cost
nothing: no chunking, no embedding, no write). Changed documents are chunked, embedded (through
the embedding cache) and written with stable chunk ids, `<doc key>:<position>`, so writing the
same document twice overwrites instead of duplicating.

Chunks stream: a document is chunked a section at a time (`Chunker.iter_split`) and its chunks
are embedded and written in groups of GROUP_CHUNKS (small documents share a group, a large one
is written in several slices), so memory does not grow with a document's size, progress (in
characters) advances per group, and the embedding cache has committed all but the last group
when a kill comes.

Crash safety (Ctrl-C, kill -9, a server dying) comes from the order of writes:
1. a *pending* catalog record, whose chunk count covers both the old version and every chunk
   of the new one written so far (raised again before each slice of a large document);
2. the chunks (upsert); after the document's last slice, deletion of the old version's surplus;
3. the final record, written only after the last slice and after the store made the chunks
   durable.
A re-run treats a pending document as changed and redoes 2-3, which overwrites what was
written and deletes what is stale: the store ends with exactly the new chunks.

With a remote embedder (RAG_EMBED_CONCURRENCY > 1) chunking and embedding are pipelined with
writing: worker threads chunk and embed up to EMBED_AHEAD + 1 groups ahead while this thread
writes, so the wait for the embedding service and the wait for the store overlap
(docs/remote-ingestion.md). Writes, records and checkpoints still happen here, one group
after another in order, so the steps above are unchanged; what runs ahead only fills the
embedding cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from llama_index.core import Document
from llama_index.core.schema import (
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from tqdm.auto import tqdm

from rag_app.embeddings.models import Embedder
from rag_app.ingestion.chunking import SEARCHED_METADATA, Chunker
from rag_app.ingestion.loaders import LoadProblem
from rag_app.ingestion.records import flatten_metadata, oversized
from rag_app.stores.base import Backend, DocRecord, chunk_ids, searched_text
from rag_app.util.wording import plural

#: Chunks embedded and written per step; bounded memory, frequent progress.
GROUP_CHUNKS = 512
#: Stores that do not write through (memory) are made durable at least this often...
CHECKPOINT_SECONDS = 30.0
#: ...unless a checkpoint costs more than 1/CHECKPOINT_COST_RATIO of the time between two:
#: memory persists its whole matrix and records (6 s at 1M chunks on 2 busy cores), which
#: every 30 s would add 20 % to the ingest of a large store.
CHECKPOINT_COST_RATIO = 20
#: Ingests of fewer characters (about 200 chunks) show no progress bar.
PROGRESS_MIN_CHARS = 200_000
#: Groups a remote embedder may embed ahead of the group being written.
EMBED_AHEAD = 2


class ChangeListener(Protocol):
    """Told about every chunk written or deleted (the keyword index keeps itself in sync)."""

    def chunks_written(self, ids: Sequence[str], texts: Sequence[str]) -> None: ...

    def prepare_written(self, ids: Sequence[str], texts: Sequence[str]) -> Callable[[], None]:
        """`chunks_written` in two steps: its CPU work now, the change when the call runs."""
        ...

    def chunks_deleted(self, ids: Sequence[str]) -> None: ...


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[LoadProblem] = field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted: int = 0
    texts_embedded: int = 0
    #: Image files embedded with CLIP (the image collection; see rag_app.images.search).
    images_embedded: int = 0
    seconds: float = 0.0
    #: Files inside ingested folders that were not ingested, and why (not failures).
    ignored: list[LoadProblem] = field(default_factory=list)
    #: Documents under the ingested paths whose files are gone: removed (`prune`) or kept.
    pruned: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def add(self, other: IngestReport) -> None:
        """Take in another ingest's counts (the image collection's, beside the text one)."""
        self.added += other.added
        self.replaced += other.replaced
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.chunks_written += other.chunks_written
        self.chunks_deleted += other.chunks_deleted
        self.texts_embedded += other.texts_embedded
        self.images_embedded += other.images_embedded
        self.seconds += other.seconds

    def summary(self) -> str:
        pruned = f", {len(self.pruned)} pruned" if self.pruned else ""
        ignored = f", {len(self.ignored)} ignored" if self.ignored else ""
        images = f", {plural(self.images_embedded, 'image')}" if self.images_embedded else ""
        return (
            f"{len(self.added)} added, {len(self.replaced)} replaced, "
            f"{len(self.unchanged)} unchanged{pruned}, {len(self.skipped)} skipped{ignored}; "
            f"{plural(self.chunks_written, 'chunk')} written, "
            f"{plural(self.texts_embedded, 'text')}{images} embedded in {self.seconds:.1f} s"
        )


@dataclass
class _Planned:
    """A changed document to chunk and write."""

    document: Document
    record: DocRecord
    old_chunks: int


@dataclass
class PendingDocument:
    """A document version to write: its final record, its chunks and what the store holds now.

    `first` is the position of `nodes[0]` in the document: 0, unless the document is written
    in slices (a large document, or a LlamaIndex insert delivering one document's chunks in
    several batches). `last` is False for a slice that more slices of the document follow: its
    record stays pending and the old version's surplus chunks stay until the last slice.
    """

    record: DocRecord
    nodes: list[TextNode]
    old_chunks: int
    first: int = 0
    last: bool = True

    @property
    def end(self) -> int:
        return self.first + len(self.nodes)


@dataclass
class _PreparedWrite:
    """A group's chunks, embedded, with the calls that write them to the store and the
    listeners (made ahead of the write, see `Ingestor._prepare_group`)."""

    nodes: list[TextNode]
    upsert: Callable[[], None]
    listeners: list[Callable[[], None]]


class Ingestor:
    """Writes documents into one backend with one embedder and one chunker."""

    def __init__(
        self,
        backend: Backend,
        embedder: Embedder,
        chunker: Chunker | None,
        listeners: Sequence[ChangeListener] = (),
    ) -> None:
        """`chunker` is None for ingestors that keep each document whole (rag_app.images.search)."""
        self.backend = backend
        self.embedder = embedder
        self.chunker = chunker
        self.listeners = list(listeners)

    def ingest(
        self,
        documents: Iterable[Document],
        problems: Sequence[LoadProblem] = (),
        show_progress: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(skipped=list(problems))
        embedded_before = self.embedder.texts_embedded
        self.backend.check_embedding(self.embedder.model_id, self.embedder.dimension)
        catalog = self.backend.documents()
        work = self._plan(_unique(documents, report), catalog, report)
        if work:
            total = sum(len(planned.document.text) for planned in work)
            bar = tqdm(
                total=total,
                unit="char",
                unit_scale=True,
                desc="ingest",
                disable=not show_progress or total < PROGRESS_MIN_CHARS,
            )
            self._write(self._slices(work, report), report, bar)
        report.texts_embedded = self.embedder.texts_embedded - embedded_before
        report.seconds = time.perf_counter() - started
        return report

    def _plan(
        self, documents: list[Document], catalog: dict[str, DocRecord], report: IngestReport
    ) -> list[_Planned]:
        work = []
        for document in documents:
            digest = self.content_hash(document)
            old = catalog.get(document.doc_id)
            if old is not None and old.complete and old.content_hash == digest:
                report.unchanged.append(document.doc_id)
                continue
            (report.replaced if old else report.added).append(document.doc_id)
            record = DocRecord(document.doc_id, digest, 0, str(document.metadata.get("source", "")))
            work.append(_Planned(document, record, old.n_chunks if old else 0))
        return work

    def content_hash(self, document: Document) -> str:
        """Changes with the text, the metadata, the chunking and the embedding model."""
        payload = json.dumps(
            [document.text, document.metadata, self.chunker.chunk_size, self.embedder.model_id],
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _nodes(self, document: Document) -> Iterator[TextNode]:
        metadata = flatten_metadata(document.metadata)
        hidden = [k for k in metadata if k not in SEARCHED_METADATA] + ["doc_id", "chunk_index"]
        for index, chunk in enumerate(self.chunker.iter_split(document)):
            node = TextNode(
                id_=chunk_ids(document.doc_id, index + 1, index)[0],
                text=chunk.text,
                start_char_idx=chunk.start_char_idx,
                end_char_idx=chunk.end_char_idx,
                metadata={**metadata, "doc_id": document.doc_id, "chunk_index": index},
                excluded_embed_metadata_keys=hidden,
                excluded_llm_metadata_keys=hidden,
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=document.doc_id)
            yield node

    def _slices(
        self, work: list[_Planned], report: IngestReport
    ) -> Iterator[tuple[list[PendingDocument], int]]:
        """Groups of at most GROUP_CHUNKS chunks, chunking each document as it goes, each with
        how many characters of the documents it completes (for the progress bar)."""
        group: list[PendingDocument] = []
        size = chars = 0
        for planned in work:
            piece = PendingDocument(planned.record, [], planned.old_chunks)
            group.append(piece)
            done = 0
            for node in self._nodes(planned.document):
                too_big = oversized([node])
                if too_big:
                    _skip(planned.document.doc_id, too_big, report)
                    group = [p for p in group if p is not piece]
                    size -= len(piece.nodes)
                    break
                piece.nodes.append(node)
                end = node.end_char_idx or done
                chars, done, size = chars + end - done, end, size + 1
                if size >= GROUP_CHUNKS:
                    piece.last = False
                    yield [_counted(p) for p in group], chars
                    piece = PendingDocument(planned.record, [], planned.old_chunks, piece.end)
                    group, size, chars = [piece], 0, 0
            chars += len(planned.document.text) - done
        if group:
            yield [_counted(p) for p in group], chars

    def write(
        self, work: list[PendingDocument], report: IngestReport | None = None
    ) -> IngestReport:
        """Write planned document versions (chunks already embedded are not embedded again)."""
        report = report or IngestReport()
        self.backend.check_embedding(self.embedder.model_id, self.embedder.dimension)
        groups = ((group, 0) for group in _groups(work, GROUP_CHUNKS))
        self._write(groups, report, tqdm(disable=True))
        return report

    def _write(
        self, groups: Iterable[tuple[list[PendingDocument], int]], report: IngestReport, bar: Any
    ) -> None:
        """Write groups of document slices; `bar` advances by each group's progress amount.

        A store that writes through gets the final records of the documents one group
        completed in the same request as the next group's pending records (their chunks are
        durable by then): one catalog write per group, not two.
        """
        self.backend.record_embedding(self.embedder.model_id, self.embedder.dimension)
        unfinished: list[PendingDocument] = []
        last_checkpoint = time.monotonic()
        interval = CHECKPOINT_SECONDS
        with bar, closing(self._prepared(groups)) as ready:
            for group, progress, prepared in ready:
                through = self.backend.writes_through
                self._write_group(group, prepared, report, unfinished if through else [])
                if through:
                    unfinished.clear()
                unfinished.extend(p for p in group if p.last)
                bar.update(progress)
                bar.set_postfix_str(plural(report.chunks_written, "chunk"), refresh=False)
                if not through and time.monotonic() - last_checkpoint > interval:
                    cost = _timed(lambda: self._checkpoint(unfinished))
                    interval = max(CHECKPOINT_SECONDS, CHECKPOINT_COST_RATIO * cost)
                    last_checkpoint = time.monotonic()
            self._checkpoint(unfinished)

    def _prepared(
        self, groups: Iterable[tuple[list[PendingDocument], int]]
    ) -> Iterator[tuple[list[PendingDocument], int, _PreparedWrite]]:
        """`groups` in order, each embedded and encoded for its write; a remote embedder runs
        ahead."""
        if self.embedder.concurrency <= 1:
            for group, progress in groups:
                yield group, progress, self._prepare_group(group)
            return
        # One thread chunks (a generator has one caller at a time: the pool's one worker), two
        # embed and encode, so requests keep flowing across a group boundary (the embedder's
        # limit caps the requests in flight of both); this thread only writes.
        source = iter(groups)
        chunking = ThreadPoolExecutor(1, thread_name_prefix="rag-ingest-chunk")
        embedding = ThreadPoolExecutor(EMBED_AHEAD, thread_name_prefix="rag-ingest-embed")

        def next_group() -> tuple[tuple[list[PendingDocument], int], Future[_PreparedWrite]] | None:
            item = next(source, None)
            return None if item is None else (item, embedding.submit(self._prepare_group, item[0]))

        ahead = deque(chunking.submit(next_group) for _ in range(EMBED_AHEAD + 1))
        try:
            while ahead:
                started = ahead.popleft().result()
                if started is None:
                    return
                ahead.append(chunking.submit(next_group))
                (group, progress), prepared = started
                yield group, progress, prepared.result()
        finally:
            chunking.shutdown(wait=True, cancel_futures=True)
            for step in ahead:  # all done or cancelled now
                if not step.cancelled() and step.exception() is None and step.result():
                    step.result()[1].cancel()
            embedding.shutdown(wait=True, cancel_futures=True)

    def _prepare_group(self, group: list[PendingDocument]) -> _PreparedWrite:
        """Embed a group's chunks and do the CPU work of writing them (encoding the records,
        tokenising for the keyword index); nothing is written yet."""
        self._embed_group(group)
        nodes = [n for p in group for n in p.nodes]
        ids = [n.node_id for n in nodes]
        texts = [searched_text(n) for n in nodes]
        return _PreparedWrite(
            nodes,
            self.backend.prepare_upsert(nodes),
            [listener.prepare_written(ids, texts) for listener in self.listeners],
        )

    def _embed_group(self, group: list[PendingDocument]) -> None:
        nodes = [n for p in group for n in p.nodes if n.embedding is None]
        vectors = self.embedder.embed_texts([searched_text(n) for n in nodes])
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector.tolist()

    def _write_group(
        self,
        group: list[PendingDocument],
        prepared: _PreparedWrite,
        report: IngestReport,
        finished: list[PendingDocument],
    ) -> None:
        """Pending records (with `finished` documents' final ones), chunks, stale deletes."""
        pending = (
            DocRecord(
                p.record.doc_id,
                p.record.content_hash,
                max(p.end, p.old_chunks),
                p.record.source,
                complete=False,
            )
            for p in group
        )
        self.backend.put_documents([*(p.record for p in finished), *pending])
        prepared.upsert()
        stale = [
            i for p in group if p.last for i in chunk_ids(p.record.doc_id, p.old_chunks, p.end)
        ]
        self.backend.delete_chunks(stale)
        for apply in prepared.listeners:
            apply()
        for listener in self.listeners:
            listener.chunks_deleted(stale)
        report.chunks_written += len(prepared.nodes)
        report.chunks_deleted += len(stale)

    def _checkpoint(self, unfinished: list[PendingDocument]) -> None:
        self.backend.flush()
        self.backend.put_documents(p.record for p in unfinished)
        unfinished.clear()

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Delete documents and their chunks; returns the ids that were not found."""
        return delete_documents(self.backend, doc_ids, self.listeners)


def delete_documents(
    backend: Backend, doc_ids: Sequence[str], listeners: Sequence[ChangeListener] = ()
) -> list[str]:
    """Delete documents and their chunks (no model needed); returns the ids not found."""
    catalog = backend.documents()
    missing = [d for d in doc_ids if d not in catalog]
    found = [catalog[d] for d in doc_ids if d in catalog]
    ids = [i for record in found for i in record.chunk_ids()]
    backend.delete_chunks(ids)
    backend.flush()
    for listener in listeners:
        listener.chunks_deleted(ids)
    backend.remove_documents(r.doc_id for r in found)
    return missing


def _timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _unique(documents: Iterable[Document], report: IngestReport) -> list[Document]:
    seen: dict[str, Document] = {}
    for document in documents:
        if document.doc_id in seen:
            report.skipped.append(
                LoadProblem(document.doc_id, "duplicate document id in one ingest; kept the first")
            )
            continue
        seen[document.doc_id] = document
    return list(seen.values())


def _groups(work: list[PendingDocument], size: int) -> list[list[PendingDocument]]:
    groups: list[list[PendingDocument]] = [[]]
    count = 0
    for pending in work:
        if groups[-1] and count + len(pending.nodes) > size:
            groups.append([])
            count = 0
        groups[-1].append(pending)
        count += len(pending.nodes)
    return [g for g in groups if g]


def _counted(piece: PendingDocument) -> PendingDocument:
    """The slice with its record counting every chunk of the document up to its end."""
    piece.record = replace(piece.record, n_chunks=piece.end)
    return piece


def _skip(doc_id: str, reason: str, report: IngestReport) -> None:
    """Report a document refused part-way: slices already written stay under a pending
    record, so the next ingest retries it and the catalog still covers every chunk."""
    for names in (report.added, report.replaced):
        if doc_id in names:
            names.remove(doc_id)
    report.skipped.append(LoadProblem(doc_id, reason))
