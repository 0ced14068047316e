"""`rag-app` (also `python -m rag_app`): the command line over `RagApp`.

Every user-fixable problem ends as one `error: ...` line and exit code 2, never a traceback;
`ingest` exits 1 when any file was skipped, `docs check` when differences remain unrepaired.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rag_app.errors import RagAppError

EXIT_SKIPPED = 1
EXIT_USER_ERROR = 2


def _quiet_libraries() -> None:
    """Progress bars and advisories of model loading would bury the command's own output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-app", description="RAG over memory, Chroma or Pinecone (RAG_VECTOR_STORE)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest files, folders or SQuAD JSON")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    for name, text in (("query", "answer with numbered sources"), ("retrieve", "sources only")):
        command = commands.add_parser(name, help=text)
        command.add_argument("question")
        command.add_argument("--top-k", type=int, default=None)
        command.add_argument("--json", action="store_true")

    commands.add_parser("chat", help="multi-turn questions (empty line or Ctrl-D ends)")

    docs = commands.add_parser("docs", help="list, check or delete documents")
    docs_commands = docs.add_subparsers(dest="docs_command", required=True)
    docs_list = docs_commands.add_parser("list")
    docs_list.add_argument("--json", action="store_true")
    docs_check = docs_commands.add_parser(
        "check", help="compare catalog, store and keyword index (exit 1 on differences)"
    )
    docs_check.add_argument(
        "--repair", action="store_true", help="fix the differences (run while no ingest runs)"
    )
    docs_delete = docs_commands.add_parser("delete")
    docs_delete.add_argument("doc_ids", nargs="*")
    docs_delete.add_argument("--all", action="store_true", help="delete the whole collection")

    commands.add_parser("config", help="effective settings, secrets masked")
    commands.add_parser("stores", help="which backends are usable now, and why not")

    evaluate = commands.add_parser("eval", help="retrieval evaluation")
    eval_kinds = evaluate.add_subparsers(dest="eval_kind", required=True)
    squad = eval_kinds.add_parser("squad", help="SQuAD-format QA: hit@k of answer spans")
    squad.add_argument("path", type=Path)
    squad.add_argument("--limit", type=int, default=None)
    squad.add_argument("--seed", type=int, default=0)
    squad.add_argument("--top-k", type=int, default=10)
    squad.add_argument("--json", action="store_true")
    pairs = eval_kinds.add_parser(
        "pairs", help="sentence pairs (KLUE STS JSON): sentence1 retrieves its sentence2"
    )
    pairs.add_argument("path", type=Path)
    pairs.add_argument("--min-label", type=float, default=4.0)
    pairs.add_argument("--top-k", type=int, default=10)
    pairs.add_argument("--json", action="store_true")

    commands.add_parser(
        "pinecone-local",
        help="run the local Pinecone-compatible development server (--help for its options)",
        add_help=False,
    )
    return parser


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
        return 130


def _run(args: argparse.Namespace) -> int:
    from rag_app.logs import configure_logging
    from rag_app.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    if args.command == "config":
        for name, value in settings.masked().items():
            print(f"{name}={value}")
        return 0
    if args.command == "stores":
        return _stores(settings)
    if args.command == "eval":
        return _eval(settings, args)

    from rag_app.app import RagApp

    with RagApp(settings) as app:
        return COMMANDS[args.command](app, args)


def _stores(settings) -> int:
    from rag_app.stores.registry import availability

    for name, reason in availability(settings).items():
        marker = "*" if name == settings.vector_store else " "
        print(f"{marker} {name:9} {'usable' if reason is None else 'unavailable: ' + reason}")
    return 0


def _eval(settings, args: argparse.Namespace) -> int:
    from rag_app.eval import evaluate_pairs, evaluate_squad

    if not args.path.is_file():
        raise RagAppError(f"eval: no such file {args.path}")
    if args.eval_kind == "squad":
        result = evaluate_squad(settings, args.path, args.limit, args.seed, args.top_k)
    else:
        result = evaluate_pairs(settings, args.path, args.min_label, args.top_k)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:18} {value}")
    return 0


def _ingest(app, args: argparse.Namespace) -> int:
    report = app.ingest(args.paths, show_progress=not args.no_progress)
    for problem in report.skipped:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else EXIT_SKIPPED


def _query(app, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(asdict(app.query(args.question, args.top_k)), ensure_ascii=False))
        return 0
    answer, pieces = app.stream_query(args.question, args.top_k)
    print(f"Answer ({answer.mode}):")
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    _print_sources(answer.sources)
    return 0


def _retrieve(app, args: argparse.Namespace) -> int:
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
    session = app.chat()
    print(f"chat ({app.answerer.mode}); an empty line ends it")
    for line in sys.stdin:
        question = line.strip()
        if not question:
            break
        answer, pieces = session.ask(question)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
        _print_sources(answer.sources)
    return 0


def _docs(app, args: argparse.Namespace) -> int:
    if args.docs_command == "check":
        report = app.check(repair=args.repair)
        print("\n".join(report.lines()))
        return 1 if report.unrepaired else 0
    if args.docs_command == "list":
        records = app.documents()
        if args.json:
            print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
        for r in [] if args.json else records:
            state = "" if r.complete else "  (incomplete: re-run the ingest)"
            print(f"{r.doc_id}\t{r.n_chunks} chunks{state}")
        return 0
    if args.all:
        app.backend.drop()
        print(f"deleted the whole collection at {app.backend.location}")
        return 0
    if not args.doc_ids:
        raise RagAppError("docs delete needs document ids (see `rag-app docs list`) or --all")
    missing = app.delete(args.doc_ids)
    for doc_id in missing:
        print(f"not found: {doc_id}", file=sys.stderr)
    print(f"deleted {len(args.doc_ids) - len(missing)} document(s)")
    return 1 if missing else 0


COMMANDS = {
    "ingest": _ingest,
    "query": _query,
    "retrieve": _retrieve,
    "chat": _chat,
    "docs": _docs,
}


if __name__ == "__main__":
    sys.exit(main())
