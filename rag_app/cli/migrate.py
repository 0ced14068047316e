"""`rag-app migrate --to STORE`: copy the configured collection to another store, unembedded.

The source is the configured store, as for every command. The target is named by `--to` and
takes the source's settings except those given by RAG_TO_* variables or the flags below (see
`rag_app.migration.targets`), so no file needs editing.
"""

from __future__ import annotations

import argparse
from typing import Any

from rag_app.cli.common import EXIT_SKIPPED
from rag_app.migration.targets import prefixed_variable
from rag_app.settings import Settings, env_name

#: Flag -> target setting (field name); each also reads RAG_TO_<VARIABLE>.
TARGET_FLAGS = {
    "--data-dir": "data_dir",
    "--memory-index": "memory_index",
    "--chroma-host": "chroma_host",
    "--chroma-port": "chroma_port",
    "--chroma-path": "chroma_path",
    "--pinecone-host": "pinecone_host",
    "--pinecone-index": "pinecone_index",
    "--pinecone-namespace": "pinecone_namespace",
    "--pinecone-sparse-index": "pinecone_sparse_index",
}


def add_migrate_command(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="copy the collection to another store without re-embedding (verified; re-run "
        "to resume)",
        description="Copy the configured collection (chunks, vectors, catalog, images, "
        "prompts; the answer cache with --answers) to the store named by --to. Target "
        "settings: the source's, changed by RAG_TO_* variables (RAG_TO_CHROMA_HOST, "
        "RAG_TO_PINECONE_INDEX, ...) and by these flags; an empty value clears one.",
    )
    migrate.add_argument(
        "--to", required=True, choices=["memory", "chroma", "pinecone"], help="the target store"
    )
    migrate.add_argument(
        "--to-collection", metavar="NAME", help="target collection (default: the same name)"
    )
    what = migrate.add_mutually_exclusive_group()
    what.add_argument(
        "--resume", action="store_true", help="copy over a target that already holds data"
    )
    what.add_argument("--replace", action="store_true", help="drop the target's data first")
    migrate.add_argument("--answers", action="store_true", help="copy the answer cache too")
    migrate.add_argument("--no-verify", action="store_true", help="skip the final comparison")
    migrate.add_argument(
        "--sample", type=int, default=50, help="queries compared by the verification"
    )
    migrate.add_argument("--batch-size", type=int, default=1000, help="chunks per request")
    migrate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for flag, field in TARGET_FLAGS.items():
        metavar = field.rsplit("_", 1)[-1].upper()
        help_text = (
            f"the target's {env_name(Settings.model_fields[field])} ({prefixed_variable(field)})"
        )
        migrate.add_argument(flag, dest=f"target_{field}", metavar=metavar, help=help_text)


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from rag_app.errors import ConfigError
    from rag_app.migration.run import migrate

    if args.batch_size < 1 or args.sample < 0:
        raise ConfigError("--batch-size must be at least 1 and --sample at least 0.")
    target = {
        field: getattr(args, f"target_{field}")
        for field in TARGET_FLAGS.values()
        if getattr(args, f"target_{field}") is not None
    }
    report = migrate(
        settings,
        args.to,
        to_collection=args.to_collection,
        policy="replace" if args.replace else "resume" if args.resume else "refuse",
        answers=args.answers,
        verify=not args.no_verify,
        sample=args.sample,
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
        **target,
    )
    for line in report.summary():
        print(line)
    verification = report.verification
    return EXIT_SKIPPED if verification is not None and not verification.ok else 0
