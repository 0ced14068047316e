"""`rag-app` (also `python -m rag_app`): the command line over `RagApp`.

Every user-fixable problem ends as one `error: ...` line and exit code 2, never a traceback;
`ingest` exits 1 when any file was skipped, `docs check` when differences remain unrepaired.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rag_app.cli_images import (
    APP_COMMANDS,
    SETTINGS_COMMANDS,
    add_image_commands,
    list_images,
    retrieve_images,
)
from rag_app.errors import RagAppError
from rag_app.wording import plural

EXIT_SKIPPED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _quiet_libraries() -> None:
    """Progress bars and advisories of model loading would bury the command's own output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    threading.excepthook = _thread_failure_to_debug_log


def _thread_failure_to_debug_log(args: threading.ExceptHookArgs) -> None:
    """LlamaIndex's streaming chat writes the answer in a thread that re-raises its failure
    after handing it to the reader, so the reader's one-line error would come with the
    thread's traceback: keep that traceback for DEBUG logs only."""
    logging.getLogger("rag_app").debug(
        "thread %s failed",
        args.thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-app",
        description="RAG over memory, Chroma or Pinecone (RAG_VECTOR_STORE).",
        epilog="Exit codes: 0 ok, 1 some files were skipped or ids not found, 2 a problem to "
        "fix (one `error:` line), 130 interrupted.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )

    ingest = commands.add_parser("ingest", help="ingest files, folders or SQuAD JSON")
    ingest.add_argument(
        "paths", nargs="*", type=Path, help="files and folders to ingest (images too)"
    )
    ingest.add_argument(
        "--prompts",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also ingest prompts for image-to-prompt search (JSONL or CSV: id, prompt, image)",
    )
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ingest.add_argument(
        "--prune",
        action="store_true",
        help="also remove documents under these paths whose files no longer exist",
    )

    for name, text in (("query", "answer with numbered sources"), ("retrieve", "sources only")):
        command = commands.add_parser(name, help=text)
        command.add_argument("question", help="the question, in quotes")
        command.add_argument(
            "--top-k", type=int, default=None, help="how many sources (1-100; RAG_TOP_K)"
        )
        command.add_argument("--json", action="store_true", help="print JSON")
    command.add_argument(
        "--images",
        action="store_true",
        help="search the images (CLIP): by description, or like an image file",
    )
    no_cache = {"action": "store_true", "help": "neither use nor fill the answer cache"}
    commands.choices["query"].add_argument("--no-cache", **no_cache)
    chat = commands.add_parser(
        "chat", help="multi-turn questions (empty line, Ctrl-D or Ctrl-C ends)"
    )
    chat.add_argument("--no-cache", **no_cache)

    cache = commands.add_parser("cache", help="answer cache (RAG_CACHE): stats or clear")
    cache_commands = cache.add_subparsers(
        dest="cache_command", required=True, metavar="ACTION", help="stats or clear"
    )
    cache_stats = cache_commands.add_parser("stats", help="entries, hits, misses, hit rate")
    cache_stats.add_argument("--json", action="store_true", help="print JSON")
    cache_commands.add_parser("clear", help="remove every cached answer (documents stay)")

    docs = commands.add_parser("docs", help="list, check or delete documents")
    docs_commands = docs.add_subparsers(
        dest="docs_command", required=True, metavar="ACTION", help="list, check or delete"
    )
    docs_list = docs_commands.add_parser("list", help="documents with their chunk counts")
    docs_list.add_argument("--json", action="store_true", help="print JSON")
    docs_list.add_argument("--images", action="store_true", help="list the images instead")
    docs_check = docs_commands.add_parser(
        "check", help="compare catalog, store and keyword index (exit 1 on differences)"
    )
    docs_check.add_argument(
        "--repair", action="store_true", help="fix the differences (run while no ingest runs)"
    )
    docs_delete = docs_commands.add_parser("delete", help="delete documents by id or path")
    docs_delete.add_argument(
        "doc_ids", nargs="*", metavar="ID_OR_PATH", help="document ids or paths of ingested files"
    )
    docs_delete.add_argument("--all", action="store_true", help="delete the whole collection")
    docs_delete.add_argument("--yes", action="store_true", help="do not ask before --all")

    reindex = commands.add_parser(
        "reindex",
        help="re-embed the collection with RAG_EMBED_MODEL from its stored chunks "
        "(no source files needed; re-run to resume)",
    )
    reindex.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    commands.add_parser("config", help="effective settings, secrets masked")
    commands.add_parser("stores", help="which backends are usable now, and why not")

    _add_eval_commands(commands)
    add_image_commands(commands)

    commands.add_parser(
        "pinecone-local",
        help="run the local Pinecone-compatible development server (--help for its options)",
        add_help=False,
    )
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pinecone-local"]:
        from rag_app.pinecone_local import main as serve

        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except RagAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; the store is consistent, re-run to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (`rag-app docs list --json | head`): end quietly, as
        # Unix tools do on SIGPIPE, and keep Python from complaining when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"error: {exc.strerror or exc}{where}. Check that RAG_DATA_DIR and the files named "
            "are folders/files you can read and write.",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR


def _run(args: argparse.Namespace) -> int:
    from rag_app.logs import configure_logging
    from rag_app.settings import (
        check_data_dir,
        check_store_settings,
        check_top_k,
        load_settings,
    )

    settings = load_settings()
    configure_logging(settings)
    if args.command == "config":
        for name, value in settings.masked().items():
            print(f"{name}={value}")
        return 0
    if args.command == "stores":
        return _stores(settings)
    check_store_settings(settings)
    check_top_k(getattr(args, "top_k", None))
    if args.command in ("query", "retrieve"):
        from rag_app.app import check_question

        check_question(args.question)
    if args.command != "docs" or args.docs_command != "list":
        check_data_dir(settings.data_dir)
    if args.command == "eval":
        return _eval(settings, args)
    if args.command == "reindex":
        return _reindex(settings, args)
    if args.command in SETTINGS_COMMANDS:
        return SETTINGS_COMMANDS[args.command](settings, args)

    from rag_app.app import RagApp

    with RagApp(settings) as app:
        return COMMANDS[args.command](app, args)


def _stores(settings) -> int:
    from rag_app.stores.registry import availability

    for name, reason in availability(settings).items():
        marker = "*" if name == settings.vector_store else " "
        print(f"{marker} {name:9} {'usable' if reason is None else 'unavailable: ' + reason}")
    return 0


def _reindex(settings, args: argparse.Namespace) -> int:
    from rag_app.embeddings import build_embedder
    from rag_app.reindex import reindex

    embedder = build_embedder(settings)
    report = reindex(settings, embedder, show_progress=not args.no_progress)
    print(report.summary(embedder.model_id))
    return 0


def _eval(settings, args: argparse.Namespace) -> int:
    return EVAL_COMMANDS[args.eval_kind](settings, args)


def _eval_retrieval(settings, args: argparse.Namespace) -> int:
    """One eval run per (model, retriever) named; one JSON object or table column each, and
    one run record each."""
    from rag_app.eval import evaluate_matrix, evaluate_pairs, evaluate_squad

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
    from rag_app.answer_eval import evaluate_answers

    run = evaluate_answers(settings, args.path, args.limit, args.seed, args.judge, args.concurrency)
    params = {"limit": args.limit, "seed": args.seed, "judge": args.judge or settings.judge}
    _record(settings, args, "answers", args.path, run.metrics, run.rows, params, run.dataset.sha256)
    _print_metrics(run.metrics, args.json)
    return 0


def _eval_compare(settings, args: argparse.Namespace) -> int:
    from rag_app.pairwise import compare_runs
    from rag_app.runs import load_run

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
    from rag_app.runs import diff_runs, list_runs, load_run

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
    from rag_app.runs import load_run, runs_dir, write_run

    path = write_run(settings, kind, dataset, metrics, rows, params, sha256)
    print(f"run record: {path}", file=sys.stderr)
    if getattr(args, "wandb", False):
        from rag_app.wandb_log import log_run

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


def _ingest(app, args: argparse.Namespace) -> int:
    from rag_app.ingestion import IngestReport

    if not args.paths and not args.prompts:
        raise RagAppError("ingest needs files or folders, or --prompts FILE")
    show_progress = not args.no_progress and sys.stderr.isatty()
    report = (
        app.ingest(args.paths, show_progress=show_progress, prune=args.prune)
        if args.paths
        else IngestReport()
    )
    for prompts in args.prompts:
        report.add(app.ingest_prompts(prompts))
    for problem in report.skipped:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    for problem in report.ignored:
        print(f"ignored {problem.path}: {problem.reason}", file=sys.stderr)
    print(report.summary())
    if report.gone:
        count = plural(len(report.gone), "document")
        paths = " ".join(str(p) for p in args.paths)
        print(
            f"{count} under these paths no longer exist on disk and stay searchable; "
            f"remove them with `rag-app ingest --prune {paths}`"
        )
    return 0 if report.ok else EXIT_SKIPPED


def _require_documents(app) -> None:
    """Questions to an empty or unknown collection get an answer about that, not no sources."""
    if not app.backend.documents():
        raise RagAppError(
            f"The collection {app.settings.collection!r} ({app.backend.location}) has no "
            "documents: ingest some with `rag-app ingest PATH`, or check RAG_COLLECTION and "
            "RAG_VECTOR_STORE."
        )


def _query(app, args: argparse.Namespace) -> int:
    _require_documents(app)
    cache = not args.no_cache
    if args.json:
        answer = app.query(args.question, args.top_k, cache=cache)
        print(json.dumps(asdict(answer), ensure_ascii=False))
        return 0
    answer, pieces = app.stream_query(args.question, args.top_k, cache=cache)
    print(f"Answer ({answer.mode}):")
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    _print_sources(answer.sources)
    return 0


def _retrieve(app, args: argparse.Namespace) -> int:
    if args.images:
        return retrieve_images(app, args)
    _require_documents(app)
    sources = app.retrieve(args.question, args.top_k)
    if args.json:
        print(json.dumps([asdict(s) for s in sources], ensure_ascii=False))
    else:
        _print_sources(sources, with_text=True)
    return 0


def _print_sources(sources, with_text: bool = False) -> None:
    print("Sources:")
    for s in sources:
        print(f"[{s.number}] {s.doc_id} (score {s.score:.3f}, chars {s.start_char}-{s.end_char})")
        if with_text:
            print("    " + s.text.replace("\n", " ")[:300])


def _chat(app, args: argparse.Namespace) -> int:
    _require_documents(app)
    session = app.chat(cache=not args.no_cache)
    if sys.stdin.isatty():
        import readline  # noqa: F401 - importing it gives input() line editing and history
    print(f"chat ({app.answerer.mode}); an empty line or Ctrl-D ends it")
    try:
        while question := _read_question():
            answer, pieces = session.ask(question)
            if answer.mode.startswith("cache:"):
                print(f"({answer.mode})")
            for piece in pieces:
                print(piece, end="", flush=True)
            print()
            _print_sources(answer.sources)
    except KeyboardInterrupt:
        print("\nchat ended (Ctrl-C); nothing was changed", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _read_question() -> str:
    try:
        return input("question> ").strip()
    except EOFError:
        print()
        return ""


def _cache(app, args: argparse.Namespace) -> int:
    cache = app.answer_cache
    if args.cache_command == "clear":
        cache.clear()
        print(f"cleared the answer cache {cache.collection!r} at {app.backend.location}")
        return 0
    stats = cache.stats()
    if args.json:
        print(json.dumps({**asdict(stats), "hit_rate": stats.hit_rate}))
        return 0
    print(f"answer cache {cache.collection!r} (RAG_CACHE={app.settings.cache})")
    print(f"entries   {stats.entries}")
    print(f"hits      {stats.hits} ({stats.exact_hits} exact, {stats.semantic_hits} semantic)")
    print(f"misses    {stats.misses}")
    print(f"hit rate  {stats.hit_rate:.1%}")
    return 0


def _docs(app, args: argparse.Namespace) -> int:
    if args.docs_command == "check":
        report = app.check(repair=args.repair)
        print("\n".join(report.lines()))
        return 1 if report.unrepaired else 0
    if args.docs_command == "list" and args.images:
        return list_images(app, args.json)
    if args.docs_command == "list":
        records = app.documents()
        if args.json:
            print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
        for r in [] if args.json else records:
            state = "" if r.complete else "  (incomplete: re-run the ingest)"
            print(f"{r.doc_id}\t{plural(r.n_chunks, 'chunk')}{state}")
        return 0
    if args.all:
        return _delete_all(app, args.yes)
    if not args.doc_ids:
        raise RagAppError("docs delete needs document ids (see `rag-app docs list`) or --all")
    missing = app.delete(args.doc_ids)
    for doc_id in missing:
        print(f"not found: {doc_id}", file=sys.stderr)
    print(f"deleted {plural(len(args.doc_ids) - len(missing), 'document')}")
    return 1 if missing else 0


def _add_eval_commands(commands) -> None:
    evaluate = commands.add_parser("eval", help="evaluate retrieval or answers (run records)")
    eval_kinds = evaluate.add_subparsers(
        dest="eval_kind", required=True, metavar="KIND", help="what to evaluate"
    )
    squad = eval_kinds.add_parser("squad", help="SQuAD-format QA: hit@k of answer spans")
    squad.add_argument("path", type=Path, help="SQuAD-format JSON file")
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


EVAL_COMMANDS = {
    "squad": _eval_retrieval,
    "pairs": _eval_retrieval,
    "answers": _eval_answers,
    "compare": _eval_compare,
    "runs": _eval_runs,
}


def _delete_all(app, confirmed: bool) -> int:
    images = len(app.images.documents()) + len(app.images.prompt_documents())
    beside = f" and the images beside it ({plural(images, 'item')})" if images else ""
    what = (
        f"the whole collection {app.settings.collection!r} at {app.backend.location} "
        f"({plural(len(app.backend.documents()), 'document')}){beside}"
    )
    if not confirmed:
        if not sys.stdin.isatty():
            raise RagAppError(f"docs delete --all would delete {what}; pass --yes to confirm.")
        if input(f"Delete {what}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    app.backend.drop()
    app.images.drop()
    print(f"deleted {what}")
    return 0


COMMANDS = {
    "ingest": _ingest,
    "query": _query,
    "retrieve": _retrieve,
    "chat": _chat,
    "docs": _docs,
    **APP_COMMANDS,
    "cache": _cache,
}


if __name__ == "__main__":
    sys.exit(main())
