"""Copying one collection between two backends: stored vectors, texts, metadata, ids, catalog.

The copy follows the ingestion path's write order, so a target caught mid-way looks like an
interrupted ingest (which `docs check` and the keyword index understand) and never like a
finished collection: the manifest (the embedding model) first, then every document's record
marked incomplete, then the chunks in batches (sorted ids, read with their vectors through
`Backend.read_embedded` ahead of the writer by `rag_app.migration.reader`, written with
`Backend.write_embedded`, an upsert that overwrites an id that exists; the vectors travel as
one float32 matrix per batch, never as lists of Python floats, and a batch read from Chroma
reaches the memory store as plain chunks parsed from its flat metadata, without LlamaIndex
nodes: `FlatEmbeddedBatch`), then the catalog as the source has it, and last the keyword index
(from the copied texts, or the source's own local index when it holds exactly the copied
catalog's documents).

A checkpoint file under RAG_DATA_DIR/migrate/ records per collection how many of the sorted
ids are durable in the target (after `flush`). A killed run (Ctrl-C, kill -9) is resumed by
the same command: it re-writes at most the batches after the last checkpoint, which land on the
same ids (no duplicate), and ends with the same catalog (nothing missing). The id list's digest
is kept too: a source changed between the runs restarts that collection's copy from the start.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from rag_app.errors import EmbeddingMismatchError, RagAppError
from rag_app.migration.reader import read_batches
from rag_app.retrieval.keyword_index import KeywordIndex
from rag_app.retrieval.keyword_sync import LOCK_FILE, KeywordSearch, KeywordSync
from rag_app.stores.base import MANIFEST_KEY, Backend, searched_text
from rag_app.util.collector import collector_paused
from rag_app.util.files import locked, write_atomically

Policy = Literal["refuse", "resume", "replace"]
#: A memory target persists its whole matrix on `flush`: checkpoint it at most this often,
CHECKPOINT_SECONDS = 10.0
#: and at most once per this many times the last flush took (flushes grow with the copy).
CHECKPOINT_FLUSH_FACTOR = 10.0


@dataclass
class Part:
    """One collection of a migration: the text chunks, images, prompts or the answer cache."""

    name: str
    source: Backend
    target: Backend
    #: The target's keyword search, opened after the target is prepared (text chunks only).
    keyword: Callable[[], KeywordSearch | None] | None = None
    #: Where a local keyword index of the target lives (removed by `--replace`).
    keyword_dir: Path | None = None
    #: Where the source's local keyword index lives, if it has one (see `copy_part`).
    source_keyword_dir: Path | None = None
    ids: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def read_source(self) -> None:
        self.ids = sorted(self.source.list_chunk_ids())
        self.records = self.source.read_records()

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.ids).encode("utf-8")).hexdigest()[:16]

    @property
    def documents(self) -> int:
        return sum(1 for k, v in self.records.items() if k != MANIFEST_KEY and "doc_id" in v)


class Checkpoint:
    """How far each collection of one migration got, in a small JSON file (atomic writes)."""

    def __init__(self, path: Path, description: str) -> None:
        self.path = path
        self.existed = path.exists()
        self.data: dict[str, Any] = (
            json.loads(path.read_text(encoding="utf-8"))
            if self.existed
            else {"migration": description, "parts": {}}
        )

    def state(self, part: str) -> dict[str, Any] | None:
        return self.data["parts"].get(part)

    def save(self, part: str, **state: Any) -> None:
        self.data["parts"][part] = state
        write_atomically(self.path, json.dumps(self.data, ensure_ascii=False))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def preflight(part: Part, checkpoint: Checkpoint, policy: Policy) -> None:
    """Refuse, before anything is written, a target that holds data or another model's vectors.

    A collection the checkpoint already started is this migration's own: it is resumed.
    """
    if checkpoint.state(part.name) is not None:
        return
    source_model = part.records.get(MANIFEST_KEY)
    if source_model is not None:
        part.target.check_dimension(int(source_model["dimension"]))
    target_model = part.target.manifest()
    if (
        policy != "replace"
        and source_model is not None
        and target_model is not None
        and target_model["embed_model"] != source_model["embed_model"]
    ):
        raise EmbeddingMismatchError(
            f"the target {part.name} collection ({part.target.name} at {part.target.location}) "
            f"was built with embedding model {target_model['embed_model']!r}, the source with "
            f"{source_model['embed_model']!r}: their vectors cannot be mixed. Give another "
            "--to-collection, or --replace to overwrite the target."
        )
    if policy == "refuse" and (part.target.count() or part.target.record_keys()):
        raise RagAppError(
            f"the target already holds a {part.name} collection ({part.target.name} at "
            f"{part.target.location}): give --resume to copy over it (same ids are "
            "overwritten, others kept), --replace to drop it first, or another --to-collection."
        )


def copy_part(
    part: Part, checkpoint: Checkpoint, policy: Policy, batch_size: int, bar: tqdm
) -> bool:
    """Copy `part` (after `preflight`); True when it resumed an interrupted copy."""
    state = checkpoint.state(part.name)
    if state is not None and state.get("finished"):
        bar.update(len(part.ids))
        return True
    resumed = state is not None and state.get("prepared", False)
    done = int(state["done"]) if resumed and state.get("ids") == part.digest else 0
    if not resumed:
        # Saved first: a run killed while preparing is this migration's own on the re-run
        # (which prepares again: dropping and writing the manifest are idempotent).
        checkpoint.save(part.name, done=0, ids=part.digest, prepared=False)
        _prepare_target(part, policy)
        checkpoint.save(part.name, done=0, ids=part.digest, prepared=True)
    reused = _source_keyword_index(part)
    keyword = part.keyword() if part.keyword and reused is None else None
    bar.update(done)
    with collector_paused():  # see rag_app.util.collector
        saved, flush_seconds = time.monotonic(), 0.0
        for group, found in read_batches(part.source, part.ids[done:], batch_size):
            part.target.write_embedded(found)
            if keyword is not None and not (resumed and isinstance(keyword, KeywordSync)):
                nodes = found.nodes
                texts = [searched_text(n) for n in nodes]
                keyword.chunks_written([n.node_id for n in nodes], texts)
            done += len(group)
            bar.update(len(group))
            since = time.monotonic() - saved
            if part.target.writes_through or since >= max(
                CHECKPOINT_SECONDS, CHECKPOINT_FLUSH_FACTOR * flush_seconds
            ):
                began = time.monotonic()
                part.target.flush()
                checkpoint.save(part.name, done=done, ids=part.digest, prepared=True)
                saved = time.monotonic()
                flush_seconds = saved - began
        part.target.flush()
        if part.records:
            part.target.write_records(part.records)
        if reused is not None and part.keyword_dir is not None:
            with locked(part.keyword_dir / LOCK_FILE):
                reused.save(part.keyword_dir)
        elif keyword is not None:
            if resumed and isinstance(keyword, KeywordSync):
                keyword.rebuild()  # the chunks of the killed run's batches were never indexed
            else:
                keyword.commit()
    checkpoint.save(part.name, done=done, ids=part.digest, prepared=True, finished=True)
    return resumed


def _source_keyword_index(part: Part) -> KeywordIndex | None:
    """The source's local keyword index when it holds exactly the catalog's documents.

    Copied into the target's place, it saves tokenizing every chunk again (a fifth of a
    Chroma -> memory copy): it is what building it from the copied chunks would give, since
    the target's chunks and catalog are the source's. The target's `KeywordSync` still checks it
    against the target's catalog when it opens (without the source's sync stamp, so it reads
    the whole catalog once), as it does any saved index.
    """
    if part.source_keyword_dir is None or part.keyword_dir is None:
        return None
    try:
        index = KeywordIndex.load(part.source_keyword_dir)
    except (FileNotFoundError, RagAppError):
        return None
    versions = {
        key: [record["content_hash"], record["n_chunks"]]
        for key, record in part.records.items()
        if key != MANIFEST_KEY and record.get("complete")
    }
    extra = index.extra if isinstance(index.extra, dict) else {}
    if extra.get("docs") != versions:
        return None
    index.extra = {"docs": versions}
    return index


def _prepare_target(part: Part, policy: Policy) -> None:
    """Drop the target with `replace`; then write the manifest and incomplete records."""
    if policy == "replace":
        part.target.drop()
        if part.keyword_dir is not None:
            shutil.rmtree(part.keyword_dir, ignore_errors=True)
        elif part.keyword is not None and (keyword := part.keyword()) is not None:
            keyword.drop()
    manifest = part.records.get(MANIFEST_KEY)
    if manifest is not None:
        part.target.write_records({MANIFEST_KEY: manifest})
    pending = {
        key: {**record, "complete": False}
        for key, record in part.records.items()
        if key != MANIFEST_KEY and "complete" in record
    }
    if pending:
        part.target.write_records(pending)
