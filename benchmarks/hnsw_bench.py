"""HNSW recall@10 against exact search on real embeddings (XQuAD sentences and questions).

Why: recall depends on the data. Uniform random 384-d vectors are HNSW's worst case and say
little about a RAG store, where embeddings cluster by topic; the synthetic store-scale data is
clustered for that reason, and this section checks the configured RAG_HNSW_* parameters on
real MiniLM embeddings: every sentence of the XQuAD English contexts is a stored vector and
the XQuAD questions are the queries. The stores are written and queried exactly as in the
store-scale section (memory-HNSW and Chroma, through `RagApp.retrieve`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import exact_top_k
from benchmarks.query_bench import bench_backend, row_ids
from rag_app.embeddings.models import Embedder
from rag_app.ingestion.loaders import read_squad

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE_CHARS = 20


def sentences_and_questions(path: Path, questions: int) -> tuple[list[str], list[str]]:
    documents, asked = read_squad(path)
    sentences = [
        s
        for d in documents
        for s in _SENTENCE_END.split(d.text)
        if len(s.strip()) >= MIN_SENTENCE_CHARS
    ]
    return sentences, [q.question for q in asked[:: max(1, len(asked) // questions)]][:questions]


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def bench_real_recall(
    embedder: Embedder, path: Path, backends: list[str], questions: int, workdir: Path
) -> dict[str, Any]:
    sentences, asked = sentences_and_questions(path, questions)
    vectors = _unit(embedder.embed_texts(sentences))
    probes = _unit(np.array([embedder.embed_query(q) for q in asked]))
    truth = exact_top_k(vectors, probes)
    ids = row_ids(len(sentences))
    probe_lists = [p.tolist() for p in probes]
    results = {
        name: bench_backend(name, vectors, probe_lists, truth, ids, workdir) for name in backends
    }
    return {
        "vectors": len(sentences),
        "queries": len(asked),
        "recall_at_10": {name: r["recall_at_10"] for name, r in results.items()},
    }
