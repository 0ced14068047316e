"""Failures as HTTP statuses and JSON bodies, without tracebacks or secrets.

Every error is `{"error": {"message", "type"}}` (OpenAI's shape, so its clients show the
message); details of unexpected failures go to the server log only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_app.errors import RagAppError, RemoteServiceError
from rag_app.server.service import EmptyCollectionError
from rag_app.util.retry import RetriesExhaustedError

log = logging.getLogger("rag_app.server")
#: Libraries whose exceptions mean the store's server did not answer.
STORE_CLIENTS = ("chromadb", "httpx", "httpcore", "urllib3", "requests", "pinecone", "grpc")


def error_payload(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a failure (no traceback, no secret)."""
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, error(str(exc.detail), "invalid_request_error")
    if isinstance(exc, EmptyCollectionError):
        return 409, error(str(exc), "empty_collection")
    if isinstance(exc, RemoteServiceError | RetriesExhaustedError):
        return 503, error(str(exc), "service_unavailable")
    if isinstance(exc, RagAppError):
        return 400, error(str(exc), "invalid_request_error")
    if isinstance(exc, ConnectionError | TimeoutError) or _from_store_client(exc):
        log.warning("store unreachable: %s: %s", type(exc).__name__, exc)
        return 503, error(
            f"the vector store did not answer ({type(exc).__name__}); check that its server "
            "is running and reachable, then retry",
            "service_unavailable",
        )
    log.exception("request failed", exc_info=exc)
    return 500, error("internal error; the server log has the details", "server_error")


def _from_store_client(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] in STORE_CLIENTS:
            return True
        current = current.__cause__ or current.__context__
    return False


def error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}


class JSONErrorRoute(APIRoute):
    """A route whose failures become JSON errors (no traceback, nothing left running)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except Exception as exc:
                status, payload = error_payload(exc)
                return JSONResponse(payload, status_code=status)

        return route
