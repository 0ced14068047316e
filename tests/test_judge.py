"""LLM-as-judge and pairwise comparison over the loopback OpenAI-compatible server.

The server's scripted rules stand in for a judge model: fixed verdicts, malformed verdicts,
429s, and replies slower than the client's timeout. Nothing is mocked inside the process: the
OpenAI client, LlamaIndex's evaluators and the retries all run over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag_app.evaluation.judge import judge_rows, parse_score, parse_yes_no
from rag_app.evaluation.pairwise import combine, compare_runs, order_verdict, summarize
from rag_app.settings import load_settings
from tests.support.openai_server import running_openai_server

JUDGE = "openai:gpt-4o-mini"
TRIAD_RULES = [
    {"contains": "MALFORMED", "reply": "I would rather not say."},
    {"contains": "SLOW", "reply": "late\n[RESULT] 2", "delay_ms": 3000},
    {"contains": "supported by the context", "reply": "Supported.\n[RESULT] YES"},
    {"contains": "whether a response is relevant", "reply": "On topic.\n[RESULT] 2"},
    {"contains": "retrieved context is relevant", "reply": "Partly.\n[RESULT] 3"},
]


def script(tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def settings_for(url: str, tmp_path: Path, **overrides: Any):
    return load_settings(
        openai_api_key="sk-test", openai_base_url=url, data_dir=tmp_path / "data", **overrides
    )


def logged(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_parsers_accept_only_strict_verdicts() -> None:
    assert parse_score(2)("reasons\n[RESULT] 2") == (2.0, "reasons")
    assert parse_score(2)("[RESULT] 7") == (None, None)
    assert parse_score(4)("no verdict at all") == (None, None)
    assert parse_yes_no("yes, I think so") is None  # LlamaIndex would count this as YES
    assert parse_yes_no("...\n[RESULT] NO") == 0.0


def test_triad_scores_counts_unparsable_and_tokens(tmp_path: Path) -> None:
    rows = [
        {"question": "Who bit the man?", "answer": "The dog.", "contexts": ["The dog bit it."]},
        {"question": "서울은 어디인가요?", "answer": "MALFORMED", "contexts": ["서울은 수도다."]},
        {"question": "No contexts here", "answer": "An answer.", "contexts": None},
    ]
    log = tmp_path / "log.jsonl"
    with running_openai_server(script_path=script(tmp_path, TRIAD_RULES), log_path=log) as url:
        summary = judge_rows(settings_for(url, tmp_path), rows, JUDGE, concurrency=4)
    assert rows[0]["judge"] == {
        "answer_relevancy": 1.0,
        "faithfulness": 1.0,
        "context_relevancy": 0.75,
    }
    assert rows[1]["judge_errors"] == {
        "answer_relevancy": "unparsable verdict",
        "faithfulness": "unparsable verdict",
    }
    assert summary["judge_calls"] == 7
    assert summary["judge_failures"] == 2
    assert summary["judge_failure_reasons"] == {"unparsable verdict": 2}
    assert summary["judge_rows_without_contexts"] == 1
    assert summary["faithfulness"] == 1.0 and summary["answer_relevancy"] == 1.0
    requests = logged(log)
    assert summary["judge_tokens"]["requests"] == len(requests) == 7
    assert summary["judge_tokens"]["total_tokens"] > 0
    assert any("서울은 어디인가요?" in json.dumps(r["body"], ensure_ascii=False) for r in requests)


def test_judge_retries_429_and_counts_timeouts(tmp_path: Path) -> None:
    rules = [{"contains": "whether a response", "status": 429, "times": 2}, *TRIAD_RULES]
    rows = [
        {"question": "q1", "answer": "fine", "contexts": None},
        {"question": "q2", "answer": "SLOW", "contexts": None},
    ]
    log = tmp_path / "log.jsonl"
    with running_openai_server(script_path=script(tmp_path, rules), log_path=log) as url:
        settings = settings_for(url, tmp_path, judge=JUDGE, judge_timeout=0.5)
        summary = judge_rows(settings, rows, concurrency=1, retries=2)
    statuses = [r["status"] for r in logged(log)]
    assert statuses.count(429) == 2
    assert rows[0]["judge"]["answer_relevancy"] == 1.0
    assert rows[1]["judge_errors"] == {"answer_relevancy": "error: APITimeoutError"}
    assert summary["judge_failures"] == 1


def test_unusable_judge_spec_is_one_clear_error(tmp_path: Path) -> None:
    from rag_app.errors import ConfigError

    with pytest.raises(ConfigError, match="RAG_JUDGE=openai:<model>"):
        judge_rows(load_settings(data_dir=tmp_path), [], "gpt-4")


def test_position_swap_logic() -> None:
    assert order_verdict("first", a_first=True) == "A"
    assert order_verdict("first", a_first=False) == "B"
    assert order_verdict("second", a_first=False) == "A"
    assert order_verdict("tie", a_first=False) == "tie"
    assert combine("A", "A") == "A"
    assert combine("A", "tie") == "A" and combine("tie", "B") == "B"
    assert combine("A", "B") == "tie"  # the orders contradict: position bias, no winner
    assert combine(None, "A") is None
    rows = [
        {"a_first": "A", "b_first": "A", "verdict": "A", "errors": []},
        {"a_first": "A", "b_first": "B", "verdict": "tie", "errors": []},
        {"a_first": None, "b_first": "B", "verdict": None, "errors": ["unparsable verdict"]},
    ]
    summary = summarize(rows, "a", "b", JUDGE, {})
    assert (summary["a_wins"], summary["ties"], summary["b_wins"]) == (1, 1, 0)
    assert summary["order_agreement"] == 0.5
    assert summary["judge_failures"] == 1


def run(run_id: str, answers: dict[str, str], turns: bool = False) -> dict[str, Any]:
    rows = []
    for row_id, answer in answers.items():
        row = {"id": row_id, "question": f"question {row_id}", "answer": answer}
        if turns:
            row["turns"] = [{"question": "first question", "answer": "first answer"}]
        rows.append(row)
    return {"id": run_id, "rows": rows}


def test_compare_asks_both_orders_and_reports_agreement(tmp_path: Path) -> None:
    # A consistent judge prefers "good" in either position; a biased one always says [[A]].
    rules = [
        {"contains": "A's Answer]\nTurn 1: first answer\nTurn 2: good", "reply": "[[A]]"},
        {"contains": "B's Answer]\nTurn 1: first answer\nTurn 2: good", "reply": "[[B]]"},
        {"contains": "question biased", "reply": "The first one. [[A]]"},
        {"contains": "question broken", "reply": "no verdict"},
    ]
    run_a = run("run-a", {"x": "good", "biased": "one", "broken": "p"}, turns=True)
    run_b = run("run-b", {"x": "bad", "biased": "two", "broken": "q", "extra": "r"}, turns=True)
    log = tmp_path / "log.jsonl"
    with running_openai_server(script_path=script(tmp_path, rules), log_path=log) as url:
        result = compare_runs(settings_for(url, tmp_path), run_a, run_b, JUDGE, concurrency=4)
    by_id = {row["id"]: row for row in result["rows"]}
    assert by_id["x"]["verdict"] == "A" and by_id["x"]["a_first"] == by_id["x"]["b_first"]
    assert (by_id["biased"]["a_first"], by_id["biased"]["b_first"]) == ("A", "B")
    assert by_id["biased"]["verdict"] == "tie"
    assert by_id["broken"]["verdict"] is None
    assert by_id["broken"]["errors"] == ["unparsable verdict", "unparsable verdict"]
    assert (result["a_wins"], result["ties"], result["b_wins"]) == (1, 1, 0)
    assert result["order_agreement"] == 0.5
    assert result["n_questions"] == 3 and result["judge_calls"] == 6
    prompts = [json.dumps(r["body"]["messages"]) for r in logged(log)]
    assert len(prompts) == 6
    assert all("Turn 2 (judge this turn)" in p for p in prompts)
