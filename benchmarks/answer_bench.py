"""Answer-evaluation overheads: reference metrics per 1,000 answers, and a judge run.

Targets (issue 11): the reference metrics of 1,000 answers add at most 10 s to answer
generation; a 1,000-question judge run (the three triad calls per question) against the
loopback OpenAI-compatible server answering in 200 ms finishes within 60 s, with at least 8
calls in flight. Texts are synthetic English, Korean and Chinese sentences, so the section
needs no shared data.

The first target is measured end to end (`bench_answer_pipeline`): 1,000 questions answered
over the Markdown samples by the loopback LLM (200 ms per reply, `eval answers`' default 16
calls in flight), once without scoring and once scored as `eval answers` scores them; the
difference is what the metrics add. `bench_reference_metrics` times the metrics alone, with
no generation to overlap.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.evaluation.answers import (
    ReferenceScorer,
    add_similarity,
    aggregate,
    answer_row,
    generate_answers,
    score_lexical,
)
from rag_app.evaluation.datasets import load_dataset
from rag_app.evaluation.judge import judge_rows
from rag_app.settings import load_settings
from tests.support.openai_server import running_openai_server

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"

WORDS = {
    "en": "the river flows through seoul and the capital holds many old palaces near mountains",
    "ko": "서울은 대한민국의 수도이다 한강이 도시를 가로질러 흐르고 궁궐과 산이 많다",
    "zh": "首尔是韩国的首都汉江流经城市市内有许多古老的宫殿和山",
}
TRIAD_RULES = [
    {"contains": "supported by the context", "reply": "Supported.\n[RESULT] YES"},
    {"contains": "whether a response is relevant", "reply": "On topic.\n[RESULT] 2"},
    {"contains": "retrieved context is relevant", "reply": "Partly.\n[RESULT] 3"},
]


def _sentence(rng: random.Random, language: str, length: int) -> str:
    if language == "zh":
        return "".join(rng.choice(WORDS["zh"]) for _ in range(length * 2))
    return " ".join(rng.choice(WORDS[language].split()) for _ in range(length))


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        language = ("en", "ko", "zh")[i % 3]
        rows.append(
            {
                "id": f"q{i}",
                "question": _sentence(rng, language, 8),
                "answer": _sentence(rng, language, 25) + " [1]",
                "references": [_sentence(rng, language, 6)],
                "contexts": [_sentence(rng, language, 60)],
            }
        )
    return rows


def bench_reference_metrics(embedder: Embedder, n: int = 1000) -> dict[str, Any]:
    """Seconds to score n answers: the lexical metrics, and the embedding similarity.

    The similarity embeds each answer and reference once (no cache here), which is what a
    first run pays; the embedding cache makes a re-run's similarity nearly free.
    """
    rows = synthetic_rows(n)
    began = time.perf_counter()
    scored = score_lexical(rows)
    metrics = aggregate(rows)
    lexical = time.perf_counter() - began
    embedded_before = embedder.texts_embedded
    began, cpu = time.perf_counter(), time.process_time()
    add_similarity(scored, embedder)
    similarity, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "answers": n,
        "lexical_s": round(lexical, 2),
        "similarity_s": round(similarity, 2),
        "similarity_cpu_s": round(cpu, 2),
        "seconds": round(lexical + similarity, 2),
        "texts_embedded": embedder.texts_embedded - embedded_before,
        "f1": metrics["f1"],
        "rouge1": metrics["rouge1"],
    }


def bench_answer_pipeline(
    embedder: Embedder, n: int = 1000, delay_ms: int = 200, concurrency: int = 16
) -> dict[str, Any]:
    """Seconds to answer n questions through the loopback LLM, unscored and scored.

    The LLM echoes the end of its prompt (the question), so every answer differs. Both runs
    use the same embedder without a cache, so the scored run embeds every answer and
    reference, as a first run does.
    """
    rows = synthetic_rows(n, seed=2)
    with tempfile.TemporaryDirectory(prefix="answer-pipeline-") as tmp:
        dataset = Path(tmp) / "questions.jsonl"
        lines = [{"question": r["question"], "reference": r["references"]} for r in rows]
        dataset.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
        seconds: dict[str, float] = {}
        with running_openai_server(delay_ms=delay_ms, echo_tail=True) as url:
            for kind in ("unscored", "scored"):
                settings = load_settings(
                    llm="openai:gpt-4o-mini",
                    openai_api_key="sk-bench",
                    openai_base_url=url,
                    data_dir=Path(tmp) / kind,
                )
                scored_rows, seconds[kind] = _answer_all(
                    settings, embedder, dataset, concurrency, kind
                )
    metrics = aggregate(scored_rows)
    return {
        "answers": n,
        "reply_delay_ms": delay_ms,
        "concurrency": concurrency,
        "unscored_s": round(seconds["unscored"], 2),
        "scored_s": round(seconds["scored"], 2),
        "added_s": round(seconds["scored"] - seconds["unscored"], 2),
        "scored_answers": metrics["n_with_reference"],
        "semantic_similarity": metrics["semantic_similarity"],
    }


def _answer_all(
    settings: Any, embedder: Embedder, dataset: Path, concurrency: int, kind: str
) -> tuple[list[dict[str, Any]], float]:
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([SAMPLES])
        items = load_dataset(dataset).items
        pending = [(answer_row(item), item) for item in items]
        began = time.perf_counter()
        if kind == "scored":
            with ReferenceScorer(embedder) as scorer:
                generate_answers(app, pending, concurrency, scorer.add)
                scorer.finish()
        else:
            generate_answers(app, pending, concurrency, lambda rows: None)
        return [row for row, _ in pending], time.perf_counter() - began


def bench_judge(n: int = 1000, delay_ms: int = 200, concurrency: int = 16) -> dict[str, Any]:
    """A full triad run over n questions against the loopback server delaying each reply."""
    rows = synthetic_rows(n, seed=1)
    with tempfile.TemporaryDirectory(prefix="judge-bench-") as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps(TRIAD_RULES), encoding="utf-8")
        with running_openai_server(script_path=script, delay_ms=delay_ms) as url:
            settings = load_settings(
                openai_api_key="sk-bench", openai_base_url=url, data_dir=Path(tmp) / "data"
            )
            began, cpu = time.perf_counter(), time.process_time()
            summary = judge_rows(settings, rows, "openai:gpt-4o-mini", concurrency)
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    calls = summary["judge_calls"]
    return {
        "questions": n,
        "calls": calls,
        "reply_delay_ms": delay_ms,
        "concurrency": concurrency,
        "peak_in_flight": summary["judge_peak_in_flight"],
        "failures": summary["judge_failures"],
        "seconds": round(seconds, 2),
        "client_cpu_s": round(cpu, 2),
        "serial_seconds": round(calls * delay_ms / 1000, 1),
        "ideal_seconds": round(calls * delay_ms / 1000 / concurrency, 1),
    }
