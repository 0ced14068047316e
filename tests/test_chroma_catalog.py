"""The Chroma catalog keeps each record's JSON in a metadata field (cheaper for the server than a
full-text-indexed document); catalogs written before, with the JSON in the document, still read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

from rag_app.settings import Settings
from rag_app.stores.base import WRITTEN_FIELD, DocRecord
from rag_app.stores.chroma import ChromaBackend
from rag_app.stores.registry import open_backend


def old_style_write(backend: ChromaBackend, record: DocRecord) -> None:
    """A record as the catalog stored it before: the JSON as the entry's document."""
    backend.catalog.upsert(
        ids=[record.key],
        documents=[json.dumps(asdict(record))],
        embeddings=[[1.0]],
        metadatas=[{WRITTEN_FIELD: time.time()}],
    )


def test_records_written_as_documents_are_read_beside_new_ones_and_replaced_by_them(
    make_settings: Callable[..., Settings],
) -> None:
    backend = open_backend(make_settings(vector_store="chroma"), lambda: 8)
    assert isinstance(backend, ChromaBackend)
    old = DocRecord("notes/old.txt", "hash-old", 3, "notes/old.txt", complete=False)
    replaced = DocRecord("notes/replaced.txt", "hash-1", 2, "notes/replaced.txt")
    old_style_write(backend, old)
    old_style_write(backend, replaced)
    started = time.time()
    new = DocRecord("notes/new.txt", "hash-new", 5, "notes/new.txt")
    replacement = DocRecord("notes/replaced.txt", "hash-2", 4, "notes/replaced.txt")
    backend.put_documents([new, replacement])

    assert backend.documents() == {
        "notes/old.txt": old,
        "notes/new.txt": new,
        "notes/replaced.txt": replacement,
    }
    by_key = backend.read_records_by_key([old.key, replacement.key])
    assert by_key == {old.key: asdict(old), replacement.key: asdict(replacement)}
    since = backend.read_records_since(started)
    assert since == {new.key: asdict(new), replacement.key: asdict(replacement)}
    stored = backend.catalog.get(ids=[new.key], include=["documents", "metadatas"])
    assert stored["documents"] == [None]
