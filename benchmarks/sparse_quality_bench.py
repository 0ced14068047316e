"""Hybrid retrieval quality with BM25 in Pinecone against BM25 on the client, one dense index.

Why (issue 14 part 1): the keyword half moves into Pinecone only if quality holds, within 0.01
hit@1 of today's client-side hybrid on XQuAD en, XQuAD zh and KLUE-STS pairs. Per dataset
one namespace of the local Pinecone server is ingested once, with the default embedding
model, by an app with PINECONE_SPARSE_INDEX (so the dense index and the sparse index are
written by the real ingest path). Then every question is asked of:

* `client`: RAG_RETRIEVER=hybrid without PINECONE_SPARSE_INDEX: the local BM25 index, synced
  from that same dense namespace, fused with the dense list (today's behaviour);
* `sparse`: the app with PINECONE_SPARSE_INDEX: BM25 scored by the sparse index, same fusion;
* `one-index alpha=A`: one dotproduct index holding each chunk's dense values and its BM25
  sparse values together (a copy of the two indexes above), queried once with
  `A * dense + (1 - A) * sparse`, Pinecone's documented sparse-dense query (no client fusion);
* `dense`: the dense list alone, for reference.

Queries are embedded once (memoised) and shared by every variant. Scores: hit@1 and hit@5
(XQuAD: the chunk covers a gold answer span; KLUE: the partner sentence),
`rag_app.evaluation.retrieval`'s judges.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.vector_stores.utils import metadata_dict_to_node
from pinecone import ServerlessSpec

from benchmarks.common import KLUE, XQUAD_EN, XQUAD_ZH, pinecone_local
from rag_app.answers.types import Source
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.evaluation.retrieval import first_hit_rank, rank_of, read_pairs
from rag_app.ingestion.loaders import read_squad
from rag_app.settings import load_settings
from rag_app.stores.base import batched
from rag_app.stores.pinecone import split_upserts

DENSE_INDEX = "quality-dense"
SPARSE_INDEX = "quality-bm25"
ONE_INDEX = "quality-one"
#: The chunk embeddings are cached here, so a re-run embeds only the questions.
MODEL_CACHE = Path(__file__).resolve().parent / "results" / "cache" / "sparse-quality"
ALPHAS = (0.5, 0.9, 0.98)
TOP_K = 10
FETCH = 100

Judge = Callable[[int, list[Source]], int | None]


def squad_task(path: Path, limit: int) -> tuple[list[Document], list[str], Judge]:
    documents, questions = read_squad(path)
    if limit < len(questions):
        questions = random.Random(0).sample(questions, limit)
    return (
        documents,
        [q.question for q in questions],
        lambda i, sources: first_hit_rank(sources, questions[i]),
    )


def pairs_task(path: Path, limit: int) -> tuple[list[Document], list[str], Judge]:
    documents, queries = read_pairs(path)
    if limit < len(queries):
        queries = random.Random(0).sample(queries, limit)
    return documents, [q for q, _ in queries], lambda i, sources: rank_of(sources, queries[i][1])


TASKS = {
    "xquad.en": lambda limit: squad_task(XQUAD_EN, limit),
    "xquad.zh": lambda limit: squad_task(XQUAD_ZH, limit),
    "klue": lambda limit: pairs_task(KLUE, limit),
}


def copy_to_one_index(app: RagApp, collection: str) -> Any:
    """A dotproduct index holding the chunks' dense and sparse values in one record each."""
    client = app.backend.client
    if not client.has_index(ONE_INDEX):
        client.create_index(
            name=ONE_INDEX,
            dimension=app.embedder.dimension,
            metric="dotproduct",
            spec=ServerlessSpec(cloud="aws", region="us-east-1"),
        )
    host = "http://" + client.describe_index(ONE_INDEX).host.split("://", 1)[-1]
    one = client.Index(host=host)
    dense, keyword = app.backend.index, app.keyword
    ids = app.backend.list_chunk_ids()
    for part in batched(ids, FETCH):
        values = dense.fetch(ids=list(part), namespace=app.backend.namespace).vectors
        sparse = keyword.index.fetch(ids=list(part), namespace=keyword.namespace).vectors
        records = [
            {
                "id": i,
                "values": list(values[i].values),
                "sparse_values": {
                    "indices": list(sparse[i].sparse_values.indices),
                    "values": list(sparse[i].sparse_values.values),
                },
                "metadata": dict(values[i].metadata),
            }
            for i in part
            if i in sparse
        ]
        for request in split_upserts(records):
            one.upsert(vectors=request, namespace=collection, show_progress=False)
    return one


def one_index_sources(
    one: Any, app: RagApp, namespace: str, question: str, alpha: float
) -> list[Source]:
    dense = [alpha * v for v in app.embedder.embed_query(question)]
    sparse = app.keyword.query_vector(question)
    query: dict[str, Any] = {"vector": dense}
    if sparse:
        query["sparse_vector"] = {
            "indices": sparse["indices"],
            "values": [(1 - alpha) * v for v in sparse["values"]],
        }
    found = one.query(**query, top_k=TOP_K, namespace=namespace, include_metadata=True)
    sources = []
    for number, match in enumerate(found.matches, start=1):
        node = metadata_dict_to_node(dict(match.metadata))
        sources.append(
            Source(
                number=number,
                doc_id=str(node.metadata.get("doc_id") or node.ref_doc_id or ""),
                score=float(match.score),
                text=node.get_content(),
                start_char=node.start_char_idx,
                end_char=node.end_char_idx,
            )
        )
    return sources


def rates(ranks: Sequence[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "hit@1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "hit@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4),
    }


def bench_dataset(
    name: str, limit: int, overrides: dict[str, Any], embedder: Embedder, workdir: Path
) -> dict[str, Any]:
    documents, questions, judge = TASKS[name](limit)
    collection = name.replace(".", "-")
    base = {
        **overrides,
        "data_dir": workdir / collection,
        "pinecone_index": DENSE_INDEX,
        "retriever": "hybrid",
        "reranker": "none",
    }
    sparse_app = RagApp(
        load_settings(**base, pinecone_sparse_index=SPARSE_INDEX), collection, embedder
    )
    sparse_app.ingest_documents(documents)
    client_app = RagApp(load_settings(**base), collection, embedder)
    one = copy_to_one_index(sparse_app, collection)
    variants: dict[str, Callable[[str], list[Source]]] = {
        "client": lambda q: client_app.retrieve(q, TOP_K),
        "sparse": lambda q: sparse_app.retrieve(q, TOP_K),
        "dense": lambda q: _dense(sparse_app, q),
    }
    for alpha in ALPHAS:
        variants[f"one-index alpha={alpha}"] = lambda q, a=alpha: one_index_sources(
            one, sparse_app, collection, q, a
        )
    ranks: dict[str, list[int | None]] = {v: [] for v in variants}
    for number, question in enumerate(questions):
        for variant, ask in variants.items():
            ranks[variant].append(judge(number, ask(question)))
    client_app.close()
    sparse_app.close()
    result = {v: rates(r) for v, r in ranks.items()}
    return {
        "questions": len(questions),
        "documents": len(documents),
        "chunks": sparse_app.backend.count(),
        "variants": result,
        "sparse_minus_client_hit1": round(result["sparse"]["hit@1"] - result["client"]["hit@1"], 4),
        "changed_questions": sum(
            1 for a, b in zip(ranks["sparse"], ranks["client"], strict=True) if (a == 1) != (b == 1)
        ),
    }


def _dense(app: RagApp, question: str) -> list[Source]:
    app.retriever.mode = "dense"
    try:
        return app.retrieve(question, TOP_K)
    finally:
        app.retriever.mode = "hybrid"


def bench_sparse_quality(limit: int, workdir: Path) -> dict[str, Any]:
    """Each dataset whose file exists, at most `limit` questions each (sampled, seed 0)."""
    workdir.mkdir(parents=True, exist_ok=True)
    embedder = build_embedder(load_settings(data_dir=MODEL_CACHE))
    embedder.embed_query = functools.lru_cache(maxsize=None)(embedder.embed_query)  # type: ignore[method-assign]
    present = {"xquad.en": XQUAD_EN, "xquad.zh": XQUAD_ZH, "klue": KLUE}
    results: dict[str, Any] = {"limit": limit, "model": embedder.model_id, "datasets": {}}
    with pinecone_local(workdir) as overrides:
        for name, path in present.items():
            if path.exists():
                print(f"[bench]   sparse quality {name}", flush=True)
                found = bench_dataset(name, limit, overrides, embedder, workdir)
                print(f"[bench]   {name}: {json.dumps(found)}", flush=True)
                results["datasets"][name] = found
    return results
