"""`migrate`: copy a collection (and its side collections) to another store, then verify it."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag_app.answers.cache import cache_collection
from rag_app.errors import ConfigError, RagAppError
from rag_app.images.search import IMAGES_SUFFIX, PROMPTS_SUFFIX, side_settings
from rag_app.migration.copy import Checkpoint, Part, Policy, copy_part, preflight
from rag_app.migration.targets import target_settings
from rag_app.migration.verify import Verification, verify_part
from rag_app.retrieval.keyword_sync import keyword_dir, open_keyword_search
from rag_app.settings import Settings
from rag_app.stores.base import MANIFEST_KEY, Backend
from rag_app.stores.registry import backend_class, open_backend

#: Chunks read from the source and written to the target per request.
DEFAULT_BATCH = 1000


@dataclass
class MigrationReport:
    source: str
    target: str
    chunks: int = 0
    documents: int = 0
    collections: list[str] = field(default_factory=list)
    resumed: bool = False
    seconds: float = 0.0
    #: Texts embedded by the migration: always 0 (vectors are copied), reported to show it.
    texts_embedded: int = 0
    verification: Verification | None = None

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def summary(self) -> list[str]:
        resumed = " (resumed)" if self.resumed else ""
        lines = [
            f"migrated {self.chunks} chunks of {self.documents} documents "
            f"({', '.join(self.collections)}) from {self.source} to {self.target}{resumed} in "
            f"{self.seconds:.1f} s ({self.chunks_per_second:.0f} chunks/s); "
            f"{self.texts_embedded} texts embedded"
        ]
        if self.verification is not None:
            lines += [f"verify: {line}" for line in self.verification.lines]
            lines += [f"verify FAILED: {p}" for p in self.verification.problems]
            if self.verification.ok:
                lines.append("verify: source and target agree")
        return lines


def migrate(
    settings: Settings,
    to: str,
    *,
    collection: str | None = None,
    to_collection: str | None = None,
    policy: Policy = "refuse",
    answers: bool = False,
    verify: bool = True,
    sample: int = 50,
    batch_size: int = DEFAULT_BATCH,
    show_progress: bool = False,
    **target: Any,
) -> MigrationReport:
    """Copy `collection` (default RAG_COLLECTION) of the configured store to store `to`.

    `target` holds target settings by field name (see `rag_app.migration.targets`); the
    collection's images, prompts and (with `answers`) answer cache go along. Nothing is embedded
    and the source is only read.
    """
    started = time.perf_counter()
    backend_class(to)  # an unknown store name is refused first
    source_settings = settings.model_copy(update={"collection": collection or settings.collection})
    if to_collection:
        target["collection"] = to_collection
    destination = target_settings(source_settings, to, **target)
    reason = backend_class(to).unavailable_reason(destination)
    if reason:
        raise RagAppError(f"the migration target is unavailable: {reason}")
    parts = _parts(source_settings, destination, answers)
    try:
        text = parts[0]
        if _where(text.source) == _where(text.target):
            raise ConfigError(
                f"the target is the source ({text.source.name} at {text.source.location}): give "
                "--to-collection or other target settings (e.g. --chroma-path, --pinecone-index)."
            )
        for part in parts:
            part.read_source()
        if MANIFEST_KEY not in text.records and not text.ids:
            raise RagAppError(
                f"the source collection {source_settings.collection!r} ({text.source.name} at "
                f"{text.source.location}) is empty: nothing to migrate (check RAG_COLLECTION)."
            )
        present = [p for p in parts if p.ids or p.records]
        checkpoint = Checkpoint(_checkpoint_path(settings, text), _description(text))
        for part in present:
            preflight(part, checkpoint, policy)
        report = MigrationReport(_named(text.source), _named(text.target))
        total = sum(len(p.ids) for p in present)
        with tqdm(total=total, unit="chunk", desc="migrate", disable=not show_progress) as bar:
            for part in present:
                report.resumed |= copy_part(part, checkpoint, policy, batch_size, bar)
        report.chunks = total
        report.documents = text.documents
        report.collections = [p.name for p in present]
        report.seconds = time.perf_counter() - started
        if verify:
            report.verification = Verification()
            for part in present:
                keyword = part.keyword() if part.keyword else None
                verify_part(part, sample, report.verification, keyword)
        checkpoint.remove()
        return report
    finally:
        for part in parts:
            part.source.close()
            part.target.close()


def _parts(source: Settings, target: Settings, answers: bool) -> list[Part]:
    """The text collection, its image and prompt collections and (optionally) answer cache."""
    text_source = open_backend(source, _unknown_dimension)
    model = text_source.manifest() or {}
    dimension = int(model.get("dimension", 0))
    text_target = open_backend(target, lambda: dimension)
    text = Part(
        "chunks",
        text_source,
        text_target,
        keyword=_once(lambda: open_keyword_search(text_target, target)),
        keyword_dir=None if target.pinecone_sparse_index else keyword_dir(target, text_target),
        source_keyword_dir=(
            None
            if source.pinecone_sparse_index or source.retriever == "dense"
            else keyword_dir(source, text_source)
        ),
    )
    parts = [text]
    for name, suffix in (("images", IMAGES_SUFFIX), ("prompts", PROMPTS_SUFFIX)):
        side_source = open_backend(side_settings(source, suffix), _unknown_dimension)
        side_dimension = int((side_source.manifest() or {}).get("dimension", 0))
        side_target = open_backend(side_settings(target, suffix), lambda d=side_dimension: d)
        parts.append(Part(name, side_source, side_target))
    if answers and model:
        name = cache_collection(text_source, source.collection, model["embed_model"])
        target_name = cache_collection(text_target, target.collection, model["embed_model"])
        parts.append(
            Part(
                "answers",
                open_backend(source, _unknown_dimension, name),
                open_backend(target, lambda: dimension, target_name),
            )
        )
    return parts


def _unknown_dimension() -> int:
    raise RagAppError("the source store has no such collection to read")


def _once(open_keyword: Any) -> Any:
    """The keyword search opened on first use and then shared."""
    opened: list[Any] = []

    def get() -> Any:
        if not opened:
            opened.append(open_keyword())
        return opened[0]

    return get


def _where(backend: Backend) -> str:
    return "|".join(
        (
            backend.name,
            backend.location,
            str(getattr(backend, "collection_name", "")),
            str(getattr(backend, "namespace", "")),
        )
    )


def _named(backend: Backend) -> str:
    return f"{backend.name} {backend.location}"


def _description(text: Part) -> str:
    return f"{_where(text.source)} -> {_where(text.target)}"


def _checkpoint_path(settings: Settings, text: Part) -> Path:
    """One file per (source, target) pair under the source's RAG_DATA_DIR."""
    digest = hashlib.sha256(_description(text).encode("utf-8")).hexdigest()[:12]
    return settings.data_dir / "migrate" / f"{text.source.name}-{text.target.name}-{digest}.json"
