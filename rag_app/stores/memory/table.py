"""The memory store's rows: one float32 matrix, parallel node fields, optional faiss HNSW.

Search, growth, swap-remove deletes, HNSW tombstones and the durable on-disk generations are
here; `vector_store.MemoryVectorStore` wraps this table in LlamaIndex's store contract and
handles locking and merge-on-write (see its docstring for the whole design). LlamaIndex is
imported only where nodes are built or read: a search that returns `StoredChunk`s (`rag-app
retrieve`) runs without it (importing it takes a second).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_app.errors import EmbeddingMismatchError
from rag_app.stores.base import StoredChunk
from rag_app.stores.memory.generations import FORMAT_VERSION, write_durably

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode, TextNode
    from llama_index.core.vector_stores.types import MetadataFilters, VectorStoreQuery

    from rag_app.stores.memory.filters import Column

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


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
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


class RowTable:
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
        self.columns: dict[str, Column] = {}
        self.hnsw: Any = None
        self.row_to_label = np.zeros(0, dtype=np.int64)
        self.label_to_row = np.zeros(0, dtype=np.int64)
        self.dead_labels = 0

    # ----------------------------------------------------------------------------- writing

    def add(self, nodes: Sequence[BaseNode], vectors: np.ndarray | None = None) -> None:
        """Write `nodes`, with `vectors` (row i is node i's) instead of their `embedding`."""
        vectors = self.vectors_of(nodes, vectors)
        self.place_all([StoredChunk.of_node(node) for node in nodes], vectors)

    def add_chunks(self, chunks: Sequence[StoredChunk], vectors: np.ndarray) -> None:
        """Write plain chunks with their vectors (row i is chunk i's): a copy from a store."""
        self.place_all(chunks, self.vectors_of(chunks, vectors))

    def place_all(self, chunks: Sequence[StoredChunk], vectors: np.ndarray) -> None:
        self.columns.clear()
        self.reserve(self.size + len(chunks))
        rows = np.fromiter(map(self.place, chunks), dtype=np.int64, count=len(chunks))
        self.matrix[rows] = vectors

    def vectors_of(self, nodes: Sequence[Any], vectors: np.ndarray | None) -> np.ndarray:
        """The rows to store (normalised copies), after checking their dimension."""
        if vectors is None:
            embeddings = [node.get_embedding() for node in nodes]
            expected = self.dim if self.dim is not None else len(embeddings[0])
            for node, embedding in zip(nodes, embeddings, strict=True):
                if len(embedding) != expected:
                    raise DimensionMismatchError(
                        f"Node {node.node_id!r} has an embedding of dimension {len(embedding)}, "
                        f"but this store holds dimension {expected} vectors"
                    )
            rows = np.asarray(embeddings, dtype=np.float32)
        else:
            rows = np.array(vectors, dtype=np.float32, ndmin=2)
            expected = self.dim if self.dim is not None else rows.shape[1]
            if rows.shape != (len(nodes), expected):
                raise DimensionMismatchError(
                    f"{rows.shape[0]} vectors of dimension {rows.shape[1]} were given for "
                    f"{len(nodes)} nodes, but this store holds dimension {expected} vectors"
                )
        if self.dim is None:
            self.dim = expected
            self.matrix = np.zeros((0, expected), dtype=np.float32)
        return _normalise_rows(rows)

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

    def place(self, chunk: StoredChunk) -> int:
        """Write the chunk's non-vector fields into its row (new or existing); return the row."""
        row = self.row_of.get(chunk.id)
        if row is None:
            row = self.size
            self.size += 1
            self.row_of[chunk.id] = row
            self.ids.append(chunk.id)
            self.texts.append(chunk.text)
            self.metadata.append(dict(chunk.metadata))
        else:
            self.texts[row] = chunk.text
            self.metadata[row] = dict(chunk.metadata)
            self.forget_label(row)
        self.doc_codes[row] = self.intern_doc(chunk.ref_doc_id)
        self.starts[row] = _offset(chunk.start_char)
        self.ends[row] = _offset(chunk.end_char)
        self.style_codes[row] = self.intern_style(
            (chunk.excluded_embed_keys, chunk.excluded_llm_keys)
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

    def column(self, key: str) -> Column:
        from rag_app.stores.memory.filters import Column  # lazy: filters import LlamaIndex

        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = Column([m.get(key) for m in self.metadata])
        return column

    def selection(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> np.ndarray:
        """Boolean mask over rows: in ``node_ids`` (if given) and matching ``filters``."""
        if filters is not None and filters.filters:
            from rag_app.stores.memory.filters import filters_mask  # filters given: see column

            mask = filters_mask(filters, self.column, self.size)
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
            best = top_k_rows(scores, k)
            return candidates[best], scores[best]
        scores = self.matrix[: self.size] @ vector
        if mask is not None:
            scores[~mask] = -np.inf
        best = top_k_rows(scores, k)
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

    def search_chunks(
        self, embedding: Sequence[float], k: int, hnsw: HnswParams | None
    ) -> list[tuple[StoredChunk, float]]:
        """The best ``k`` rows as plain chunks with their cosine scores, best first."""
        if self.size == 0:
            return []
        rows, scores = self.search(self.query_vector(embedding), k, None, hnsw)
        return [(self.chunk_at(r), s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]

    def chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        rows = [r for r in map(self.row_of.get, ids) if r is not None]
        return {self.ids[r]: self.chunk_at(r) for r in rows}

    def chunk_at(self, row: int) -> StoredChunk:
        """The row as a plain chunk, for searches that need no LlamaIndex node."""
        start, end = int(self.starts[row]), int(self.ends[row])
        code = int(self.doc_codes[row])
        embed_excluded, llm_excluded = self.styles[int(self.style_codes[row])]
        return StoredChunk(
            id=self.ids[row],
            text=self.texts[row],
            metadata=dict(self.metadata[row]),
            ref_doc_id=self.doc_names[code] if code >= 0 else None,
            start_char=None if start < 0 else start,
            end_char=None if end < 0 else end,
            excluded_embed_keys=embed_excluded,
            excluded_llm_keys=llm_excluded,
        )

    def node_at(self, row: int) -> TextNode:
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

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

    def embedded(self, ids: Sequence[str]) -> tuple[list[TextNode], np.ndarray]:
        """Stored nodes of `ids` (in that order) and their normalised vectors as a matrix,
        to copy rows into another table or store."""
        rows = [r for r in map(self.row_of.get, ids) if r is not None]
        matrix = self.matrix[rows] if rows else np.zeros((0, self.dim or 0), dtype=np.float32)
        return [self.node_at(r) for r in rows], matrix

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
        write_durably(folder / files["vectors"], lambda h: np.save(h, matrix))
        try:
            payload = json.dumps(
                {"config": config, **self.records()}, ensure_ascii=False, separators=(",", ":")
            )
        except TypeError as error:
            raise ValueError(f"Node metadata must be JSON-serialisable: {error}") from error
        write_durably(folder / files["records"], lambda h: h.write(payload.encode("utf-8")))
        if self.hnsw is not None:
            import faiss

            files["hnsw"] = f"hnsw-{generation}.faiss"
            files["hnsw_labels"] = f"hnsw_labels-{generation}.npy"
            blob = faiss.serialize_index(self.hnsw)
            write_durably(folder / files["hnsw"], lambda h: h.write(blob.tobytes()))
            labels = self.label_to_row
            write_durably(folder / files["hnsw_labels"], lambda h: np.save(h, labels))
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


def load_table(
    folder: Path, manifest: dict[str, Any], index: str | None
) -> tuple[dict[str, Any], RowTable]:
    """The stored config and the rows of ``manifest``'s generation (call under the lock)."""
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"Unsupported MemoryVectorStore format {manifest.get('format')!r}")
    files = manifest["files"]
    records = json.loads((folder / files["records"]).read_text(encoding="utf-8"))
    config = records.pop("config")
    table = RowTable()
    table.load_records(records, np.load(folder / files["vectors"]))
    if "hnsw" in files and (index or config.get("index")) == "hnsw":
        table.load_hnsw(folder / files["hnsw"], np.load(folder / files["hnsw_labels"]))
    return config, table
