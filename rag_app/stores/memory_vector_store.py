"""In-process vector store for the "memory" backend, sized for a million chunks.

Why hand-written: LlamaIndex's ``SimpleVectorStore`` keeps embeddings as a dict of Python
lists (one top-10 query over 100k x 384 takes ~2 s) and persists them as JSON (20k chunks
-> 161 MB), and it does not store text. faiss alone is fast but has no node ids, no text and
no metadata filters. This store keeps:

* the vectors in one contiguous float32 matrix, rows L2-normalised at insert, grown by
  amortised doubling (``ndarray.resize``, which reallocates in place where the allocator can),
  so exact cosine search is one matrix-vector product plus ``np.argpartition``;
* ids, texts, metadata dicts and start/end offsets in parallel lists/arrays, with the
  ``ref_doc_id`` and the excluded-metadata-key lists interned as small integer codes;
* optionally a faiss ``IndexHNSWFlat`` (inner product over the normalised rows).

Deletes swap-remove rows (the last rows move into the holes). HNSW cannot remove vectors, so
deleted or overwritten rows become tombstoned HNSW labels that a faiss ``IDSelectorBitmap``
hides at search time; the graph is rebuilt lazily on the next query once more than
``HNSW_REBUILD_DEAD_FRACTION`` of its labels are dead.

Filter rule in HNSW mode: metadata filters and ``doc_ids``/``node_ids`` restrictions are
evaluated exactly to a row mask first. If the mask keeps fewer than
``HNSW_MIN_FILTER_FRACTION`` of the rows, the query runs as an exact search over the masked
rows (cheap, and graph search recall collapses on selective filters); otherwise HNSW searches
with the mask as its selector, and falls back to exact search if it returns fewer than top-k
hits.

Persistence (``persist(dir)`` / ``MemoryVectorStore.from_persist_dir(dir)``): a directory
holding ``vectors-<gen>.npy``, ``records-<gen>.json`` (ids, texts, metadata, offsets, codes),
optionally ``hnsw-<gen>.faiss`` + ``hnsw_labels-<gen>.npy``, and ``manifest.json`` naming the
current generation and a random stamp. New generation files are written under temporary names,
fsynced and renamed, then the manifest is replaced atomically; a crash at any point leaves the
previous generation loadable. Old generations are removed after the switch.

Many writers (processes, or several stores in one process) share one directory safely: every
load and persist holds the directory's ``filelock`` lock, and the store remembers which
generation (stamp) its rows are based on plus the ids it added or deleted since. If another
writer persisted meanwhile, ``persist`` first loads that generation and replays its own changes
onto it (merge on write), so no writer overwrites another's chunks. ``refresh(dir)`` does the
same merge for a reader; it costs one ``stat`` of the manifest when nothing changed.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import (
    BaseNode,
    MetadataMode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from rag_app.errors import EmbeddingMismatchError
from rag_app.files import file_signature, locked

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
INITIAL_CAPACITY = 1024
HNSW_MIN_FILTER_FRACTION = 0.2
HNSW_REBUILD_DEAD_FRACTION = 0.25
GATHER_FRACTION = 0.25

Style = tuple[tuple[str, ...], tuple[str, ...]]


class DimensionMismatchError(EmbeddingMismatchError, ValueError):
    """An embedding's length differs from the dimension fixed by the store's first add."""


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def _resized(array: np.ndarray, rows: int, fill: int | float = 0) -> np.ndarray:
    """Grow ``array`` to ``rows`` rows, in place when it owns its buffer (no 2x peak)."""
    old = array.shape[0]
    if array.flags.owndata and array.flags.c_contiguous:
        array.resize((rows, *array.shape[1:]), refcheck=False)
    else:
        grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
        grown[:old] = array
        array = grown
    array[old:] = fill
    return array


def _offset(value: int | None) -> int:
    return -1 if value is None else value


def _is_local_fs(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", ())
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, write: Callable[[Any], None]) -> None:
    """Write via ``write(fileobj)`` to a temp name in the same folder, fsync, rename."""
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Metadata filters -> boolean row masks
# ---------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(values: list[Any]) -> np.ndarray:
    return np.fromiter(
        (v if _is_number(v) else np.nan for v in values), dtype=np.float64, count=len(values)
    )


def _compare(operator: FilterOperator, stored: Any, wanted: Any) -> bool:
    try:
        if operator == FilterOperator.GT:
            return stored > wanted
        if operator == FilterOperator.GTE:
            return stored >= wanted
        if operator == FilterOperator.LT:
            return stored < wanted
        return stored <= wanted
    except TypeError:
        return False


def _contains(container: Any, item: Any) -> bool:
    try:
        return item in container
    except TypeError:
        return False


def _predicate(operator: FilterOperator, wanted: Any) -> Callable[[Any], bool]:
    """Per-value predicate with LlamaIndex semantics: a missing value only matches NE/NIN."""
    if operator == FilterOperator.IS_EMPTY:
        return lambda v: v is None or v == "" or v == []
    if operator == FilterOperator.NE:
        return lambda v: v is None or v != wanted
    if operator == FilterOperator.NIN:
        return lambda v: v is None or not _contains(wanted, v)
    simple: dict[FilterOperator, Callable[[Any], bool]] = {
        FilterOperator.EQ: lambda v: v == wanted,
        FilterOperator.IN: lambda v: _contains(wanted, v),
        FilterOperator.CONTAINS: lambda v: _contains(v, wanted),
        FilterOperator.TEXT_MATCH: lambda v: isinstance(v, str) and wanted in v,
        FilterOperator.TEXT_MATCH_INSENSITIVE: (
            lambda v: isinstance(v, str) and wanted.lower() in v.lower()
        ),
        FilterOperator.ANY: lambda v: any(_contains(v, w) for w in wanted),
        FilterOperator.ALL: lambda v: all(_contains(v, w) for w in wanted),
    }
    if operator in simple:
        test = simple[operator]
        return lambda v: v is not None and test(v)
    if operator in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
        return lambda v: v is not None and _compare(operator, v, wanted)
    raise ValueError(f"MemoryVectorStore does not support filter operator {operator!r}")


_NUMERIC_OPS: dict[FilterOperator, Callable[[np.ndarray, float], np.ndarray]] = {
    FilterOperator.EQ: np.equal,
    FilterOperator.GT: np.greater,
    FilterOperator.GTE: np.greater_equal,
    FilterOperator.LT: np.less,
    FilterOperator.LTE: np.less_equal,
}


class _Column:
    """One metadata key's values for all rows, plus a float view for vectorised comparisons."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self._numeric: np.ndarray | None = None
        self._objects: np.ndarray | None = None

    @property
    def numeric(self) -> np.ndarray:
        if self._numeric is None:
            self._numeric = _numeric_column(self.values)
        return self._numeric

    @property
    def objects(self) -> np.ndarray:
        if self._objects is None:
            self._objects = np.fromiter(self.values, dtype=object, count=len(self.values))
        return self._objects

    def mask(self, operator: FilterOperator, wanted: Any) -> np.ndarray:
        if operator in _NUMERIC_OPS and _is_number(wanted):
            return _NUMERIC_OPS[operator](self.numeric, wanted)
        if operator in (FilterOperator.EQ, FilterOperator.NE) and isinstance(wanted, str):
            equal = np.asarray(self.objects == wanted, dtype=bool)
            return equal if operator == FilterOperator.EQ else ~equal
        test = _predicate(operator, wanted)
        return np.fromiter(map(test, self.values), dtype=bool, count=len(self.values))


def _filters_mask(
    filters: MetadataFilters, column: Callable[[str], _Column], size: int
) -> np.ndarray:
    masks = [
        _filters_mask(f, column, size)
        if isinstance(f, MetadataFilters)
        else column(f.key).mask(getattr(f, "operator", FilterOperator.EQ), f.value)
        for f in filters.filters
    ]
    if not masks:
        return np.ones(size, dtype=bool)
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return np.logical_and.reduce(masks)
    any_match = np.logical_or.reduce(masks)
    if condition == FilterCondition.OR:
        return any_match
    if condition == FilterCondition.NOT:
        return ~any_match
    raise ValueError(f"MemoryVectorStore does not support filter condition {condition!r}")


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


# ---------------------------------------------------------------------------------------------
# Row storage and search (plain Python object: pydantic private-attribute access is slow)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HnswParams:
    """faiss HNSW settings; ``ef_search`` is raised to top-k when smaller."""

    m: int
    ef_construction: int
    ef_search: int


class _Table:
    """Vectors, node fields and the optional HNSW graph, kept in parallel rows."""

    def __init__(self) -> None:
        self.dim: int | None = None
        self.size = 0
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.row_of: dict[str, int] = {}
        self.doc_codes = np.zeros(0, dtype=np.int32)
        self.starts = np.zeros(0, dtype=np.int64)
        self.ends = np.zeros(0, dtype=np.int64)
        self.style_codes = np.zeros(0, dtype=np.int32)
        self.doc_names: list[str] = []
        self.doc_code_of: dict[str, int] = {}
        self.styles: list[Style] = []
        self.style_code_of: dict[Style, int] = {}
        self.columns: dict[str, _Column] = {}
        self.hnsw: Any = None
        self.row_to_label = np.zeros(0, dtype=np.int64)
        self.label_to_row = np.zeros(0, dtype=np.int64)
        self.dead_labels = 0

    # ----------------------------------------------------------------------------- writing

    def add(self, nodes: Sequence[BaseNode]) -> None:
        vectors = self.vectors_of(nodes)
        self.columns.clear()
        self.reserve(self.size + len(nodes))
        rows = np.fromiter((self.place(node) for node in nodes), dtype=np.int64, count=len(nodes))
        self.matrix[rows] = vectors

    def vectors_of(self, nodes: Sequence[BaseNode]) -> np.ndarray:
        embeddings = [node.get_embedding() for node in nodes]
        expected = self.dim if self.dim is not None else len(embeddings[0])
        for node, embedding in zip(nodes, embeddings, strict=True):
            if len(embedding) != expected:
                raise DimensionMismatchError(
                    f"Node {node.node_id!r} has an embedding of dimension {len(embedding)}, "
                    f"but this store holds dimension {expected} vectors"
                )
        if self.dim is None:
            self.dim = expected
            self.matrix = np.zeros((0, expected), dtype=np.float32)
        return _normalise_rows(np.asarray(embeddings, dtype=np.float32))

    def reserve(self, rows: int) -> None:
        capacity = self.matrix.shape[0]
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, INITIAL_CAPACITY)
        self.matrix = _resized(self.matrix, capacity)
        self.doc_codes = _resized(self.doc_codes, capacity, -1)
        self.starts = _resized(self.starts, capacity, -1)
        self.ends = _resized(self.ends, capacity, -1)
        self.style_codes = _resized(self.style_codes, capacity)
        self.row_to_label = _resized(self.row_to_label, capacity, -1)

    def place(self, node: BaseNode) -> int:
        """Write the node's non-vector fields into its row (new or existing); return the row."""
        row = self.row_of.get(node.node_id)
        text = node.get_content(metadata_mode=MetadataMode.NONE)
        if row is None:
            row = self.size
            self.size += 1
            self.row_of[node.node_id] = row
            self.ids.append(node.node_id)
            self.texts.append(text)
            self.metadata.append(dict(node.metadata))
        else:
            self.texts[row] = text
            self.metadata[row] = dict(node.metadata)
            self.forget_label(row)
        self.doc_codes[row] = self.intern_doc(node.ref_doc_id)
        self.starts[row] = _offset(getattr(node, "start_char_idx", None))
        self.ends[row] = _offset(getattr(node, "end_char_idx", None))
        self.style_codes[row] = self.intern_style(
            (tuple(node.excluded_embed_metadata_keys), tuple(node.excluded_llm_metadata_keys))
        )
        return row

    def intern_doc(self, ref_doc_id: str | None) -> int:
        if ref_doc_id is None:
            return -1
        code = self.doc_code_of.get(ref_doc_id)
        if code is None:
            code = self.doc_code_of[ref_doc_id] = len(self.doc_names)
            self.doc_names.append(ref_doc_id)
        return code

    def intern_style(self, style: Style) -> int:
        code = self.style_code_of.get(style)
        if code is None:
            code = self.style_code_of[style] = len(self.styles)
            self.styles.append(style)
        return code

    def remove_rows(self, rows: np.ndarray) -> None:
        """Swap-remove ``rows``: surviving rows from the tail move into the holes."""
        if rows.size == 0:
            return
        self.columns.clear()
        rows = np.unique(rows)
        for row in rows.tolist():
            self.forget_label(row)
            del self.row_of[self.ids[row]]
        new_size = self.size - rows.size
        holes = rows[rows < new_size]
        tail = np.ones(self.size - new_size, dtype=bool)
        tail[rows[rows >= new_size] - new_size] = False
        self.move_rows(np.flatnonzero(tail) + new_size, holes)
        for values in (self.ids, self.texts, self.metadata):
            del values[new_size:]
        self.size = new_size

    def move_rows(self, sources: np.ndarray, targets: np.ndarray) -> None:
        for array in (
            self.matrix,
            self.doc_codes,
            self.starts,
            self.ends,
            self.style_codes,
            self.row_to_label,
        ):
            array[targets] = array[sources]
        labels = self.row_to_label[targets]
        alive = labels >= 0
        self.label_to_row[labels[alive]] = targets[alive]
        for source, target in zip(sources.tolist(), targets.tolist(), strict=True):
            for values in (self.ids, self.texts, self.metadata):
                values[target] = values[source]
            self.row_of[self.ids[target]] = target

    def forget_label(self, row: int) -> None:
        """Tombstone the HNSW label of ``row`` (its vector is gone or about to change)."""
        label = self.row_to_label[row]
        if label >= 0:
            self.label_to_row[label] = -1
            self.row_to_label[row] = -1
            self.dead_labels += 1

    # ----------------------------------------------------------------------------- masks

    def column(self, key: str) -> _Column:
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = _Column([m.get(key) for m in self.metadata])
        return column

    def selection(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> np.ndarray:
        """Boolean mask over rows: in ``node_ids`` (if given) and matching ``filters``."""
        if filters is not None and filters.filters:
            mask = _filters_mask(filters, self.column, self.size)
        else:
            mask = np.ones(self.size, dtype=bool)
        if node_ids is not None:
            wanted = np.zeros(self.size, dtype=bool)
            wanted[[r for r in map(self.row_of.get, node_ids) if r is not None]] = True
            mask &= wanted
        return mask

    def query_mask(self, query: VectorStoreQuery) -> np.ndarray | None:
        """Row mask for the query's restrictions, or None when every row is eligible.

        Empty ``node_ids``/``doc_ids`` lists mean "no restriction": ``VectorStoreIndex``
        passes ``node_ids=[]`` for stores that keep the text themselves.
        """
        filtered = query.filters is not None and bool(query.filters.filters)
        if not (filtered or query.node_ids or query.doc_ids):
            return None
        mask = self.selection(query.node_ids or None, query.filters)
        if query.doc_ids:
            codes = [self.doc_code_of[d] for d in query.doc_ids if d in self.doc_code_of]
            mask &= np.isin(self.doc_codes[: self.size], codes)
        return mask

    # ---------------------------------------------------------------------------- search

    def query_vector(self, embedding: Sequence[float]) -> np.ndarray:
        if len(embedding) != self.dim:
            raise DimensionMismatchError(
                f"Query embedding has dimension {len(embedding)}, "
                f"but this store holds dimension {self.dim} vectors"
            )
        return _normalise_rows(np.array(embedding, dtype=np.float32).reshape(1, -1))[0]

    def search(
        self, vector: np.ndarray, k: int, mask: np.ndarray | None, hnsw: HnswParams | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosine scores of the best ``k`` eligible rows (see the module's HNSW rule)."""
        eligible = self.size if mask is None else int(np.count_nonzero(mask))
        k = min(k, eligible)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if hnsw is not None and eligible >= HNSW_MIN_FILTER_FRACTION * self.size:
            rows = self.hnsw_search(vector, k, mask, hnsw)
            if rows.size == k:
                return rows, self.matrix[rows] @ vector
        return self.exact_search(vector, k, mask, eligible)

    def exact_search(
        self, vector: np.ndarray, k: int, mask: np.ndarray | None, eligible: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if mask is not None and eligible <= GATHER_FRACTION * self.size:
            candidates = np.flatnonzero(mask)
            scores = self.matrix[candidates] @ vector
            best = _top_k(scores, k)
            return candidates[best], scores[best]
        scores = self.matrix[: self.size] @ vector
        if mask is not None:
            scores[~mask] = -np.inf
        best = _top_k(scores, k)
        return best, scores[best]

    def sync_hnsw(self, params: HnswParams) -> None:
        """Rebuild when too many labels are dead, then add rows not yet in the graph."""
        import faiss

        if self.hnsw is None or self.dead_labels > HNSW_REBUILD_DEAD_FRACTION * self.hnsw.ntotal:
            self.hnsw = faiss.IndexHNSWFlat(self.dim, params.m, faiss.METRIC_INNER_PRODUCT)
            self.hnsw.hnsw.efConstruction = params.ef_construction
            self.label_to_row = np.zeros(0, dtype=np.int64)
            self.row_to_label[: self.size] = -1
            self.dead_labels = 0
        pending = np.flatnonzero(self.row_to_label[: self.size] < 0)
        if pending.size == 0:
            return
        first = self.hnsw.ntotal
        self.hnsw.add(np.ascontiguousarray(self.matrix[pending]))
        self.row_to_label[pending] = np.arange(first, first + pending.size, dtype=np.int64)
        self.label_to_row = np.concatenate([self.label_to_row, pending])

    def hnsw_search(
        self, vector: np.ndarray, k: int, mask: np.ndarray | None, params: HnswParams
    ) -> np.ndarray:
        import faiss

        self.sync_hnsw(params)
        search_params = faiss.SearchParametersHNSW()
        search_params.efSearch = max(params.ef_search, k)
        if mask is not None or self.dead_labels:
            allowed = self.label_to_row >= 0
            if mask is not None:
                alive = np.flatnonzero(allowed)
                allowed[alive] = mask[self.label_to_row[alive]]
            search_params.sel = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
        _, labels = self.hnsw.search(vector.reshape(1, -1), k, params=search_params)
        rows = self.label_to_row[labels[0][labels[0] >= 0]]
        return rows[rows >= 0]

    def node_at(self, row: int) -> TextNode:
        start, end = int(self.starts[row]), int(self.ends[row])
        embed_excluded, llm_excluded = self.styles[int(self.style_codes[row])]
        code = int(self.doc_codes[row])
        relationships = (
            {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=self.doc_names[code])}
            if code >= 0
            else {}
        )
        return TextNode(
            id_=self.ids[row],
            text=self.texts[row],
            metadata=dict(self.metadata[row]),
            start_char_idx=None if start < 0 else start,
            end_char_idx=None if end < 0 else end,
            relationships=relationships,
            excluded_embed_metadata_keys=list(embed_excluded),
            excluded_llm_metadata_keys=list(llm_excluded),
        )

    def nodes_with_vectors(self, ids: Sequence[str]) -> list[TextNode]:
        """Stored nodes with their (normalised) vectors, to copy rows into another table."""
        nodes = []
        for node_id in ids:
            row = self.row_of.get(node_id)
            if row is not None:
                node = self.node_at(row)
                node.embedding = self.matrix[row].tolist()
                nodes.append(node)
        return nodes

    # ----------------------------------------------------------------------- persistence

    def records(self) -> dict[str, Any]:
        n = self.size
        return {
            "dim": self.dim,
            "ids": self.ids,
            "texts": self.texts,
            "metadata": self.metadata,
            "doc_names": self.doc_names,
            "doc_codes": self.doc_codes[:n].tolist(),
            "starts": self.starts[:n].tolist(),
            "ends": self.ends[:n].tolist(),
            "styles": [[list(a), list(b)] for a, b in self.styles],
            "style_codes": self.style_codes[:n].tolist(),
        }

    def write_generation(
        self, folder: Path, generation: int, config: dict[str, Any]
    ) -> dict[str, str]:
        """Write this generation's files durably; return their names by role."""
        files = {"vectors": f"vectors-{generation}.npy", "records": f"records-{generation}.json"}
        matrix = self.matrix[: self.size]
        _write_durably(folder / files["vectors"], lambda h: np.save(h, matrix))
        try:
            payload = json.dumps(
                {"config": config, **self.records()}, ensure_ascii=False, separators=(",", ":")
            )
        except TypeError as error:
            raise ValueError(f"Node metadata must be JSON-serialisable: {error}") from error
        _write_durably(folder / files["records"], lambda h: h.write(payload.encode("utf-8")))
        if self.hnsw is not None:
            import faiss

            files["hnsw"] = f"hnsw-{generation}.faiss"
            files["hnsw_labels"] = f"hnsw_labels-{generation}.npy"
            blob = faiss.serialize_index(self.hnsw)
            _write_durably(folder / files["hnsw"], lambda h: h.write(blob.tobytes()))
            labels = self.label_to_row
            _write_durably(folder / files["hnsw_labels"], lambda h: np.save(h, labels))
        return files

    def load_records(self, records: dict[str, Any], matrix: np.ndarray) -> None:
        n = len(records["ids"])
        if matrix.shape[0] != n:
            raise ValueError(f"Vectors file has {matrix.shape[0]} rows but {n} records")
        self.dim = records["dim"]
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.size = n
        self.ids = records["ids"]
        self.texts = records["texts"]
        self.metadata = records["metadata"]
        self.row_of = {node_id: row for row, node_id in enumerate(self.ids)}
        self.doc_names = records["doc_names"]
        self.doc_code_of = {name: code for code, name in enumerate(self.doc_names)}
        self.styles = [(tuple(a), tuple(b)) for a, b in records["styles"]]
        self.style_code_of = {style: code for code, style in enumerate(self.styles)}
        self.doc_codes = np.asarray(records["doc_codes"], dtype=np.int32).reshape(n)
        self.starts = np.asarray(records["starts"], dtype=np.int64).reshape(n)
        self.ends = np.asarray(records["ends"], dtype=np.int64).reshape(n)
        self.style_codes = np.asarray(records["style_codes"], dtype=np.int32).reshape(n)
        self.row_to_label = np.full(n, -1, dtype=np.int64)

    def load_hnsw(self, index_path: Path, label_to_row: np.ndarray) -> None:
        import faiss

        self.hnsw = faiss.deserialize_index(np.fromfile(index_path, dtype=np.uint8))
        self.label_to_row = label_to_row.astype(np.int64)
        alive = np.flatnonzero(self.label_to_row >= 0)
        self.row_to_label[self.label_to_row[alive]] = alive
        self.dead_labels = int(self.label_to_row.size - alive.size)


# ---------------------------------------------------------------------------------------------
# The LlamaIndex vector store
# ---------------------------------------------------------------------------------------------


class MemoryVectorStore(BasePydanticVectorStore):
    """Exact (or HNSW) cosine search over an in-memory float32 matrix with metadata filters."""

    stores_text: bool = True
    index: Literal["exact", "hnsw"] = Field(default="exact", description="Search structure.")
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_construction: int = Field(default=200, ge=1)
    hnsw_ef_search: int = Field(default=64, ge=1)

    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _table: _Table = PrivateAttr(default_factory=_Table)
    #: Stamp of the persisted generation the rows are based on (None: not loaded from disk).
    _stamp: str | None = PrivateAttr(default=None)
    #: Ids added (True) or deleted (False) since that generation: what a merge replays.
    _changes: dict[str, bool] = PrivateAttr(default_factory=dict)
    #: ``stat`` of the manifest when last compared, so an unchanged directory costs one stat.
    _seen: tuple[int, int, int] | None = PrivateAttr(default=None)

    def __init__(
        self,
        index: Literal["exact", "hnsw"] = "exact",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        hnsw_ef_search: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            index=index,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_search=hnsw_ef_search,
            **kwargs,
        )

    @classmethod
    def class_name(cls) -> str:
        return "MemoryVectorStore"

    @property
    def client(self) -> None:
        return None

    @property
    def dimension(self) -> int | None:
        """Embedding dimension fixed by the first add (None while the store is empty)."""
        return self._table.dim

    @property
    def count(self) -> int:
        """Number of stored nodes."""
        return self._table.size

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Insert nodes; a node whose id is already stored is overwritten."""
        if nodes:
            with self._lock:
                self._table.add(nodes)
                self._changes.update((node.node_id, True) for node in nodes)
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose ref_doc_id is exactly ``ref_doc_id``."""
        with self._lock:
            table = self._table
            code = table.doc_code_of.get(ref_doc_id)
            if code is not None:
                self._remove_rows(np.flatnonzero(table.doc_codes[: table.size] == code))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes in ``node_ids`` and matching ``filters``; with neither, delete nothing."""
        if node_ids is None and filters is None:
            return
        with self._lock:
            self._remove_rows(np.flatnonzero(self._table.selection(node_ids, filters)))
            if filters is None:
                # Ids this store has not loaded yet may be on disk (another writer's): a merge
                # must delete them there too.
                self._changes.update((node_id, False) for node_id in node_ids or ())

    def _remove_rows(self, rows: np.ndarray) -> None:
        self._changes.update((self._table.ids[row], False) for row in rows.tolist())
        self._table.remove_rows(rows)

    def clear(self) -> None:
        """Remove every node and forget the embedding dimension."""
        with self._lock:
            self._changes.update((node_id, False) for node_id in self._table.ids)
            self._table = _Table()

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in the given order) and/or filter; all nodes when both are None."""
        with self._lock:
            table = self._table
            keep = table.selection(None, filters)
            if node_ids is None:
                rows = np.flatnonzero(keep).tolist()
            else:
                rows = [r for r in map(table.row_of.get, node_ids) if r is not None and keep[r]]
            return [table.node_at(r) for r in rows]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top-k cosine similarity search honouring filters, doc_ids and node_ids."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise NotImplementedError(f"MemoryVectorStore does not support query mode {query.mode}")
        if query.query_embedding is None:
            raise ValueError("MemoryVectorStore.query needs a query_embedding")
        with self._lock:
            table = self._table
            if table.size == 0:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            vector = table.query_vector(query.query_embedding)
            mask = table.query_mask(query)
            rows, scores = table.search(vector, query.similarity_top_k, mask, self._hnsw_params())
            return VectorStoreQueryResult(
                nodes=[table.node_at(r) for r in rows.tolist()],
                similarities=scores.tolist(),
                ids=[table.ids[r] for r in rows.tolist()],
            )

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Write the store into directory ``persist_path`` atomically, merged with whatever
        another writer persisted there since this store last loaded (see module docstring)."""
        if fs is not None and not _is_local_fs(fs):
            raise NotImplementedError("MemoryVectorStore persists to the local filesystem only")
        folder = Path(persist_path)
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder / LOCK_NAME), self._lock:
            previous = _read_manifest(folder)
            self._merge_if_changed(folder, previous)
            generation = (previous["generation"] + 1) if previous else 1
            files = self._table.write_generation(folder, generation, self._config())
            _fsync_dir(folder)
            stamp = uuid.uuid4().hex
            manifest = {
                "format": FORMAT_VERSION,
                "generation": generation,
                "stamp": stamp,
                "files": files,
            }
            _write_durably(
                folder / MANIFEST_NAME, lambda h: h.write(json.dumps(manifest).encode("utf-8"))
            )
            _fsync_dir(folder)
            _remove_stale_files(folder, set(files.values()))
            self._stamp = stamp
            self._changes.clear()
            self._seen = file_signature(folder / MANIFEST_NAME)

    def refresh(self, persist_dir: str) -> bool:
        """Take in what other writers persisted to ``persist_dir``; True if anything changed.

        Unpersisted changes of this store are kept (replayed onto the newer generation).
        """
        folder = Path(persist_dir)
        if file_signature(folder / MANIFEST_NAME) == self._seen:
            return False
        with locked(folder / LOCK_NAME), self._lock:
            changed = self._merge_if_changed(folder, _read_manifest(folder))
            self._seen = file_signature(folder / MANIFEST_NAME)
            return changed

    def _merge_if_changed(self, folder: Path, manifest: dict[str, Any] | None) -> bool:
        """Rebase the rows on the persisted generation if it is not the one they came from."""
        stamp = _stamp_of(manifest)
        if stamp == self._stamp:
            return False
        base = _Table() if manifest is None else _load_table(folder, manifest, self.index)[1]
        added = [node_id for node_id, added in self._changes.items() if added]
        deleted = [node_id for node_id, added in self._changes.items() if not added]
        nodes = self._table.nodes_with_vectors(added)
        if nodes:
            base.add(nodes)
        base.remove_rows(np.flatnonzero(base.selection(deleted, None)))
        self._table = base
        self._stamp = stamp
        return True

    @classmethod
    def from_persist_dir(cls, persist_dir: str, **kwargs: Any) -> MemoryVectorStore:
        """Load the generation named by ``persist_dir/manifest.json``; kwargs override config."""
        folder = Path(persist_dir)
        if _read_manifest(folder) is None:
            raise FileNotFoundError(f"No MemoryVectorStore manifest in {folder}")
        with locked(folder / LOCK_NAME):
            manifest = _read_manifest(folder)
            if manifest is None:
                raise FileNotFoundError(f"No MemoryVectorStore manifest in {folder}")
            config, table = _load_table(folder, manifest, kwargs.get("index"))
            store = cls(**{**config, **kwargs})
            store._table = table
            store._stamp = _stamp_of(manifest)
            store._seen = file_signature(folder / MANIFEST_NAME)
        return store

    def _config(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_construction": self.hnsw_ef_construction,
            "hnsw_ef_search": self.hnsw_ef_search,
        }

    def _hnsw_params(self) -> HnswParams | None:
        if self.index != "hnsw":
            return None
        return HnswParams(self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)


def _load_table(
    folder: Path, manifest: dict[str, Any], index: str | None
) -> tuple[dict[str, Any], _Table]:
    """The stored config and the rows of ``manifest``'s generation (call under the lock)."""
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"Unsupported MemoryVectorStore format {manifest.get('format')!r}")
    files = manifest["files"]
    records = json.loads((folder / files["records"]).read_text(encoding="utf-8"))
    config = records.pop("config")
    table = _Table()
    table.load_records(records, np.load(folder / files["vectors"]))
    if "hnsw" in files and (index or config.get("index")) == "hnsw":
        table.load_hnsw(folder / files["hnsw"], np.load(folder / files["hnsw_labels"]))
    return config, table


def _stamp_of(manifest: dict[str, Any] | None) -> str | None:
    """Identifies a generation; manifests older than the stamp are told apart by number."""
    if manifest is None:
        return None
    return manifest.get("stamp") or f"generation-{manifest['generation']}"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _remove_stale_files(folder: Path, keep: set[str]) -> None:
    """Delete other generations' files and leftover temp files after a manifest switch."""
    prefixes = ("vectors-", "records-", "hnsw-", "hnsw_labels-", TEMP_PREFIX)
    for path in folder.iterdir():
        if path.name.startswith(prefixes) and path.name not in keep:
            path.unlink(missing_ok=True)
