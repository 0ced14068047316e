"""Exact (KNN) vs approximate (ANN, HNSW) search measurements for the chapter 12 notebook.

Hand-written because it is a teaching harness, not a library: faiss provides the indexes
(`IndexFlatL2` for exact search, `IndexHNSWFlat` for HNSW) but no library runs the sweeps the
chapter asks for (M, ef_construction and ef_search against indexing time, memory, latency and
recall) on a laptop, offline, in a few seconds. Everything here is a thin loop over faiss that
returns plain rows (dataclasses, no pandas) so notebooks stay a few lines per cell.

Data sources, all optional except the synthetic one:
- `synthetic_dataset`: a Gaussian mixture (clustered like real embeddings, unlike uniform noise);
- `text_embedding_dataset`: MiniLM embeddings of the sentences of the shared XQuAD contexts
  (queries: the XQuAD questions); `None` when `../shared` is absent;
- `load_sift`: the SIFT1M benchmark (`sift_base.fvecs`, `sift_query.fvecs`,
  `sift_groundtruth.ivecs`) from the folder in `SIFT1M_DIR`, when the reader downloaded it.

Memory is the size of the serialized index (`faiss.serialize_index`): vectors plus, for HNSW,
the graph's links. Latency is measured single-threaded (`faiss.omp_set_num_threads(THREADS)`),
which also makes HNSW construction deterministic.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag_lab.data import xquad_path
from rag_lab.tables import select

#: faiss threads for every build and search here: 1 gives stable latencies and a
#: deterministic HNSW graph.
THREADS = 1


SCALES = ("small", "full")


SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")


def set_threads(threads: int = THREADS) -> None:
    faiss.omp_set_num_threads(threads)


def notebook_scale() -> str:
    """`RAG_NOTEBOOK_SCALE`: `small` (default; the tests) or `full` (`make notebooks`)."""
    scale = os.environ.get("RAG_NOTEBOOK_SCALE", "small").strip().lower() or "small"
    if scale not in SCALES:
        raise ValueError(f"RAG_NOTEBOOK_SCALE={scale!r}: expected one of {', '.join(SCALES)}")
    return scale


@dataclass(frozen=True)
class LabConfig:
    """Sizes and sweep grids for one scale."""

    n_vectors: int
    dim: int
    n_queries: int
    ms: tuple[int, ...]
    ef_constructions: tuple[int, ...]
    ef_searches: tuple[int, ...]
    text_max_sentences: int | None
    text_max_queries: int
    sift_max_base: int
    scaling_sizes: tuple[int, ...]


CONFIGS = {
    "small": LabConfig(
        n_vectors=20_000,
        dim=64,
        n_queries=500,
        ms=(4, 8, 16, 32),
        ef_constructions=(16, 64),
        ef_searches=(8, 16, 32, 64, 128),
        # Embedding is the slow part on a busy 2-core machine: a few hundred texts.
        text_max_sentences=400,
        text_max_queries=100,
        sift_max_base=50_000,
        scaling_sizes=(10_000, 20_000, 40_000, 80_000),
    ),
    "full": LabConfig(
        n_vectors=100_000,
        dim=128,
        n_queries=1_000,
        ms=(4, 8, 16, 32, 64),
        ef_constructions=(40, 100, 200),
        ef_searches=(8, 16, 32, 64, 128, 256),
        text_max_sentences=None,
        text_max_queries=1_190,
        # HNSW builds on all 1M SIFT vectors take minutes each, single-threaded.
        sift_max_base=200_000,
        scaling_sizes=(50_000, 100_000, 200_000, 400_000, 800_000),
    ),
}


def lab_config(scale: str | None = None) -> LabConfig:
    return CONFIGS[scale or notebook_scale()]


@dataclass
class Dataset:
    """Database vectors, query vectors and the exact top-k neighbours of every query."""

    name: str
    data: np.ndarray
    queries: np.ndarray
    ground_truth: np.ndarray
    note: str = ""

    def describe(self) -> str:
        n, dim = self.data.shape
        text = f"{self.name}: {n:,} vectors x {dim} dims, {len(self.queries):,} queries"
        return f"{text} ({self.note})" if self.note else text


def synthetic_dataset(
    n: int, dim: int, n_queries: int, seed: int = 0, clusters: int = 100, k: int = 10
) -> Dataset:
    """A Gaussian mixture: `clusters` random centres, points scattered around them.

    Queries come from the same distribution (not from the database), and the ground truth is
    computed by exact search.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        labels = rng.integers(0, clusters, size=count)
        noise = rng.normal(scale=0.6, size=(count, dim)).astype(np.float32)
        return np.ascontiguousarray(centres[labels] + noise, dtype=np.float32)

    data, queries = draw(n), draw(n_queries)
    _, truth = exact_search(data, queries, k)
    return Dataset("synthetic", data, queries, truth, f"Gaussian mixture, {clusters} clusters")


def xquad_sentences_and_questions(path: Path) -> tuple[list[str], list[str]]:
    """The distinct sentences of every context (longer than 20 characters) and every question."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    sentences: dict[str, None] = {}
    questions: list[str] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for sentence in SENTENCE_BOUNDARY.split(paragraph["context"]):
                if len(sentence.strip()) > 20:
                    sentences[sentence.strip()] = None
            questions += [qa["question"] for qa in paragraph.get("qas", [])]
    return list(sentences), questions


def text_embedding_dataset(
    max_sentences: int | None = None,
    max_queries: int | None = 300,
    embedder: Any = None,
    path: Path | None = None,
    k: int = 10,
) -> Dataset | None:
    """Sentence embeddings of the XQuAD contexts (database) and its questions (queries).

    Returns None when the shared XQuAD file is absent. Vectors are L2-normalised, so L2 order
    is cosine order. `embedder` is a `rag_app.embeddings.models.Embedder` (default: the offline
    all-MiniLM-L6-v2, loaded here without a cache).
    """
    path = path or xquad_path()
    if path is None or not path.is_file():
        return None
    sentences, questions = xquad_sentences_and_questions(path)
    sentences = sentences[:max_sentences] if max_sentences else sentences
    questions = questions[:max_queries] if max_queries else questions
    if embedder is None:
        import tempfile

        from rag_app.embeddings.models import build_embedder
        from rag_app.settings import load_settings

        settings = load_settings(data_dir=Path(tempfile.gettempdir()) / "rag_app_hnsw_lab")
        embedder = build_embedder(settings, cache=False)
    data = _normalise(embedder.embed_texts(sentences))
    queries = _normalise(embedder.embed_texts(questions))
    _, truth = exact_search(data, queries, k)
    note = f"{embedder.model_id}, XQuAD sentences; queries: XQuAD questions"
    return Dataset("xquad-minilm", data, queries, truth, note)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))


def read_vecs(path: Path, dtype: str = "float32", max_rows: int | None = None) -> np.ndarray:
    """Read a `.fvecs` / `.ivecs` file (each row: int32 dimension, then the values)."""
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    if max_rows is not None:
        rows = rows[:max_rows]
    return np.ascontiguousarray(rows[:, 1:].view(dtype))


def load_sift(path: Path, max_base: int | None = None, max_queries: int = 1000, k: int = 10):
    """SIFT1M from `path`; the ground truth is recomputed when only part of the base is used."""
    path = Path(path)
    base = read_vecs(path / "sift_base.fvecs", "float32", max_base)
    queries = read_vecs(path / "sift_query.fvecs", "float32", max_queries)
    if len(base) == 1_000_000:
        truth = read_vecs(path / "sift_groundtruth.ivecs", "int32", max_queries)[:, :k]
        note = "the published ground truth"
    else:
        _, truth = exact_search(base, queries, k)
        note = f"first {len(base):,} base vectors, exact ground truth recomputed"
    return Dataset("sift", base, queries, truth.astype(np.int64), note)


def exact_search(
    data: np.ndarray, queries: np.ndarray, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (`IndexFlatL2`, brute force): distances and ids."""
    set_threads()
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    return index.search(queries, k)


def index_bytes(index: faiss.Index) -> int:
    """The index's size as faiss serializes it: vectors plus any graph."""
    return int(faiss.serialize_index(index).nbytes)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """k-recall@k: the share of the true k nearest neighbours found among the first k results.

    recall@1 is the share of queries whose first result is the true nearest neighbour.
    """
    hits = sum(len(set(f[:k]) & set(t[:k])) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def _timed_search(
    index: faiss.Index, queries: np.ndarray, k: int, repeats: int
) -> tuple[float, np.ndarray]:
    """Best-of-`repeats` milliseconds per query, and the ids found."""
    best = float("inf")
    ids = np.zeros((0, k), dtype=np.int64)
    for _ in range(repeats):
        started = time.perf_counter()
        _, ids = index.search(queries, k)
        best = min(best, time.perf_counter() - started)
    return best * 1000 / len(queries), ids


@dataclass
class SweepRow:
    """One index configuration's costs and quality."""

    index: str
    M: int | None
    ef_construction: int | None
    ef_search: int | None
    build_s: float
    memory_mb: float
    ms_per_query: float
    recall_at_1: float
    recall_at_10: float


def exact_row(dataset: Dataset, repeats: int = 3) -> SweepRow:
    """The brute-force baseline (`IndexFlatL2`): recall 1 by definition."""
    set_threads()
    started = time.perf_counter()
    index = faiss.IndexFlatL2(dataset.data.shape[1])
    index.add(dataset.data)
    build = time.perf_counter() - started
    ms, ids = _timed_search(index, dataset.queries, 10, repeats)
    return SweepRow(
        "Flat (exact)",
        None,
        None,
        None,
        round(build, 3),
        round(index_bytes(index) / 2**20, 2),
        round(ms, 4),
        round(recall_at(ids, dataset.ground_truth, 1), 4),
        round(recall_at(ids, dataset.ground_truth, 10), 4),
    )


def build_hnsw(data: np.ndarray, m: int, ef_construction: int) -> tuple[faiss.Index, float]:
    """An `IndexHNSWFlat` with M links per node, built with `ef_construction`; and its seconds."""
    set_threads()
    index = faiss.IndexHNSWFlat(data.shape[1], m)
    index.hnsw.efConstruction = ef_construction
    started = time.perf_counter()
    index.add(data)
    return index, time.perf_counter() - started


def hnsw_sweep(
    data: np.ndarray,
    queries: np.ndarray,
    ground_truth: np.ndarray,
    Ms: Iterable[int],  # noqa: N803 - the name HNSW's papers and faiss use
    ef_constructions: Iterable[int],
    ef_searches: Iterable[int],
    repeats: int = 3,
) -> list[SweepRow]:
    """One HNSW index per (M, ef_construction), searched at every ef_search.

    Build time and memory belong to the index, so they repeat across its ef_search rows.
    faiss searches with max(ef_search, k) candidates, k = 10 here.
    """
    rows: list[SweepRow] = []
    for m in Ms:
        for ef_construction in ef_constructions:
            index, build = build_hnsw(data, m, ef_construction)
            memory = index_bytes(index) / 2**20
            for ef_search in ef_searches:
                index.hnsw.efSearch = ef_search
                ms, ids = _timed_search(index, queries, 10, repeats)
                rows.append(
                    SweepRow(
                        "HNSW",
                        m,
                        ef_construction,
                        ef_search,
                        round(build, 3),
                        round(memory, 2),
                        round(ms, 4),
                        round(recall_at(ids, ground_truth, 1), 4),
                        round(recall_at(ids, ground_truth, 10), 4),
                    )
                )
    return rows


def sweep_dataset(dataset: Dataset, config: LabConfig | None = None) -> list[SweepRow]:
    """The exact baseline followed by the HNSW grid of `config` (default: the current scale)."""
    config = config or lab_config()
    return [exact_row(dataset)] + hnsw_sweep(
        dataset.data,
        dataset.queries,
        dataset.ground_truth,
        config.ms,
        config.ef_constructions,
        config.ef_searches,
    )


@dataclass
class ScalingRow:
    """Exact search cost for one database size."""

    n_vectors: int
    dim: int
    memory_mb: float
    add_s: float
    ms_per_query: float


def exact_scaling(
    sizes: Sequence[int], dim: int = 64, n_queries: int = 100, seed: int = 0, repeats: int = 3
) -> list[ScalingRow]:
    """Brute-force (`IndexFlatL2`) memory and search time as the number of vectors grows."""
    set_threads()
    rng = np.random.default_rng(seed)
    queries = rng.normal(size=(n_queries, dim)).astype(np.float32)
    rows = []
    for n in sizes:
        data = rng.normal(size=(n, dim)).astype(np.float32)
        index = faiss.IndexFlatL2(dim)
        started = time.perf_counter()
        index.add(data)
        added = time.perf_counter() - started
        ms, _ = _timed_search(index, queries, 10, repeats)
        rows.append(
            ScalingRow(n, dim, round(index_bytes(index) / 2**20, 2), round(added, 4), round(ms, 4))
        )
    return rows


def cheapest_at_recall(rows: Iterable[SweepRow], target: float = 0.95) -> SweepRow | None:
    """The fastest HNSW configuration whose recall@10 reaches `target` (None if none does)."""
    good = [r for r in rows if r.index == "HNSW" and r.recall_at_10 >= target]
    return min(good, key=lambda r: r.ms_per_query) if good else None


def plot_recall_vs_latency(rows: Sequence[SweepRow], title: str = "", recall: str = "recall_at_10"):
    """Recall vs ms/query: a line per (M, ef_construction) over ef_search; exact as a star."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = sorted({(r.M, r.ef_construction) for r in rows if r.index == "HNSW"})
    for m, ef_construction in groups:
        line = sorted(select(rows, M=m, ef_construction=ef_construction), key=lambda r: r.ef_search)
        ax.plot(
            [r.ms_per_query for r in line],
            [getattr(r, recall) for r in line],
            marker="o",
            markersize=3,
            label=f"M={m}, efC={ef_construction}",
        )
    for r in rows:
        if r.index != "HNSW":
            ax.scatter([r.ms_per_query], [getattr(r, recall)], marker="*", s=150, c="black")
            ax.annotate(
                r.index,
                (r.ms_per_query, getattr(r, recall)),
                textcoords="offset points",
                xytext=(-10, -14),
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_xlabel("ms per query (log scale, 1 thread)")
    ax.set_ylabel(recall.replace("_at_", "@"))
    ax.set_title(title or "Recall vs latency (points along a line: growing ef_search)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_index_cost(rows: Sequence[SweepRow], title: str = ""):
    """Memory and build time against M, one line per ef_construction; exact memory dashed."""
    import matplotlib.pyplot as plt

    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 4))
    hnsw = [r for r in rows if r.index == "HNSW"]
    for ef_construction in sorted({r.ef_construction for r in hnsw}):
        per_m = {r.M: r for r in hnsw if r.ef_construction == ef_construction}
        ms = sorted(per_m)
        label = f"efC={ef_construction}"
        mem_ax.plot(ms, [per_m[m].memory_mb for m in ms], marker="o", label=label)
        time_ax.plot(ms, [per_m[m].build_s for m in ms], marker="o", label=label)
    for r in rows:
        if r.index != "HNSW":
            mem_ax.axhline(r.memory_mb, linestyle="--", color="gray", label=f"{r.index}")
    for ax, ylabel in ((mem_ax, "index size (MB)"), (time_ax, "build time (s, 1 thread)")):
        ax.set_xlabel("M (links per node)")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    mem_ax.set_title("Memory vs M")
    time_ax.set_title("Indexing time vs M")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_exact_scaling(rows: Sequence[ScalingRow]):
    """Exact search: ms/query and memory against the number of vectors."""
    import matplotlib.pyplot as plt

    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(10, 4))
    n = [r.n_vectors for r in rows]
    time_ax.plot(n, [r.ms_per_query for r in rows], marker="o")
    mem_ax.plot(n, [r.memory_mb for r in rows], marker="o")
    time_ax.set_ylabel("ms per query (1 thread)")
    mem_ax.set_ylabel("index size (MB)")
    for ax in (time_ax, mem_ax):
        ax.set_xlabel("number of vectors")
        ax.grid(True, alpha=0.3)
    time_ax.set_title("Exact search time vs size")
    mem_ax.set_title("Exact index memory vs size")
    fig.tight_layout()
    plt.close(fig)
    return fig
