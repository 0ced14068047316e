"""`rag-app docs check [--repair]` / `RagApp.check()`: catalog, store and keyword index agree.

Writers of this version keep the three consistent, but an older version (two writers on the
memory store overwrote each other's chunks; the keyword index was stamped over missing chunks),
a store edited behind the app's back, or a crash can leave differences. Each kind is reported
and, with `repair=True`, fixed:

- a complete document whose chunks are (partly) missing from the store is marked incomplete:
  its text exists only in its source, so the next ingest of that source re-embeds it in full
  (an incomplete document always counts as changed); its remaining chunks stay searchable, and
  `docs list` shows it as incomplete until then;
- chunks no catalog record claims (orphans) are deleted: nothing lists, replaces or deletes them;
- incomplete records (an ingest interrupted or still running) are reported; only re-running that
  ingest (or `docs delete`) resolves them, so they are never counted as repaired;
- a keyword index missing stored chunks or holding chunks the store lacks is rebuilt.

The store is listed before the catalog is read: an ingest writes a document's record before its
chunks, so a chunk written meanwhile is never mistaken for an orphan. Run the check while no
ingest runs all the same: a running ingest's documents show as incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from rag_app.retrieval.keyword_sync import KeywordSync
from rag_app.stores.base import Backend, DocRecord

Kind = Literal["missing_chunks", "orphan_chunks", "incomplete", "keyword_missing", "keyword_extra"]
#: Ids shown per difference; the report object holds all of them.
SHOWN_IDS = 5


@dataclass
class Difference:
    kind: Kind
    #: What is wrong, one line.
    detail: str
    #: The chunk ids (or, for incomplete records, document ids) concerned.
    ids: list[str]
    #: What the repair did, one line; None when it was not repaired.
    repair: str | None = None


@dataclass
class CheckReport:
    documents: int
    chunks: int
    #: Chunks in the keyword index; None when the retriever does not use one.
    keyword_chunks: int | None
    differences: list[Difference] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.differences

    @property
    def unrepaired(self) -> list[Difference]:
        return [d for d in self.differences if d.repair is None]

    def lines(self) -> list[str]:
        keyword = "not used" if self.keyword_chunks is None else f"{self.keyword_chunks} chunks"
        lines = [
            f"catalog: {self.documents} documents; store: {self.chunks} chunks; "
            f"keyword index: {keyword}"
        ]
        for d in self.differences:
            shown = ", ".join(d.ids[:SHOWN_IDS]) + (" ..." if len(d.ids) > SHOWN_IDS else "")
            lines.append(f"{d.kind}: {d.detail} [{shown}]")
            if d.repair:
                lines.append(f"  repaired: {d.repair}")
        if self.consistent:
            lines.append("consistent")
        elif self.unrepaired:
            lines.append(
                f"{len(self.unrepaired)} difference(s) not repaired"
                + ("" if any(d.repair for d in self.differences) else "; see --repair")
            )
        else:
            lines.append(f"{len(self.differences)} difference(s) repaired")
        return lines


def check(backend: Backend, keyword: KeywordSync | None, repair: bool = False) -> CheckReport:
    """Compare catalog, store and keyword index; with `repair`, fix what can be fixed here."""
    stored = set(backend.list_chunk_ids())
    catalog = backend.documents()
    report = CheckReport(len(catalog), len(stored), None)
    claimed: set[str] = set()
    complete_ids: set[str] = set()
    for record in sorted(catalog.values(), key=lambda r: r.doc_id):
        ids = record.chunk_ids()
        claimed.update(ids)
        if not record.complete:
            report.differences.append(
                Difference(
                    "incomplete",
                    f"{record.doc_id}: an ingest was interrupted or is running; re-run the "
                    f"ingest of {record.source or 'its source'}, or `docs delete` it",
                    [record.doc_id],
                )
            )
            continue
        complete_ids.update(ids)
        missing = [i for i in ids if i not in stored]
        if missing:
            report.differences.append(_missing_chunks(backend, record, missing, repair))
    orphans = sorted(stored - claimed)
    if orphans:
        orphan = Difference(
            "orphan_chunks", f"{len(orphans)} chunk(s) no catalog record claims", orphans
        )
        if repair:
            backend.delete_chunks(orphans)
            backend.flush()
            orphan.repair = f"deleted {len(orphans)} orphan chunk(s) from the store"
        report.differences.append(orphan)
    if keyword is not None:
        _check_keyword(report, keyword, stored & complete_ids, stored & claimed, repair)
    return report


def _missing_chunks(
    backend: Backend, record: DocRecord, missing: list[str], repair: bool
) -> Difference:
    found = Difference(
        "missing_chunks",
        f"{record.doc_id}: {len(missing)} of {record.n_chunks} chunks missing from the store",
        missing,
    )
    if repair:
        backend.put_documents([replace(record, complete=False)])
        found.repair = (
            f"marked {record.doc_id} incomplete: the missing text exists only in its source, "
            f"so the next ingest of {record.source or 'it'} re-embeds it in full; its other "
            f"{record.n_chunks - len(missing)} chunk(s) stay in the store until then"
        )
    return found


def _check_keyword(
    report: CheckReport,
    keyword: KeywordSync,
    expected: set[str],
    allowed: set[str],
    repair: bool,
) -> None:
    """Every stored chunk of a complete document is indexed; nothing absent from the store is."""
    keyword.refresh()
    indexed = set(keyword.index.ids())
    report.keyword_chunks = len(indexed)
    found = []
    missing = sorted(expected - indexed)
    if missing:
        detail = f"{len(missing)} stored chunk(s) missing from the keyword index"
        found.append(Difference("keyword_missing", detail, missing))
    extra = sorted(indexed - allowed)
    if extra:
        detail = f"{len(extra)} keyword index chunk(s) not in the store or not in the catalog"
        found.append(Difference("keyword_extra", detail, extra))
    if found and repair:
        keyword.rebuild()
        for d in found:
            d.repair = f"rebuilt the keyword index from the store ({len(keyword.index)} chunks)"
    report.differences.extend(found)
