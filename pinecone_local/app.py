"""FastAPI applications for the control plane and for one index's data plane.

Handlers parse JSON themselves instead of using pydantic models, so every malformed request is
answered in Pinecone's error shape (``rpcStatus`` on the data plane, ``ErrorResponse`` on the
control plane) rather than FastAPI's. The ``X-Pinecone-Api-Version`` header is accepted whatever
its value: SDK releases pin different API versions and all of them must work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from pinecone_local import operations
from pinecone_local.control import parse_create_request, unprocessable
from pinecone_local.errors import (
    PineconeApiError,
    control_plane_response,
    data_plane_response,
    invalid,
)
from pinecone_local.faults import FAULT_CODES, FAULT_MESSAGES, FaultInjector
from pinecone_local.operations import MAX_REQUEST_BYTES
from pinecone_local.state import IndexState
from pinecone_local.store import Store

HEALTH_PATH = "/healthz"
Renderer = Callable[[PineconeApiError], JSONResponse]


def control_app(store: Store, faults: FaultInjector) -> FastAPI:
    """The control plane: create, list, describe, configure and delete indexes."""
    app = _base_app("pinecone-local control plane", faults, control_plane_response)

    @app.post("/indexes")
    async def create_index(request: Request) -> JSONResponse:
        body = await _json_body(request, control=True)
        return JSONResponse(store.create(parse_create_request(body)), status_code=201)

    @app.get("/indexes")
    async def list_indexes() -> JSONResponse:
        return JSONResponse(store.list())

    @app.get("/indexes/{name}")
    async def describe_index(name: str) -> JSONResponse:
        return JSONResponse(store.describe(name))

    @app.patch("/indexes/{name}")
    async def configure_index(name: str, request: Request) -> JSONResponse:
        body = await _json_body(request, control=True)
        return JSONResponse(store.configure(name, body), status_code=202)

    @app.delete("/indexes/{name}")
    async def delete_index(name: str) -> Response:
        store.delete(name)
        return Response(status_code=202)

    return app


class DataPlaneResponse(JSONResponse):
    """A JSON body encoded by orjson: a fetch of 100 dense vectors is ~1 MB of floats, which
    ``json.dumps`` took ~19 ms to write (the whole 100k-chunk download: ~19 s of server time).
    FastAPI's own ``ORJSONResponse`` is deprecated (0.165 warns on use), hence these lines."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def data_app(store: Store, index: IndexState, faults: FaultInjector) -> FastAPI:
    """The data plane of one index; answers 404 once that index has been deleted."""
    app = _base_app(f"pinecone-local index {index.name}", faults, data_plane_response)

    def run(operation: Callable[[IndexState], dict[str, Any]], writes: bool) -> JSONResponse:
        return DataPlaneResponse(store.run(index, operation, writes))

    def post(path: str, operation: Callable[..., dict[str, Any]], writes: bool) -> None:
        async def handler(request: Request) -> JSONResponse:
            body = await _json_body(request, control=False)
            return run(lambda target: operation(target, body), writes)

        app.add_api_route(path, handler, methods=["POST"], name=operation.__name__)

    post("/vectors/upsert", operations.upsert, writes=True)
    post("/query", operations.query, writes=False)
    post("/vectors/delete", operations.delete, writes=True)
    post("/vectors/update", operations.update, writes=True)
    post("/describe_index_stats", operations.describe_stats, writes=False)
    post("/vectors/fetch_by_metadata", operations.fetch_by_metadata, writes=False)
    post("/namespaces", operations.create_namespace, writes=True)

    @app.get("/vectors/fetch")
    async def fetch(request: Request) -> JSONResponse:
        ids = request.query_params.getlist("ids")
        namespace = request.query_params.get("namespace", "")
        return run(lambda target: operations.fetch(target, ids, namespace), writes=False)

    @app.get("/vectors/list")
    async def list_vectors(request: Request) -> JSONResponse:
        params = request.query_params
        limit = _int_param(params.get("limit"), "limit")
        return run(
            lambda target: operations.list_ids(
                target,
                params.get("namespace", ""),
                params.get("prefix"),
                limit,
                params.get("paginationToken"),
            ),
            writes=False,
        )

    @app.get("/namespaces")
    async def list_namespaces(request: Request) -> JSONResponse:
        params = request.query_params
        limit = _int_param(params.get("limit"), "limit")
        return run(
            lambda target: operations.list_namespaces(
                target, params.get("prefix"), limit, params.get("paginationToken")
            ),
            writes=False,
        )

    @app.get("/namespaces/{namespace}")
    async def describe_namespace(namespace: str) -> JSONResponse:
        return run(lambda target: operations.describe_namespace(target, namespace), writes=False)

    @app.delete("/namespaces/{namespace}")
    async def delete_namespace(namespace: str) -> JSONResponse:
        return run(lambda target: operations.delete_namespace(target, namespace), writes=True)

    return app


def _base_app(title: str, faults: FaultInjector, render: Renderer) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    async def on_api_error(request: Request, error: PineconeApiError) -> JSONResponse:
        return render(error)

    app.add_exception_handler(PineconeApiError, on_api_error)

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.middleware("http")
    async def inject_faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path == HEALTH_PATH:
            return await call_next(request)
        fault = faults.draw()
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault.status is not None:
            status = fault.status
            return render(PineconeApiError(status, FAULT_CODES[status], FAULT_MESSAGES[status]))
        return await call_next(request)

    return app


async def _json_body(request: Request, control: bool) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_REQUEST_BYTES:
        raise invalid(
            f"Request size {len(raw)} bytes exceeds the maximum supported size of "
            f"{MAX_REQUEST_BYTES} bytes (2 MB)."
        )
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as error:
        problem = unprocessable(str(error)) if control else invalid(f"Invalid JSON: {error}")
        raise problem from error
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _int_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as error:
        raise invalid(f"{name} must be an integer; got {value!r}.") from error
