"""One long-lived `RagApp` shared by every request, and what the routes ask of it.

Requests run in a thread pool. The stores are safe under concurrent use and the embedder
serialises its model calls; what is left is consistency: an ingest or delete writes a
document's chunks, catalog entry and keyword index one after the other, so writes take a
read-write lock exclusively and queries share it: a query sees a document entirely or not at
all. The models are loaded once, before the first request (`warm_up`).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.vector_stores import ExactMatchFilter, MetadataFilters

from rag_app.answers.types import Answer, Source
from rag_app.app import RagApp
from rag_app.errors import RagAppError
from rag_app.ingestion.loaders import LoadError, LoadProblem, load_file
from rag_app.ingestion.pipeline import IngestReport
from rag_app.stores.base import DocRecord

#: Where uploaded documents live in the collection: their ids are `uploads/<file name>`.
UPLOAD_PREFIX = "uploads/"


class EmptyCollectionError(RagAppError):
    """A question to a collection without documents."""


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds new readers back (no starvation).

    Not tied to threads: a streamed answer takes the read side in one pool thread and gives it
    back in another.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    def acquire_read(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its checked name (never a path on the server) and its bytes."""

    name: str
    data: bytes


class Stream:
    """A streamed answer: its sources now, its text as it comes; `close` ends the work."""

    def __init__(self, service: Service, answer: Answer, pieces: Iterator[str]) -> None:
        self.answer = answer
        self.pieces = pieces
        self._service = service
        self._closed = False

    def close(self) -> None:
        """Stop generating (closes the LLM's stream) and give the read lock back, once."""
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self.pieces, "close", None)
            if close is not None:
                close()
        finally:
            self._service._stream_ended()


class Service:
    """The operations of the HTTP API over one `RagApp`."""

    def __init__(self, app: RagApp) -> None:
        self.app = app
        self.settings = app.settings
        self._lock = ReadWriteLock()
        self._count_lock = threading.Lock()
        #: Streams being answered now (a client that went away must not leave one behind).
        self.active_streams = 0

    def warm_up(self) -> None:
        """Load the embedding model, the keyword index and the answerer before serving."""
        app = self.app
        _ = app.embedder, app.answerer, app.chunker, app.keyword, app.retriever, app.index
        app.embedder.embed_query("warm-up")

    @property
    def model_id(self) -> str:
        """The collection as an OpenAI "model"."""
        return self.settings.collection

    def options(self, retriever: str | None, filters: dict[str, Any] | None) -> dict[str, Any]:
        """`RagApp.query` options for a request's retriever and metadata filters."""
        options: dict[str, Any] = {}
        if retriever:
            options["retriever"] = retriever
        if filters:
            options["filters"] = MetadataFilters(
                filters=[ExactMatchFilter(key=k, value=v) for k, v in filters.items()]
            )
        return options

    def query(self, question: str, top_k: int | None = None, **options: Any) -> Answer:
        with self._lock.read():
            answer = self.app.query(question, top_k, **options)
            self._require_documents(answer.sources)
            return answer

    def stream(self, question: str, top_k: int | None = None, **options: Any) -> Stream:
        """Start an answer; the read lock is held until the stream is closed."""
        self._lock.acquire_read()
        try:
            answer, pieces = self.app.stream_query(question, top_k, **options)
            self._require_documents(answer.sources)
        except BaseException:
            self._lock.release_read()
            raise
        with self._count_lock:
            self.active_streams += 1
        return Stream(self, answer, pieces)

    def _stream_ended(self) -> None:
        with self._count_lock:
            self.active_streams -= 1
        self._lock.release_read()

    def retrieve(
        self, question: str, top_k: int | None = None, retriever: str | None = None
    ) -> list[Source]:
        with self._lock.read():
            sources = self.app.retrieve(question, top_k, retriever)  # type: ignore[arg-type]
            self._require_documents(sources)
            return sources

    def _require_documents(self, sources: Sequence[Source]) -> None:
        """No sources from an empty collection is a problem to report, not an answer."""
        if not sources and not self.app.backend.documents():
            raise EmptyCollectionError(
                f"The collection {self.settings.collection!r} has no documents: upload some "
                "(POST /v1/documents) or ingest them with `rag-app ingest PATH`."
            )

    def documents(self) -> list[DocRecord]:
        with self._lock.read():
            return self.app.documents()

    def delete(self, doc_id: str) -> bool:
        """Delete one document by id; False when the collection has no such document."""
        with self._lock.write():
            if doc_id not in self.app.backend.documents():
                return False
            self.app.delete([doc_id])
            return True

    def ingest(self, uploads: Sequence[Upload]) -> IngestReport:
        """Uploaded files through the ingestion path: unchanged ones cost nothing, changed ones
        replace their earlier version (same id), unreadable ones are reported per file."""
        documents: list[Document] = []
        problems: list[LoadProblem] = []
        with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
            for number, upload in enumerate(uploads):
                # The file is written under a name of our own: the client's name is only an id.
                path = Path(folder, f"{number}{Path(upload.name).suffix.lower()}")
                path.write_bytes(upload.data)
                try:
                    documents += [_renamed(d, upload.name) for d in load_file(path)]
                except LoadError as exc:
                    problems.append(LoadProblem(upload.name, str(exc)))
        with self._lock.write():
            return self.app.ingest_documents(documents, problems)

    def health(self) -> dict[str, Any]:
        """Whether the store answers, with its name, location, models and counts."""
        backend = self.app.backend
        with self._lock.read():
            documents = len(backend.documents())
            chunks = backend.count()
        return {
            "status": "ok",
            "store": backend.name,
            "location": str(backend.location),
            "collection": self.settings.collection,
            "embed_model": self.app.embedder.model_id,
            "answer_mode": self.app.answerer.mode,
            "retriever": self.settings.retriever,
            "documents": documents,
            "chunks": chunks,
        }

    def close(self) -> None:
        self.app.close()


def _renamed(document: Document, name: str) -> Document:
    """The loaded upload under its id, `uploads/<name>`."""
    doc_id = UPLOAD_PREFIX + name
    metadata = {**document.metadata, "source": doc_id, "title": Path(name).stem}
    return Document(id_=doc_id, text=document.text, metadata=metadata)
