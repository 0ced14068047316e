"""`--verify`: the target holds what the source holds and answers queries the same way.

Per collection: the chunk counts are equal, the catalogs are equal record by record (every
document's content hash and chunk count, the manifest), and a sample of queries drawn from the
chunks themselves (each sampled chunk's stored vector is the query: no text is embedded) gives
the same top-10 on both sides:
- both indexes exact (memory with RAG_MEMORY_INDEX=exact, the local Pinecone server): the same
  ids in the same order (positions whose scores tie within `SCORE_TOLERANCE` may swap), and the
  same scores within `SCORE_TOLERANCE`;
- either side approximate (HNSW: Chroma, memory with RAG_MEMORY_INDEX=hnsw, Pinecone's cloud):
  graph search is not deterministic across two builds, so the top-10 id sets must overlap by
  at least `HNSW_MIN_OVERLAP` on average, and ids found on both sides score the same within
  `SCORE_TOLERANCE`.
The text collection's `docs check` (catalog, store, keyword index) must come out clean too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag_app.ingestion.consistency import check
from rag_app.migration.copy import Part
from rag_app.retrieval.keyword_sync import KeywordSearch, KeywordSync
from rag_app.stores.base import Backend

TOP_K = 10
#: Float32 vectors, normalised in one store and not in another: scores differ in the 6th digit.
SCORE_TOLERANCE = 1e-4
HNSW_MIN_OVERLAP = 0.9


@dataclass
class Verification:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def exact_search(backend: Backend) -> bool:
    """Whether `backend` answers a query by exhaustive search (same top-k on every build)."""
    if backend.name == "memory":
        return getattr(backend.vector_store, "index", "exact") == "exact"
    if backend.name == "pinecone":
        return bool(backend.settings.pinecone_host)  # type: ignore[attr-defined]
    return False


def verify_part(
    part: Part, sample: int, result: Verification, keyword: KeywordSearch | None = None
) -> None:
    """Add `part`'s comparison to `result` (see the module doc); `keyword` is the target's."""
    source, target = part.source, part.target
    counts = source.count(), target.count()
    if counts[0] != counts[1]:
        result.problems.append(
            f"{part.name}: {counts[0]} chunks in the source, {counts[1]} in the target"
        )
    source_records, target_records = source.read_records(), target.read_records()
    differing = sorted(
        key
        for key in source_records.keys() | target_records.keys()
        if source_records.get(key) != target_records.get(key)
    )
    if differing:
        result.problems.append(
            f"{part.name}: {len(differing)} catalog record(s) differ, e.g. {differing[:3]}"
        )
    queried = _compare_queries(part, sample, result)
    result.lines.append(
        f"{part.name}: {counts[1]} chunks, {part.documents} documents, "
        f"{len(target_records)} catalog records; {queried}"
    )
    if part.name == "chunks":
        local = keyword if isinstance(keyword, KeywordSync) else None
        report = check(target, local)
        if not report.consistent:
            result.problems.extend(f"docs check on the target: {line}" for line in report.lines())


def _compare_queries(part: Part, sample: int, result: Verification) -> str:
    ids = part.ids
    if not ids or sample <= 0:
        return "no queries compared"
    n = min(sample, len(ids))
    picked = sorted({ids[i * len(ids) // n] for i in range(n)})
    queries = part.source.fetch_embedded(picked)
    exact = exact_search(part.source) and exact_search(part.target)
    overlaps: list[float] = []
    mismatched: list[str] = []
    for node_id, node in queries.items():
        vector = node.get_embedding()
        mine = [(h.node.node_id, float(h.score or 0.0)) for h in part.source.query(vector, TOP_K)]
        theirs = [(h.node.node_id, float(h.score or 0.0)) for h in part.target.query(vector, TOP_K)]
        same = _same_exact(mine, theirs) if exact else _same_approximate(mine, theirs, overlaps)
        if not same:
            mismatched.append(node_id)
    if exact:
        if mismatched:
            result.problems.append(
                f"{part.name}: {len(mismatched)} of {len(queries)} sampled queries gave another "
                f"top-{TOP_K} on the target, e.g. from chunk {mismatched[0]}"
            )
        return f"{len(queries)} sampled queries, same top-{TOP_K} ids and scores (exact indexes)"
    overlap = sum(overlaps) / len(overlaps) if overlaps else 1.0
    if overlap < HNSW_MIN_OVERLAP or mismatched:
        result.problems.append(
            f"{part.name}: sampled queries' top-{TOP_K} overlap {overlap:.2f} "
            f"(at least {HNSW_MIN_OVERLAP} expected on HNSW), {len(mismatched)} with other scores"
        )
    return (
        f"{len(queries)} sampled queries, top-{TOP_K} overlap {overlap:.2f} with equal scores "
        "for shared ids (HNSW on a side: ids as sets)"
    )


def _same_exact(mine: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> bool:
    if len(mine) != len(theirs):
        return False
    for (a, score_a), (b, score_b) in zip(mine, theirs, strict=True):
        if abs(score_a - score_b) > SCORE_TOLERANCE:
            return False
        if a != b and not _ties(mine, score_a):
            return False
    return {i for i, _ in mine} == {i for i, _ in theirs} or _ties(mine, mine[-1][1])


def _ties(hits: list[tuple[str, float]], score: float) -> bool:
    """Whether another hit scores `score` within tolerance (its order against it is arbitrary)."""
    return sum(abs(s - score) <= SCORE_TOLERANCE for _, s in hits) > 1


def _same_approximate(
    mine: list[tuple[str, float]], theirs: list[tuple[str, float]], overlaps: list[float]
) -> bool:
    scores = dict(theirs)
    shared = [(i, s) for i, s in mine if i in scores]
    overlaps.append(len(shared) / len(mine) if mine else 1.0)
    return all(abs(s - scores[i]) <= SCORE_TOLERANCE for i, s in shared)
