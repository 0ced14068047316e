"""Embedding models against MiniLM in one run: ingest chunks/s, query embedding and retrieve p50.

Why: the default model is chosen by quality (`rag-app eval --embed-model ...`) under speed
limits stated as ratios to MiniLM, the old default: ingest throughput >= 0.4x and end-to-end
retrieve p50 (query embedding included) <= 1.5x. Each model ingests the same mixed corpus
(XQuAD en and zh articles, KLUE sentences) into a fresh data directory, so its embedding cache
is cold and every chunk is embedded with the model's own chunk size; then the same questions
are retrieved (hybrid, memory store), the models interleaved per question so that load from
other processes lands on all of them alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llama_index.core import Document

from benchmarks.common import paired_latencies, percentiles_ms, ratio, timed
from rag_app.app import RagApp
from rag_app.ingestion.loaders import read_squad
from rag_app.settings import load_settings

MODELS = ["minilm", "e5", "use"]
BASELINE = "minilm"


def mixed_corpus(
    xquad: list[Path], klue: Path | None, articles: int, sentences: int
) -> tuple[list[Document], list[str]]:
    """`articles` XQuAD articles per language and `sentences` KLUE sentences, with questions."""
    documents: list[Document] = []
    questions: list[str] = []
    for path in xquad:
        found, asked = read_squad(path)
        kept = found[:articles]
        ids = {d.doc_id for d in kept}
        documents += kept
        questions += [q.question for q in asked if q.doc_id in ids][:20]
    if klue is not None and klue.exists():
        pairs = json.loads(klue.read_text(encoding="utf-8"))[:sentences]
        documents += [Document(id_=f"klue-{i}", text=p["sentence2"]) for i, p in enumerate(pairs)]
        questions += [p["sentence1"] for p in pairs[:20]]
    return documents, questions


def bench_models(
    documents: list[Document], questions: list[str], workdir: Path, models: list[str] = MODELS
) -> dict[str, Any]:
    apps: dict[str, RagApp] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for model in models:
            settings = load_settings(data_dir=workdir / f"models-{model}", embed_model=model)
            load_s = timed(lambda s=settings, m=model: apps.update({m: RagApp(s)}))
            app = apps[model]
            report = app.ingest_documents(documents)
            chunks = app.backend.count()
            results[model] = {
                "model_id": app.embedder.model_id,
                "load_s": round(load_s, 2),
                "chunks": chunks,
                "chars_per_chunk": round(sum(len(d.text) for d in documents) / chunks, 1),
                "ingest_s": round(report.seconds, 2),
                "chunks_per_s": round(chunks / report.seconds, 2),
                "docs_per_s": round(len(documents) / report.seconds, 2),
            }
        embed = paired_latencies({m: apps[m].embedder.embed_query for m in models}, questions)
        retrieve = paired_latencies({m: apps[m].retrieve for m in models}, questions)
    finally:
        for app in apps.values():
            app.backend.drop()
            app.close()
    for model in models:
        results[model]["query_embedding"] = percentiles_ms(embed[model])
        results[model]["retrieve"] = percentiles_ms(retrieve[model])
    if BASELINE in results:
        base = results[BASELINE]
        for row in results.values():
            for key in ("chunks_per_s", "docs_per_s"):
                row[f"{key}_vs_minilm"] = ratio(row[key], base[key])
            for key in ("query_embedding", "retrieve"):
                row[f"{key}_p50_vs_minilm"] = ratio(row[key]["p50_ms"], base[key]["p50_ms"])
    return {"documents": len(documents), "questions": len(questions), "models": results}
