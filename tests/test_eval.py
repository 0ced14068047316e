"""The eval contract: JSON keys, the span-hit rule, isolation, and real-data quality floors."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from rag_app.answers.types import Source
from rag_app.embeddings.models import Embedder
from rag_app.evaluation.retrieval import evaluate_pairs, evaluate_squad, is_hit
from rag_app.ingestion.loaders import SquadQuestion
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command, require_shared

EVAL_KEYS = {
    "hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "n_questions", "n_docs", "n_chunks",
    "chunk_tokens_mean", "ingest_s", "query_p50_ms", "query_p95_ms", "store", "embed_model",
    "retriever",
}  # fmt: skip
ARTICLES = {
    "Seoul": "Seoul is the capital of South Korea. The Han River flows through Seoul.",
    "HNSW": "HNSW builds a layered graph. The parameter M sets the number of links per node.",
    "서울": "서울은 대한민국의 수도이다. 한강이 서울을 가로질러 흐른다.",
}
QUESTIONS = [
    ("Which river flows through Seoul?", "Seoul", "Han River"),
    ("What does M set in HNSW?", "HNSW", "the number of links per node"),
    ("서울을 가로질러 흐르는 강은?", "서울", "한강"),
]


def write_squad(path: Path) -> Path:
    data = []
    for title, context in ARTICLES.items():
        qas = [
            {"question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for q, t, a in QUESTIONS
            if t == title
        ]
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False))
    return path


def source(doc_id: str, start: int, end: int) -> Source:
    return Source(1, doc_id, 1.0, "", start, end)


def test_hit_needs_the_gold_article_and_a_covering_range() -> None:
    question = SquadQuestion("q", "gold", ((10, 20),))
    assert is_hit(source("gold", 0, 20), question)
    assert is_hit(source("gold", 10, 30), question)
    assert not is_hit(source("gold", 11, 30), question)
    assert not is_hit(source("gold", 0, 19), question)
    assert not is_hit(source("other", 0, 100), question)


def test_squad_eval_reports_every_key_and_cleans_up(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    settings = make_settings()
    result = evaluate_squad(settings, write_squad(tmp_path / "mini.json"), embedder=embedder)
    assert set(result) == EVAL_KEYS
    assert result["n_questions"] == 3 and result["n_docs"] == 3
    assert result["hit@1"] == 1.0
    assert (result["store"], result["retriever"]) == ("memory", "hybrid")
    assert not list((settings.data_dir / "memory").glob("eval-*"))


def test_eval_cli_prints_exactly_one_json_object(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = write_squad(tmp_path / "mini.json")
    settings = make_settings(retriever="keyword")
    result = subprocess.run(
        rag_app_command("eval", "squad", str(path), "--json", "--limit", "2", "--seed", "1"),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == EVAL_KEYS
    assert payload["n_questions"] == 2 and payload["retriever"] == "keyword"
    (record_path,) = (settings.data_dir / "runs").glob("*-squad-*.json")
    record = json.loads(record_path.read_text())
    assert record["metrics"] == payload and record["params"]["limit"] == 2
    assert [set(row) for row in record["rows"]] == [{"id", "question", "gold", "rank"}] * 2
    assert f"run record: {record_path}" in result.stderr


def test_klue_pairs_korean_retrieval_floor(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    path = require_shared("data/klue/klue-sts-v1.1_dev.json")
    result = evaluate_pairs(make_settings(), path, embedder=embedder)
    assert result["n_queries"] == 110
    assert result["recall@5"] >= 0.9, result


def test_xquad_english_hybrid_floor(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    path = require_shared("data/xquad/xquad.en.json")
    result = evaluate_squad(make_settings(), path, limit=200, seed=3, embedder=embedder)
    assert result["n_docs"] == 48
    assert result["hit@5"] >= 0.95, result
    assert result["chunk_tokens_mean"] <= 512


def test_eval_cli_compares_models_and_retrievers_in_one_run(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = write_squad(tmp_path / "mini.json")
    args = ["--embed-model", "use", "--embed-model", "e5", "--retriever", "dense"]
    result = subprocess.run(
        rag_app_command("eval", "squad", str(path), *args, "--retriever", "hybrid", "--json"),
        env=cli_env(make_settings()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [(r["embed_model"].split(":")[0], r["retriever"]) for r in runs] == [
        ("use", "dense"), ("use", "hybrid"), ("e5", "dense"), ("e5", "hybrid"),
    ]  # fmt: skip
    assert all(set(r) == EVAL_KEYS and r["hit@1"] == 1.0 for r in runs)
    table = subprocess.run(
        rag_app_command("eval", "squad", str(path), *args),
        env=cli_env(make_settings()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if line.startswith("embed_model"))
    assert "use:universal-sentence-encoder-multilingual-3" in header
    assert "e5:multilingual-e5-small-q4" in header
