"""`eval answers` end to end, run records and their diff, and W&B offline logging."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core.embeddings import MockEmbedding

from rag_app import cli
from rag_app.answers.answerers import OpenAIAnswerer
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.errors import RagAppError
from rag_app.evaluation.answers import (
    SCORE_BATCH,
    ReferenceScorer,
    evaluate_answers,
    generate_answers,
)
from rag_app.evaluation.datasets import DatasetError, load_dataset
from rag_app.evaluation.runs import diff_runs, list_runs, load_run, write_run
from rag_app.settings import Settings
from tests.support.openai_server import running_openai_server
from tests.test_eval import write_squad

GIVEN = [
    {
        "id": "en",
        "question": "Who bit the man?",
        "reference": "The dog bit the man.",
        "answer": "The dog bit the man. [1]",
        "contexts": ["The dog bit the man yesterday."],
    },
    {"id": "ko", "question": "서울은?", "reference": ["서울은 한국의 수도이다"], "answer": "서울"},
    {
        "id": "mt",
        "turns": ["What is HNSW?", {"question": "And M?", "answer": "Links per node."}],
        "reference": "The number of links per node.",
    },
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return path


def test_jsonl_items_turns_and_bad_lines(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path / "q.jsonl", GIVEN))
    multi = dataset.items[2]
    assert (multi.question, multi.answer, multi.references) == (
        "And M?",
        "Links per node.",
        ["The number of links per node."],
    )
    assert [t.question for t in multi.turns] == ["What is HNSW?"]
    assert len(load_dataset(dataset.path, limit=2, seed=1).items) == 2
    (tmp_path / "bad.jsonl").write_text('{"question": "ok"}\n{"answer": "no question"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: needs a non-empty \"question\""):
        load_dataset(tmp_path / "bad.jsonl")


def test_given_answers_are_scored_without_generating(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    run = evaluate_answers(
        make_settings(), write_jsonl(tmp_path / "q.jsonl", GIVEN), embedder=embedder
    )
    assert run.metrics["n_generated"] == 0 and run.metrics["llm"] == "given"
    by_id = {row["id"]: row for row in run.rows}
    assert by_id["en"]["metrics"]["exact_match"] == 1.0
    # characters: 2 of the 10 of 서울은한국의수도이다 -> P 1, R 0.2, F1 1/3 (KorQuAD rule)
    assert by_id["ko"]["metrics"]["f1"] == pytest.approx(1 / 3, abs=1e-4)
    assert by_id["mt"]["answer"] == "Links per node."
    assert run.metrics["perplexity"] is None
    assert "given in the dataset" in run.metrics["perplexity_absent"]


def test_generated_answers_perplexity_and_judge_over_openai(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    rules = [
        {"contains": "supported by the context", "reply": "ok\n[RESULT] YES"},
        {"contains": "whether a response is relevant", "reply": "ok\n[RESULT] 1"},
        {"contains": "retrieved context is relevant", "reply": "ok\n[RESULT] 4"},
    ]
    script = tmp_path / "script.json"
    script.write_text(json.dumps(rules))
    with running_openai_server(script_path=script, logprobs=True) as url:
        settings = make_settings(
            llm="openai:gpt-4o-mini",
            openai_api_key="sk-test",
            openai_base_url=url,
            judge="openai:gpt-4o-mini",
        )
        run = evaluate_answers(settings, write_squad(tmp_path / "mini.json"), embedder=embedder)
    assert run.metrics["n_generated"] == 3 and run.metrics["llm"] == "openai:gpt-4o-mini"
    assert all(row["answer"].startswith("ECHO: Sources:") for row in run.rows)
    assert all(row["contexts"] for row in run.rows)
    assert (run.metrics["faithfulness"], run.metrics["answer_relevancy"]) == (1.0, 0.5)
    assert run.metrics["context_relevancy"] == 1.0 and run.metrics["judge_failures"] == 0
    assert run.metrics["perplexity"] == pytest.approx(math.exp(0.5), abs=1e-4)
    assert "perplexity_absent" not in run.metrics


def test_an_llm_without_logprobs_says_so(make_settings: Callable[..., Settings]) -> None:
    with running_openai_server() as url:
        settings = make_settings(openai_api_key="sk-test", openai_base_url=url)
        generated = OpenAIAnswerer(settings, "gpt-4o-mini").generate("Why?", [])
    assert generated.text.startswith("ECHO: Sources:")
    assert generated.token_logprobs is None
    assert generated.why_no_logprobs == "the LLM (openai:gpt-4o-mini) returned no logprobs"


def test_answers_are_generated_concurrently_and_scored_as_they_arrive(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    questions = [{"question": f"What does HNSW parameter {i} control?"} for i in range(8)]
    pending = _rows(tmp_path, questions)
    in_flight, peak, unanswered_at_delivery = 0, 0, []
    with running_openai_server(delay_ms=400) as url:
        settings = make_settings(llm="openai:gpt-4o-mini", openai_api_key="k", openai_base_url=url)
        with RagApp(settings, embedder=embedder) as app:
            app.ingest_texts(["HNSW's ef_search bounds the candidate list of a query."])
            generate = app.answerer.generate

            def counting(*args: object) -> object:
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return generate(*args)
                finally:
                    in_flight -= 1

            app.answerer.generate = counting  # type: ignore[method-assign]

            def delivered(rows: list[dict]) -> None:
                unanswered_at_delivery.append(sum(r["answer"] is None for r, _ in pending))

            generate_answers(app, pending, 4, delivered)
    assert peak == 4
    assert unanswered_at_delivery[0] > 0, "the first answers reach the scorer while others wait"
    assert all(row["answer"].startswith("ECHO: ") for row, _ in pending)
    assert all(row["latency_ms"] >= 400 and row["sources"] for row, _ in pending)


def test_a_failing_llm_stops_the_answer_run_with_its_error(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    dataset = write_jsonl(tmp_path / "q.jsonl", [{"question": f"q{i}?"} for i in range(6)])
    with running_openai_server(fail_first=100, fail_status=401) as url:
        settings = make_settings(llm="openai:gpt-4o-mini", openai_api_key="k", openai_base_url=url)
        with RagApp(settings, embedder=embedder) as app:
            app.ingest_texts(["HNSW links each node to M neighbours."])
        with pytest.raises(RagAppError, match="answering with openai:gpt-4o-mini") as raised:
            evaluate_answers(settings, dataset, embedder=embedder, concurrency=3)
    assert "401" in str(raised.value) or "key" in str(raised.value).lower()


def test_a_failing_scoring_batch_raises_its_error_in_the_caller() -> None:
    class Broken(MockEmbedding):
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            raise RuntimeError("model crashed")

    rows = [{"answer": f"a{i}", "references": [f"r{i}"]} for i in range(SCORE_BATCH)]
    with ReferenceScorer(Embedder(Broken(embed_dim=4), "broken", 512, str.split)) as scorer:
        scorer.add(rows)  # a full batch: scored in the scoring thread
        with pytest.raises(RuntimeError, match="model crashed"):
            scorer.finish()


def _rows(tmp_path: Path, records: list[dict]) -> list[tuple[dict, object]]:
    dataset = load_dataset(write_jsonl(tmp_path / "pending.jsonl", records))
    return [({"id": i.id, "references": [], "answer": None}, i) for i in dataset.items]


def record(settings: Settings, dataset: Path, answers: dict[str, float]) -> Path:
    rows = [{"id": k, "question": k, "metrics": {"f1": v}} for k, v in answers.items()]
    f1 = sum(answers.values()) / len(answers)
    return write_run(settings, "answers", dataset, {"f1": f1, "llm": "x"}, rows)


def test_run_records_list_load_and_diff(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(openai_api_key="sk-secret-value", pinecone_api_key="pc-secret")
    dataset = write_jsonl(tmp_path / "q.jsonl", GIVEN)
    first = record(settings, dataset, {"a": 0.5, "b": 1.0})
    second = record(settings, dataset, {"a": 0.75, "b": 1.0, "c": 0.0})
    text = first.read_text()
    assert "sk-secret-value" not in text and "pc-secret" not in text
    saved = json.loads(text)
    assert saved["settings"]["OPENAI_API_KEY"] == "****"
    assert saved["dataset"]["sha256"] == load_dataset(dataset).sha256
    assert [r.path for r in list_runs(settings)] == [first, second]
    a, b = load_run(settings, saved["id"][:-2]), load_run(settings, second)
    diff = diff_runs(a, b)
    assert diff["same_dataset"]
    assert {"name": "f1", "a": 0.75, "b": 0.5833333333333334, "delta": -0.1667} in diff["metrics"]
    assert diff["changed_questions"] == [{"id": "a", "question": "a", "metrics.f1": [0.5, 0.75]}]
    assert diff["only_in_b"] == ["c"]


def test_cli_answers_runs_and_diff(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    first = write_jsonl(tmp_path / "one.jsonl", GIVEN[:2])
    assert cli.main(["eval", "answers", str(first), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["exact_match"] == 0.5
    better = [{**GIVEN[1], "answer": "서울은 한국의 수도이다"}]
    assert cli.main(["eval", "answers", str(write_jsonl(tmp_path / "two.jsonl", better))]) == 0
    out = capsys.readouterr().out
    assert "exact_match        1.0" in out
    assert cli.main(["eval", "runs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and all("\tanswers\t" in line for line in listed)
    a, b = (line.split("\t")[0] for line in listed)
    assert cli.main(["eval", "runs", "diff", a, b]) == 0
    out = capsys.readouterr().out
    assert "different datasets" in out
    assert "exact_match" in out and "+0.5000" in out
    assert "ko '서울은?': answer: 서울 -> 서울은 한국의 수도이다" in out
    assert cli.main(["eval", "runs", "diff", "nope", b]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"contains": "impartial judge", "reply": "First. [[A]]"}]))
    with running_openai_server(script_path=script) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        code = cli.main(["eval", "compare", a, b, "--judge", "openai:gpt-4o-mini", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    # Only "ko" is in both runs; a judge that always prefers the first answer contradicts
    # itself when the order is swapped: a tie, and no agreement.
    assert (result["n_questions"], result["ties"], result["order_agreement"]) == (1, 1, 0.0)
    assert len(list((data_dir / "runs").glob("*-compare-*.json"))) == 1


def test_wandb_offline_logging(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb", reason="the optional extra rag-app[wandb] is not installed")
    from rag_app.evaluation.wandb_log import log_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = make_settings()
    path = record(settings, write_jsonl(tmp_path / "q.jsonl", GIVEN), {"a": 0.5, "b": 1.0})
    run_dir = Path(log_run(load_run(settings, path), tmp_path / "wandb-home"))
    offline = run_dir.parent
    assert offline.name.startswith("offline-run-")
    assert list(offline.glob("*.wandb")), list(offline.iterdir())
    (table_file,) = (run_dir / "media" / "table").glob("rows_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["id", "question", "metrics.f1"]
    assert table["data"] == [["a", "a", 0.5], ["b", "b", 1.0]]
