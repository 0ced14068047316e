"""In-memory indexes and namespaces, with numpy doing the scoring.

Each namespace keeps its dense vectors in one float32 matrix (rows grow by doubling) next to
their norms and parallel lists of ids, metadata and sparse values, so a query is one
matrix-vector product plus ``argpartition``: 100k-vector queries take milliseconds. Sparse
queries go through an inverted index (:mod:`postings`), kept up to date by every write: from
the start in a sparse index (built in bulk when a snapshot loads), from the first sparse query
in a dense one (whose sparse values are optional and rarely queried). Deletes move the last
row into the hole.

Scores follow Pinecone: ``cosine`` is cosine similarity and ``dotproduct`` the dot product (both
higher is better; sparse query values add a sparse dot product on ``dotproduct`` indexes), and
``euclidean`` is the squared L2 distance, ranked ascending (lower is better). A sparse index
(``vector_type="sparse"``) has dimension 0: its matrix has no columns, its score is the sparse
dot product alone, and records sharing no index with the query are not matches.
"""

from __future__ import annotations

import base64
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinecone_local.errors import PineconeApiError, invalid
from pinecone_local.filters import Predicate
from pinecone_local.postings import SparsePostings
from pinecone_local.records import Record

METRICS = ("cosine", "euclidean", "dotproduct")
VECTOR_TYPES = ("dense", "sparse")


@dataclass
class Match:
    """One query result row."""

    id: str
    score: float
    row: int


class Namespace:
    """The records of one namespace of one index."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((16, dimension), dtype=np.float32)
        self.norms = np.zeros(16, dtype=np.float32)
        self.metadata: list[dict[str, Any] | None] = []
        self.sparse: list[dict[str, list] | None] = []
        self.schema: dict[str, Any] | None = None
        self._postings = SparsePostings() if dimension == 0 else None
        self._sorted_ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def upsert(self, record: Record) -> None:
        """Insert *record*, or overwrite the record with the same id."""
        row = self.rows.get(record.id)
        if row is None:
            row = len(self.ids)
            self._ensure_capacity(row + 1)
            self.ids.append(record.id)
            self.metadata.append(None)
            self.sparse.append(None)
            self.rows[record.id] = row
            self._sorted_ids = None
        self.set_values(row, record.values)
        self.set_sparse(row, record.sparse)
        self.metadata[row] = record.metadata

    def set_values(self, row: int, values: np.ndarray) -> None:
        """Store the dense values of *row* (and the norm cosine scores divide by)."""
        self.matrix[row] = values
        self.norms[row] = np.linalg.norm(self.matrix[row])

    def set_sparse(self, row: int, sparse: dict[str, list] | None) -> None:
        """Store the sparse values of *row*, in the inverted index too once there is one."""
        self.sparse[row] = sparse
        if self._postings is not None:
            self._postings.put(row, sparse)

    def delete(self, record_id: str) -> bool:
        """Remove one record; answer whether it existed."""
        row = self.rows.pop(record_id, None)
        if row is None:
            return False
        self._sorted_ids = None
        last = len(self.ids) - 1
        if self._postings is not None:
            self._postings.remove(row)
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.rows[moved] = row
            self.matrix[row] = self.matrix[last]
            self.norms[row] = self.norms[last]
            self.metadata[row] = self.metadata[last]
            self.sparse[row] = self.sparse[last]
        self.ids.pop()
        self.metadata.pop()
        self.sparse.pop()
        return True

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """The ids starting with *prefix*, in bitwise order (sorted once per change of ids)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.ids)
        ids = self._sorted_ids
        start = bisect_left(ids, prefix)
        end = bisect_left(ids, True, lo=start, key=lambda i: not i.startswith(prefix))
        return ids[start:end]

    def matching_ids(self, predicate: Predicate) -> list[str]:
        """Ids of the records whose metadata satisfies *predicate*."""
        pairs = zip(self.ids, self.metadata, strict=True)
        return [record_id for record_id, meta in pairs if predicate(meta or {})]

    def vector(self, row: int) -> dict[str, Any]:
        """The stored record at *row* in the data plane's ``Vector`` shape."""
        values = self.matrix[row].tolist() if self.dimension else []
        body: dict[str, Any] = {"id": self.ids[row], "values": values}
        if self.sparse[row] is not None:
            body["sparseValues"] = self.sparse[row]
        if self.metadata[row] is not None:
            body["metadata"] = self.metadata[row]
        return body

    def search(
        self,
        metric: str,
        query: np.ndarray,
        sparse_query: dict[str, list] | None,
        top_k: int,
        predicate: Predicate | None,
    ) -> list[Match]:
        """The *top_k* best records for *query*, best first, among those passing *predicate*."""
        count = len(self.ids)
        if count == 0:
            return []
        scores = _dense_scores(metric, self.matrix[:count], self.norms[:count], query)
        if sparse_query is not None:
            scores = scores + self._sparse_scores(sparse_query)
        candidates = np.arange(count) if self.dimension else np.flatnonzero(scores)
        if predicate is not None:
            keep = [row for row in candidates if predicate(self.metadata[row] or {})]
            candidates = np.asarray(keep, dtype=np.int64)
        if candidates.size == 0:
            return []
        ranking = scores[candidates] if metric == "euclidean" else -scores[candidates]
        k = min(top_k, candidates.size)
        best = np.argpartition(ranking, k - 1)[:k] if k < candidates.size else np.arange(k)
        best = best[np.argsort(ranking[best], kind="stable")]
        return [Match(self.ids[r], float(scores[r]), int(r)) for r in candidates[best]]

    def _sparse_scores(self, sparse_query: dict[str, list]) -> np.ndarray:
        if self._postings is None or self._postings.stale:
            self._postings = SparsePostings.build(self.sparse)
        return self._postings.scores(sparse_query["indices"], sparse_query["values"], len(self))

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.matrix.shape[0]:
            return
        grown = np.zeros((max(needed, 2 * self.matrix.shape[0]), self.dimension), np.float32)
        grown[: len(self.ids)] = self.matrix[: len(self.ids)]
        self.matrix = grown
        self.norms = np.resize(self.norms, grown.shape[0])

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of this namespace (vectors as base64 float32 bytes)."""
        values = np.ascontiguousarray(self.matrix[: len(self.ids)]).tobytes()
        return {
            "ids": list(self.ids),
            "values": base64.b64encode(values).decode("ascii"),
            "metadata": list(self.metadata),
            "sparse": list(self.sparse),
            "schema": self.schema,
        }

    @classmethod
    def from_snapshot(cls, dimension: int, data: dict[str, Any]) -> Namespace:
        """Rebuild a namespace saved by :meth:`to_snapshot`."""
        namespace = cls(dimension)
        raw = np.frombuffer(base64.b64decode(data["values"]), dtype=np.float32)
        matrix = raw.reshape(len(data["ids"]), dimension)
        namespace._postings = None  # built once below, not record by record
        for row, record_id in enumerate(data["ids"]):
            namespace.upsert(
                Record(record_id, matrix[row], data["sparse"][row], data["metadata"][row])
            )
        namespace.schema = data.get("schema")
        if dimension == 0:
            namespace._postings = SparsePostings.build(namespace.sparse)
        return namespace


def _dense_scores(
    metric: str, matrix: np.ndarray, row_norms: np.ndarray, query: np.ndarray
) -> np.ndarray:
    if metric == "dotproduct":
        return matrix @ query
    if metric == "euclidean":
        diff = matrix - query
        return np.einsum("ij,ij->i", diff, diff)
    norms = row_norms * np.linalg.norm(query)
    dots = matrix @ query
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


@dataclass
class IndexState:
    """One index: its control-plane description and its namespaces."""

    name: str
    dimension: int
    metric: str
    cloud: str
    region: str
    deletion_protection: str = "disabled"
    tags: dict[str, str] | None = None
    port: int = 0
    vector_type: str = "dense"
    namespaces: dict[str, Namespace] = field(default_factory=dict)

    @property
    def sparse(self) -> bool:
        """Whether this is a sparse index (sparse values only, no dimension)."""
        return self.vector_type == "sparse"

    def namespace(self, name: str) -> Namespace | None:
        """The namespace called *name*, or None when it holds no records."""
        return self.namespaces.get(name)

    def writable_namespace(self, name: str) -> Namespace:
        """The namespace called *name*, created on first write."""
        if name not in self.namespaces:
            self.namespaces[name] = Namespace(self.dimension)
        return self.namespaces[name]

    def drop_if_empty(self, name: str) -> None:
        """Forget a namespace that no longer holds records, as Pinecone's stats do."""
        namespace = self.namespaces.get(name)
        if namespace is not None and len(namespace) == 0:
            del self.namespaces[name]

    def stats(self) -> dict[str, Any]:
        """The ``describe_index_stats`` body."""
        counts = {name: len(ns) for name, ns in self.namespaces.items()}
        stats: dict[str, Any] = {
            "namespaces": {name: {"vectorCount": count} for name, count in counts.items()},
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": self.metric,
            "vectorType": self.vector_type,
        }
        if not self.sparse:
            stats["dimension"] = self.dimension
        return stats

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of this index."""
        return {
            "name": self.name,
            "dimension": self.dimension,
            "metric": self.metric,
            "cloud": self.cloud,
            "region": self.region,
            "deletion_protection": self.deletion_protection,
            "tags": self.tags,
            "port": self.port,
            "vector_type": self.vector_type,
            "namespaces": {n: ns.to_snapshot() for n, ns in self.namespaces.items()},
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> IndexState:
        """Rebuild an index saved by :meth:`to_snapshot`."""
        index = cls(
            name=data["name"],
            dimension=int(data["dimension"]),
            metric=data["metric"],
            cloud=data["cloud"],
            region=data["region"],
            deletion_protection=data.get("deletion_protection", "disabled"),
            tags=data.get("tags"),
            port=int(data.get("port", 0)),
            vector_type=data.get("vector_type", "dense"),
        )
        for name, ns in data["namespaces"].items():
            index.namespaces[name] = Namespace.from_snapshot(index.dimension, ns)
        return index


def not_found(name: str) -> PineconeApiError:
    """The error for an index that does not (or no longer) exists."""
    return PineconeApiError(404, "NOT_FOUND", f"Index {name} not found.")


def check_metric(metric: Any) -> str:
    """Validate a metric name."""
    if metric not in METRICS:
        raise invalid(f"Metric must be one of {', '.join(METRICS)}; got {metric!r}.")
    return str(metric)
