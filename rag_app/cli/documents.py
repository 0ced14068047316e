"""Commands over one collection: ingest, query, retrieve, chat, cache and docs.

Each handler takes the open `RagApp` and the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rag_app.cli.common import EXIT_INTERRUPTED, EXIT_SKIPPED
from rag_app.cli.images import APP_COMMANDS, list_images, retrieve_images
from rag_app.errors import RagAppError
from rag_app.util.wording import plural


def add_document_commands(commands) -> None:
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


def _ingest(app, args: argparse.Namespace) -> int:
    from rag_app.ingestion.pipeline import IngestReport

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
        return _print_json(app.query(args.question, args.top_k, cache=cache))
    return _print_answer(*app.stream_query(args.question, args.top_k, cache=cache))


def query_offline(collection, args: argparse.Namespace) -> int:
    """`query` answered extractively with no answer cache, on a `Collection` (no LlamaIndex):
    the same output as `_query` there (tests/test_retrieve_paths.py)."""
    _require_documents(collection)
    answer = collection.extract(args.question, args.top_k)
    return _print_json(answer) if args.json else _print_answer(answer, iter([answer.text]))


def _print_json(answer) -> int:
    print(json.dumps(asdict(answer), ensure_ascii=False))
    return 0


def _print_answer(answer, pieces) -> int:
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
    if args.docs_command == "list":  # with --images; the documents' list needs no `RagApp`
        return list_images(app, args.json)
    if args.all:
        return _delete_all(app, args.yes)
    if not args.doc_ids:
        raise RagAppError("docs delete needs document ids (see `rag-app docs list`) or --all")
    missing = app.delete(args.doc_ids)
    for doc_id in missing:
        print(f"not found: {doc_id}", file=sys.stderr)
    print(f"deleted {plural(len(args.doc_ids) - len(missing), 'document')}")
    return 1 if missing else 0


def list_documents(settings, args: argparse.Namespace) -> int:
    """`docs list` from the store's catalog alone, without `RagApp`: it would import LlamaIndex
    and the retrieval stack (about 1.5 s) for a listing that needs neither."""
    from rag_app.settings import check_embedder_settings, check_sparse_index_settings
    from rag_app.stores.registry import open_backend

    check_sparse_index_settings(settings)
    check_embedder_settings(settings)
    backend = open_backend(settings, _no_dimension)
    try:
        records = sorted(backend.documents().values(), key=lambda r: r.doc_id)
    finally:
        backend.close()
    return _print_documents(records, args.json)


def _no_dimension() -> int:
    raise AssertionError("listing documents never needs the embedding dimension")


def _print_documents(records, as_json: bool) -> int:
    if as_json:
        print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
    for r in [] if as_json else records:
        state = "" if r.complete else "  (incomplete: re-run the ingest)"
        print(f"{r.doc_id}\t{plural(r.n_chunks, 'chunk')}{state}")
    return 0


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
