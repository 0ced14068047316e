"""`rag-app eval ...`: retrieval (squad, pairs), answers, compare and run records.

Each run writes a run record (`evaluation.runs`) and, with --wandb, logs it to W&B.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rag_app.errors import RagAppError


def add_eval_commands(commands) -> None:
    evaluate = commands.add_parser("eval", help="evaluate retrieval or answers (run records)")
    eval_kinds = evaluate.add_subparsers(
        dest="eval_kind", required=True, metavar="KIND", help="what to evaluate"
    )
    squad = eval_kinds.add_parser("squad", help="SQuAD-format QA: hit@k of answer spans")
    squad.add_argument(
        "path", type=Path, help="SQuAD-format JSON file, or Belebele JSONL (passage retrieval)"
    )
    squad.add_argument("--limit", type=int, default=None, help="at most N questions")
    squad.add_argument("--seed", type=int, default=0, help="seed of the question sample")
    squad.add_argument("--top-k", type=int, default=10, help="hits counted up to rank k")
    pairs = eval_kinds.add_parser(
        "pairs", help="sentence pairs (KLUE STS JSON): sentence1 retrieves its sentence2"
    )
    pairs.add_argument("path", type=Path, help="KLUE STS JSON file")
    pairs.add_argument(
        "--min-label", type=float, default=4.0, help="keep pairs labelled at least this similar"
    )
    pairs.add_argument("--top-k", type=int, default=10, help="hits counted up to rank k")
    answers = eval_kinds.add_parser(
        "answers",
        help="answer quality: EM/F1, BLEU, chrF, ROUGE, similarity, perplexity, LLM judge",
    )
    answers.add_argument("path", type=Path, help="SQuAD-format .json or .jsonl questions")
    answers.add_argument("--limit", type=int, default=None, help="at most N questions")
    answers.add_argument("--seed", type=int, default=0, help="seed of the question sample")
    compare = eval_kinds.add_parser(
        "compare", help="judge two answer runs question by question (both orders)"
    )
    compare.add_argument("run_a", help="run id, id prefix or record path")
    compare.add_argument("run_b", help="the other run (id, id prefix or record path)")
    in_flight = {answers: "LLM calls (answers, then judge calls)", compare: "judge calls"}
    for command, calls in in_flight.items():
        command.add_argument("--judge", help="openai:<model> (default: RAG_JUDGE)")
        command.add_argument("--concurrency", type=int, default=16, help=f"{calls} in flight")
    for command in (squad, pairs, answers, compare):
        command.add_argument("--json", action="store_true", help="print JSON")
    for command in (squad, pairs):
        _add_eval_matrix_options(command)
    for command in (squad, pairs, answers):
        command.add_argument(
            "--wandb", action="store_true", help="also log the run to Weights & Biases"
        )
    runs = eval_kinds.add_parser("runs", help="list run records; `runs diff A B` compares two")
    runs.add_argument("--json", action="store_true", help="print JSON")
    diff = runs.add_subparsers(dest="runs_command", help="compare two runs").add_parser(
        "diff", help="metrics side by side and per-question changes"
    )
    diff.add_argument("a", help="first run (id, id prefix or record path)")
    diff.add_argument("b", help="second run")
    diff.add_argument("--json", action="store_true", help="print JSON")


def _add_eval_matrix_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--embed-model",
        action="append",
        dest="embed_models",
        metavar="MODEL",
        help="evaluate this RAG_EMBED_MODEL (repeat to compare models in one table)",
    )
    command.add_argument(
        "--retriever",
        action="append",
        dest="retrievers",
        choices=("hybrid", "dense", "keyword"),
        help="evaluate this RAG_RETRIEVER (repeat to compare retrievers in one table)",
    )


def _eval_retrieval(settings, args: argparse.Namespace) -> int:
    """One eval run per (model, retriever) named; one JSON object or table column each, and
    one run record each."""
    from rag_app.evaluation.retrieval import evaluate_matrix, evaluate_pairs, evaluate_squad

    if not args.path.is_file():
        raise RagAppError(f"eval: no such file {args.path}")
    if args.eval_kind == "squad":
        options = {"limit": args.limit, "seed": args.seed, "top_k": args.top_k}
        evaluate = evaluate_squad
    else:
        options = {"min_label": args.min_label, "top_k": args.top_k}
        evaluate = evaluate_pairs

    def run(run_settings, embedder) -> dict:
        rows: list[dict] = []
        result = evaluate(run_settings, args.path, embedder=embedder, rows=rows, **options)
        _record(run_settings, args, args.eval_kind, args.path, result, rows, options)
        return result

    results = evaluate_matrix(
        settings,
        run,
        args.embed_models or [settings.embed_model],
        args.retrievers or [settings.retriever],
    )
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, ensure_ascii=False))
    else:
        _print_table(results)
    return 0


def _print_table(results: list[dict]) -> None:
    """Metrics down, one column per run, so models and retrievers compare side by side."""
    width = max(12, *(len(str(r["embed_model"])) for r in results))
    for key in results[0]:
        print(f"{key:18} " + " ".join(f"{str(r[key]):>{width}}" for r in results))


def _eval_answers(settings, args: argparse.Namespace) -> int:
    from rag_app.evaluation.answers import evaluate_answers

    run = evaluate_answers(settings, args.path, args.limit, args.seed, args.judge, args.concurrency)
    params = {"limit": args.limit, "seed": args.seed, "judge": args.judge or settings.judge}
    _record(settings, args, "answers", args.path, run.metrics, run.rows, params, run.dataset.sha256)
    _print_metrics(run.metrics, args.json)
    return 0


def _eval_compare(settings, args: argparse.Namespace) -> int:
    from rag_app.evaluation.pairwise import compare_runs
    from rag_app.evaluation.runs import load_run

    run_a, run_b = load_run(settings, args.run_a), load_run(settings, args.run_b)
    for run in (run_a, run_b):
        if run["kind"] != "answers":
            raise RagAppError(
                f"eval compare: run {run['id']} is a {run['kind']} run; compare two runs of "
                "`rag-app eval answers` (see `rag-app eval runs`)"
            )
    result = compare_runs(settings, run_a, run_b, args.judge, args.concurrency)
    rows = result.pop("rows")
    dataset = run_a["dataset"]
    _record(settings, args, "compare", Path(dataset["path"]), result, rows, {}, dataset["sha256"])
    _print_metrics(result, args.json)
    return 0


def _eval_runs(settings, args: argparse.Namespace) -> int:
    from rag_app.evaluation.runs import diff_runs, list_runs, load_run

    if args.runs_command == "diff":
        diff = diff_runs(load_run(settings, args.a), load_run(settings, args.b))
        if args.json:
            print(json.dumps(diff, ensure_ascii=False))
        else:
            _print_diff(diff)
        return 0
    runs = list_runs(settings)
    if not runs:
        print(f"no run records yet in {settings.data_dir / 'runs'}", file=sys.stderr)
    if args.json:
        print(json.dumps([{**asdict(r), "path": str(r.path)} for r in runs], ensure_ascii=False))
    for run in [] if args.json else runs:
        print(f"{run.id}\t{run.kind}\t{run.dataset}\t{run.n_rows} rows\t{run.created}")
    return 0


def _record(settings, args, kind, dataset, metrics, rows, params, sha256=None) -> None:
    """Write the run record (and log it to W&B with --wandb); say where on stderr."""
    from rag_app.evaluation.runs import load_run, runs_dir, write_run

    path = write_run(settings, kind, dataset, metrics, rows, params, sha256)
    print(f"run record: {path}", file=sys.stderr)
    if getattr(args, "wandb", False):
        from rag_app.evaluation.wandb_log import log_run

        print(f"wandb: {log_run(load_run(settings, path), runs_dir(settings))}", file=sys.stderr)


def _print_metrics(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        print(f"{key:18} {value}")


def _print_diff(diff: dict) -> None:
    print(f"A = {diff['a']}\nB = {diff['b']}")
    if not diff["same_dataset"]:
        print("note: the runs used different datasets (SHA-256 differs)")
    print(f"{'metric':26} {'A':>12} {'B':>12} {'B - A':>10}")
    for m in diff["metrics"]:
        delta = "" if m["delta"] is None else f"{m['delta']:+.4f}"
        print(f"{m['name']:26} {_cell(m['a']):>12} {_cell(m['b']):>12} {delta:>10}")
    print(f"changed questions: {len(diff['changed_questions'])}")
    for question in diff["changed_questions"]:
        changes = {k: v for k, v in question.items() if k not in ("id", "question")}
        shown = ", ".join(f"{k}: {_cell(a)} -> {_cell(b)}" for k, (a, b) in changes.items())
        print(f"  {question['id']} {str(question['question'])[:50]!r}: {shown}")
    for side in ("a", "b"):
        if diff[f"only_in_{side}"]:
            print(f"only in {side.upper()}: {len(diff[f'only_in_{side}'])} question(s)")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


EVAL_COMMANDS = {
    "squad": _eval_retrieval,
    "pairs": _eval_retrieval,
    "answers": _eval_answers,
    "compare": _eval_compare,
    "runs": _eval_runs,
}


def run_eval(settings, args: argparse.Namespace) -> int:
    return EVAL_COMMANDS[args.eval_kind](settings, args)
