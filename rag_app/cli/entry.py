"""`rag-app` (also `python -m rag_app`): parse the command line and dispatch.

Every user-fixable problem ends as one `error: ...` line and exit code 2, never a traceback;
`ingest` exits 1 when any file was skipped, `docs check` when differences remain unrepaired,
`migrate` when its verification finds a difference.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence

from rag_app.cli.common import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USER_ERROR
from rag_app.cli.documents import COMMANDS, add_document_commands, list_documents, query_offline
from rag_app.cli.eval import add_eval_commands, run_eval
from rag_app.cli.images import SETTINGS_COMMANDS, add_image_commands
from rag_app.cli.migrate import add_migrate_command, run_migrate
from rag_app.cli.serve import add_serve_command, run_serve
from rag_app.errors import RagAppError


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

    add_document_commands(commands)

    reindex = commands.add_parser(
        "reindex",
        help="re-embed the collection with RAG_EMBED_MODEL from its stored chunks "
        "(no source files needed; re-run to resume)",
    )
    reindex.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    add_migrate_command(commands)

    commands.add_parser("config", help="effective settings, secrets masked")
    commands.add_parser("stores", help="which backends are usable now, and why not")

    add_eval_commands(commands)
    add_image_commands(commands)
    add_serve_command(commands)

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
        from pinecone_local import main as serve

        return serve(argv[1:], prog="rag-app pinecone-local")
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
    from rag_app.settings import (
        check_data_dir,
        check_question,
        check_store_settings,
        check_top_k,
        load_settings,
    )
    from rag_app.util.logs import configure_logging

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
        check_question(args.question)
    if args.command != "docs" or args.docs_command != "list":
        check_data_dir(settings.data_dir)
    if args.command == "eval":
        return run_eval(settings, args)
    if args.command == "serve":
        return run_serve(settings, args)
    if args.command == "reindex":
        return _reindex(settings, args)
    if args.command == "migrate":
        return run_migrate(settings, args)
    if args.command in SETTINGS_COMMANDS:
        return SETTINGS_COMMANDS[args.command](settings, args)
    if args.command == "docs" and args.docs_command == "list" and not args.images:
        return list_documents(settings, args)

    if args.command == "retrieve" and not args.images:
        return _on_collection(settings, COMMANDS["retrieve"], args)
    if _query_offline(settings, args):
        return _on_collection(settings, query_offline, args)

    from rag_app.app import RagApp

    with RagApp(settings) as app:
        return COMMANDS[args.command](app, args)


def _on_collection(settings, command, args: argparse.Namespace) -> int:
    from rag_app.collection import Collection  # no LlamaIndex: see rag_app/collection.py

    with Collection(settings) as collection:
        return command(collection, args)


def _query_offline(settings, args: argparse.Namespace) -> bool:
    """An extractive answer the answer cache would neither serve nor keep needs no LlamaIndex
    engine (`AnswerCache.enabled`)."""
    if args.command != "query" or settings.resolved_llm != "extractive":
        return False
    return args.no_cache or settings.cache == "off" or not settings.cache_extractive


def _stores(settings) -> int:
    from rag_app.stores.registry import availability

    for name, reason in availability(settings).items():
        marker = "*" if name == settings.vector_store else " "
        print(f"{marker} {name:9} {'usable' if reason is None else 'unavailable: ' + reason}")
    return 0


def _reindex(settings, args: argparse.Namespace) -> int:
    from rag_app.embeddings.models import build_embedder
    from rag_app.ingestion.reindex import reindex

    embedder = build_embedder(settings)
    report = reindex(settings, embedder, show_progress=not args.no_progress)
    print(report.summary(embedder.model_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
