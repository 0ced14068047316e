"""`rag-app serve`: the HTTP API, the OpenAI-compatible endpoints and the chat page (uvicorn).

One process, one `RagApp` (models loaded once, before the port opens), requests in uvicorn's
thread pool. Binding anything but loopback needs RAG_API_KEY (see `rag_app.server.security`).
"""

from __future__ import annotations

import argparse

from rag_app.settings import Settings


def add_serve_command(commands) -> None:
    serve = commands.add_parser(
        "serve", help="HTTP API, OpenAI-compatible chat endpoint and chat page (docs/serving.md)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (not loopback: RAG_API_KEY needed)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from rag_app.app import RagApp
    from rag_app.server import Service, create_app
    from rag_app.server.security import check_bind

    check_bind(args.host, settings)
    service = Service(RagApp(settings))
    print(
        f"serving collection {settings.collection!r} ({settings.vector_store}) on "
        f"http://{args.host}:{args.port}/ (API docs at /docs); Ctrl-C stops",
        flush=True,
    )
    uvicorn.run(
        create_app(service), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0
