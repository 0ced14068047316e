"""The local keyword index, kept in step with the store (a cache derived from it).

`KeywordSync` keeps it next to the collection's data under RAG_DATA_DIR and updates it from the
ingestion path (add, replace, delete). Saved with it is the version (content hash, chunk count) of
every document it holds. On open and on every commit that map is compared with the catalog, and
documents that differ (changed by another process, another machine, a dense-only app, a crashed
run) are re-read from the store; documents gone from the catalog are dropped. So the index
converges on the store.

That comparison reads what changed, not the whole catalog, where the store can select records
by when they were written (Chroma and Pinecone stamp every catalog record): the catalog's keys
are listed (ids only), and only the records of keys the index does not hold and of records
written since its last sync (less `STAMP_MARGIN_SECONDS` for clock skew and for stores that
show a write late) are read. The memory store's catalog is a local file and is read whole.
A new client (empty RAG_DATA_DIR) still reads every chunk's text once: the index is local.

Several writers share one index safely: a commit holds the index directory's `filelock` lock,
and if another writer saved the index since this one loaded it, loads that version and replays
its own changes onto it (merge, never overwrite). A reader takes in a newer saved index before
searching (one `stat` when there is none).

With Pinecone and PINECONE_SPARSE_INDEX, `rag_app.retrieval.pinecone_sparse.PineconeKeyword`
takes its place and BM25 runs in Pinecone; both are a `KeywordSearch`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag_app.errors import RagAppError
from rag_app.retrieval.keyword_index import KeywordIndex
from rag_app.settings import Settings
from rag_app.stores.base import MANIFEST_KEY, Backend, DocRecord, searched_text
from rag_app.util.files import file_signature, locked

INDEX_FILE = "keyword_index.npz"


LOCK_FILE = ".lock"


#: Catalog records written up to this long before the last sync are read again: a writer's
#: clock may lag the reader's, and a store may show a write a little after it was made.
STAMP_MARGIN_SECONDS = 600.0


#: Written by versions that stamped one catalog fingerprint; removed on the next save.
LEGACY_FINGERPRINT_FILE = "fingerprint.json"


def key_chunk_ids(key: str, start: int, stop: int) -> list[str]:
    """Chunk ids of the document with `key` (see `stores.base.chunk_ids`), positions start..stop."""
    return [f"{key}:{i}" for i in range(start, stop)]


class KeywordSearch(Protocol):
    """Keyword (BM25) search kept in sync by the ingestion path (a `ChangeListener`)."""

    def chunks_written(self, ids: Sequence[str], texts: Sequence[str]) -> None: ...

    def prepare_written(self, ids: Sequence[str], texts: Sequence[str]) -> Callable[[], None]: ...

    def chunks_deleted(self, ids: Sequence[str]) -> None: ...

    def commit(self) -> None: ...

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]: ...

    def drop(self) -> None: ...


def keyword_dir(settings: Settings, backend: Backend) -> Path:
    """Where the local keyword index of `backend`'s collection lives under RAG_DATA_DIR.

    A Chroma location is the client's (path or server), shared by its collections: the
    collection's name is part of the key, so two collections never share one index.
    """
    collection = getattr(backend, "namespace", "") or getattr(backend, "collection_name", "")
    where = f"{backend.location}|{collection}"
    digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]
    return settings.data_dir / "keyword" / f"{backend.name}-{digest}"


def open_keyword_search(backend: Backend, settings: Settings) -> KeywordSearch | None:
    """BM25 in Pinecone with PINECONE_SPARSE_INDEX, else the local index (none if dense)."""
    if settings.retriever == "dense":
        return None
    if settings.pinecone_sparse_index:
        # lazy: the Pinecone SDK takes 0.3-1 s to import; only this store uses it
        from rag_app.retrieval.pinecone_sparse import open_pinecone_keyword

        return open_pinecone_keyword(backend, settings)
    return KeywordSync(backend, keyword_dir(settings, backend))


@dataclass(frozen=True)
class CatalogView:
    """What a sync reads of the catalog: every document key, the records it needs to look at
    (the others are unchanged since the index took them in), and when the read started."""

    keys: set[str]
    records: dict[str, DocRecord]
    started: float


class KeywordSync:
    """A `KeywordIndex` for one collection, persisted beside it and kept in sync."""

    def __init__(self, backend: Backend, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self._lock = directory / LOCK_FILE
        self._written: set[str] = set()
        self._deleted: set[str] = set()
        self._seen: tuple[int, int, int] | None = None
        self._load()  # unlocked: a save replaces the file atomically
        view = self._catalog_view()
        if not view.keys and not self._path.exists():
            return  # an empty store needs no files: a run that fails writes none
        with locked(self._lock):
            if file_signature(self._path) != self._seen:
                self._load()  # another writer saved meanwhile
                view = self._catalog_view()
            if self._reconcile(view) or self._seen is None:
                self._save()

    @property
    def _path(self) -> Path:
        return self.directory / INDEX_FILE

    @property
    def _docs(self) -> dict[str, list]:
        """Document key -> [content hash, chunk count] of the version the index holds."""
        return self.index.extra["docs"]

    def _load(self) -> None:
        """The saved index, or an empty one if there is none usable."""
        self._seen = file_signature(self._path)
        try:
            index = KeywordIndex.load(self.directory)
        except (FileNotFoundError, RagAppError):
            index = None
        if index is None or not isinstance(index.extra, dict) or "docs" not in index.extra:
            index = KeywordIndex()
            index.extra = {"docs": {}}
        self.index = index

    def _save(self) -> None:
        self.index.save(self.directory)
        self._seen = file_signature(self._path)
        (self.directory / LEGACY_FINGERPRINT_FILE).unlink(missing_ok=True)

    def _catalog_view(self, read: Iterable[str] = ()) -> CatalogView:
        """The catalog as far as the index needs it: every key, and the records of keys the
        index does not hold, of `read`, and of records written since the last sync.

        Stores without write stamps (memory: a local file) are read whole.
        """
        started = time.time()
        synced = self.index.extra.get("synced")
        recent = (
            None
            if synced is None
            else self.backend.read_records_since(synced - STAMP_MARGIN_SECONDS)
        )
        if recent is None:
            records = self.backend.read_records()
            keys = set(records)
        else:
            keys = set(self.backend.record_keys())
            unknown = keys - set(self._docs) - set(recent) - {MANIFEST_KEY}
            records = {**self.backend.read_records_by_key(sorted(unknown | set(read))), **recent}
        records.pop(MANIFEST_KEY, None)
        keys.discard(MANIFEST_KEY)
        documents = {key: DocRecord(**record) for key, record in records.items()}
        return CatalogView(keys | set(records), documents, started)

    def _reconcile(self, view: CatalogView) -> bool:
        """Make the index hold each complete document's current chunks; True if it changed.

        Documents with an incomplete record are left alone: their ingest (or its re-run) is
        still to write them.
        """
        records = view.records
        docs = self._docs
        self.index.extra["synced"] = view.started
        gone = [key for key in docs if key not in view.keys]
        for key in gone:
            self.index.delete(key_chunk_ids(key, 0, docs.pop(key)[1]))
        changed = [
            r
            for key, r in records.items()
            if r.complete and docs.get(key) != [r.content_hash, r.n_chunks]
        ]
        if changed:
            wanted = [i for r in changed for i in r.chunk_ids()]
            nodes = self.backend.fetch_nodes(wanted)
            self.index.delete([i for i in wanted if i not in nodes])
            self.index.add(list(nodes), [searched_text(n) for n in nodes.values()])
            for r in changed:
                old = docs.get(r.key, ["", 0])[1]
                self.index.delete(key_chunk_ids(r.key, r.n_chunks, old))
                docs[r.key] = [r.content_hash, r.n_chunks]
        return bool(gone or changed)

    def chunks_written(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self.prepare_written(ids, texts)()

    def prepare_written(self, ids: Sequence[str], texts: Sequence[str]) -> Callable[[], None]:
        """Tokenise now (any thread: the ingest's look-ahead); index when the call runs."""
        tokens = self.index.tokenize_texts(texts)

        def apply() -> None:
            self.index.add_tokenized(ids, tokens)
            self._written.update(ids)
            self._deleted.difference_update(ids)

        return apply

    def chunks_deleted(self, ids: Sequence[str]) -> None:
        self.index.delete(ids)
        self._deleted.update(ids)
        self._written.difference_update(ids)

    def commit(self) -> None:
        """Persist after an ingest or delete, merged with other writers' saved changes."""
        with locked(self._lock):
            self._rebase()
            touched = {i.rsplit(":", 1)[0] for i in self._written | self._deleted}
            view = self._catalog_view(read=touched)
            for key in touched:
                record = view.records.get(key)
                if record is not None and record.complete:
                    self._docs[key] = [record.content_hash, record.n_chunks]
            self._reconcile(view)
            self._save()
            self._written.clear()
            self._deleted.clear()

    def _rebase(self) -> None:
        """If another writer saved since this process loaded, start from its index and replay
        this process's own changes onto it (call under the lock)."""
        if file_signature(self._path) == self._seen:
            return
        mine = self.index
        self._load()
        written = [i for i in self._written if i in mine]
        self.index.add_tokenized(written, mine.tokens(written))
        self.index.delete(self._deleted)

    def refresh(self) -> None:
        """Take in an index another writer saved (a no-op while this one has unsaved changes)."""
        if self._written or self._deleted or file_signature(self._path) == self._seen:
            return
        with locked(self._lock):
            self._load()

    def rebuild(self) -> None:
        """Re-read every document from the store (the consistency check's repair)."""
        with locked(self._lock):
            self.index = KeywordIndex()
            self.index.extra = {"docs": {}}
            self._reconcile(self._catalog_view())
            self._save()

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        self.refresh()
        return self.index.search(query, top_k)

    def drop(self) -> None:
        """Remove the saved index (the collection it mirrors is being dropped)."""
        shutil.rmtree(self.directory, ignore_errors=True)
