"""Command-line options of pinecone-local, shared by ``python -m`` and the ``rag-app`` CLI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pinecone_local.server import serve

FAULT_RATE_ENV = "PINECONE_LOCAL_FAULT_RATE"


def build_parser(prog: str = "pinecone-local") -> argparse.ArgumentParser:
    """The command-line options of pinecone-local; `prog` is how it was started (for --help)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="In-memory Pinecone-compatible server for development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5080, help="control-plane port (default 5080)")
    parser.add_argument("--snapshot", type=Path, help="JSON file to load at start and save to")
    parser.add_argument(
        "--snapshot-interval", type=float, default=5.0, help="seconds between snapshot saves"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=os.environ.get(FAULT_RATE_ENV) or "0",
        help=f"fraction of requests answered 429/503/500 (env {FAULT_RATE_ENV})",
    )
    parser.add_argument(
        "--fault-delay-ms", type=int, default=0, help="delay each request by up to this many ms"
    )
    parser.add_argument("--fault-seed", type=int, help="seed for fault injection")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def main(argv: list[str] | None = None, prog: str = "pinecone-local") -> int:
    """Parse *argv*, serve until interrupted, and return the process exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        serve(
            host=args.host,
            port=args.port,
            snapshot=args.snapshot,
            fault_rate=args.fault_rate,
            fault_delay_ms=args.fault_delay_ms,
            fault_seed=args.fault_seed,
            snapshot_interval=args.snapshot_interval,
            log_level=args.log_level,
        )
    except (OSError, ValueError) as error:
        print(f"pinecone-local: {error}", file=sys.stderr)
        return 1
    return 0
