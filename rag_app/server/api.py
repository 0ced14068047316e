"""The FastAPI application: `/v1` routes over a `Service`, JSON errors, the page at `/`.

Every error is `{"error": {"message", "type"}}` (OpenAI's shape, so its clients show the
message): 400 a request to fix, 401 no or a wrong key, 404 unknown id, 409 an empty
collection, 413 an upload over the limits, 503 the store or the LLM server unreachable, 500
anything else, whose details go to the server log only, never to the client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.resources import files
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_app.server.errors import JSONErrorRoute, error, error_payload
from rag_app.server.openai_compat import openai_router
from rag_app.server.security import bearer_dependency, upload_name
from rag_app.server.service import Service, Stream, Upload

STATIC = files("rag_app.server") / "static"

Retriever = Literal["hybrid", "dense", "keyword"]


class QueryRequest(BaseModel):
    question: str = Field(description="the question, any language")
    top_k: int | None = Field(None, ge=1, le=100, description="how many sources (RAG_TOP_K)")
    retriever: Retriever | None = Field(None, description="overrides RAG_RETRIEVER")
    filters: dict[str, str | int | float | bool] | None = Field(
        None,
        description='metadata that sources must match exactly (e.g. {"file_type": "md"}); '
        "retrieval is then from the vector store alone (dense)",
    )
    stream: bool = Field(False, description="answer as Server-Sent Events")


class RetrieveRequest(BaseModel):
    question: str
    top_k: int | None = Field(None, ge=1, le=100)
    retriever: Retriever | None = None


class SourceOut(BaseModel):
    number: int = Field(description="the [n] that cites it in the answer")
    doc_id: str
    score: float = Field(description="rank among this query's sources (0 to 1, best 1.0)")
    relevance: float | None = Field(description="absolute match with the question")
    relevant: bool = Field(description="whether relevance reaches the model's threshold")
    start_char: int | None = Field(description="where the chunk starts in its document")
    end_char: int | None
    text: str
    source: str


class AnswerOut(BaseModel):
    question: str
    text: str = Field(description="the answer, citing sources as [n]")
    mode: str = Field(description="extractive (offline) or the LLM that wrote it")
    sources: list[SourceOut]


class DocumentOut(BaseModel):
    doc_id: str
    source: str
    chunks: int
    complete: bool


class IngestOut(BaseModel):
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    skipped: list[dict[str, str]] = Field(description="files not ingested, each with why")
    chunks_written: int


def create_app(service: Service, warm: bool = True) -> FastAPI:
    """The application over `service` (its `RagApp` is closed when the server stops)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm:
            await run_in_threadpool(service.warm_up)
        yield
        service.close()

    settings = service.settings
    app = FastAPI(
        title="rag-app",
        summary="Questions over one collection, with numbered sources; OpenAI-compatible.",
        lifespan=lifespan,
    )
    app.state.service = service
    if settings.cors_origins.strip():
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    _add_error_handlers(app)
    guarded = [Depends(bearer_dependency(settings))]
    app.include_router(_api_router(service), prefix="/v1", dependencies=guarded)
    app.include_router(openai_router(service), prefix="/v1", dependencies=guarded)

    open_router = APIRouter(route_class=JSONErrorRoute, tags=["service"])

    @open_router.get("/v1/health")
    def health() -> dict[str, Any]:
        """Whether the store answers (503 if not), the models, the counts. No key needed."""
        return service.health()

    app.include_router(open_router)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _api_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["collection"], route_class=JSONErrorRoute)
    limits = service.settings

    @router.post("/query", response_model=AnswerOut)
    def query(request: QueryRequest) -> Any:
        """An answer with numbered sources; `stream: true` answers as Server-Sent Events:
        `sources` (the answer without text), `delta` pieces (`{"text"}`), then `done` (the
        whole answer), or `error`."""
        options = service.options(request.retriever, request.filters)
        if request.stream:
            stream = service.stream(request.question, request.top_k, **options)
            return StreamingResponse(_sse(stream), media_type="text/event-stream")
        return asdict(service.query(request.question, request.top_k, **options))

    @router.post("/retrieve", response_model=list[SourceOut])
    def retrieve(request: RetrieveRequest) -> Any:
        """The sources for a question, best first, without an answer."""
        sources = service.retrieve(request.question, request.top_k, request.retriever)
        return [asdict(s) for s in sources]

    @router.get("/documents", response_model=list[DocumentOut])
    def documents() -> Any:
        return [
            DocumentOut(doc_id=r.doc_id, source=r.source, chunks=r.n_chunks, complete=r.complete)
            for r in service.documents()
        ]

    @router.delete("/documents/{doc_id:path}")
    def delete(doc_id: str) -> dict[str, str]:
        if not service.delete(doc_id):
            raise HTTPException(404, f"no document {doc_id!r} in the collection")
        return {"deleted": doc_id}

    @router.post("/documents", response_model=IngestOut)
    async def upload(request: Request, files: list[UploadFile] = File(...)) -> Any:  # noqa: B008
        """Upload text documents (.txt .md .rst .html .pdf .docx); each is stored as
        `uploads/<file name>`: a new name is added, a changed file replaces its earlier
        version, an unchanged one costs nothing, a bad one is reported in `skipped`."""
        if len(files) > limits.upload_max_files:
            raise HTTPException(
                413,
                f"{len(files)} files in one upload; at most {limits.upload_max_files} "
                "(RAG_UPLOAD_MAX_FILES)",
            )
        uploads, refused = [], []
        for file in files:
            data = await file.read(limits.upload_max_bytes + 1)
            try:
                name = upload_name(file.filename)
                if len(data) > limits.upload_max_bytes:
                    raise ValueError(
                        f"larger than {limits.upload_max_bytes} bytes (RAG_UPLOAD_MAX_BYTES)"
                    )
                if name in {u.name for u in uploads}:
                    raise ValueError("uploaded twice in one request")
                uploads.append(Upload(name, data))
            except ValueError as exc:
                refused.append({"path": str(file.filename or ""), "reason": str(exc)})
        report = await run_in_threadpool(service.ingest, uploads)
        skipped = refused + [{"path": p.path, "reason": p.reason} for p in report.skipped]
        return IngestOut(
            added=report.added,
            replaced=report.replaced,
            unchanged=report.unchanged,
            skipped=skipped,
            chunks_written=report.chunks_written,
        )

    return router


async def _sse(stream: Stream) -> AsyncIterator[str]:
    """The stream as Server-Sent Events; the work stops when the client goes away."""
    try:
        yield _event("sources", {**asdict(stream.answer), "text": ""})
        while (piece := await run_in_threadpool(next, stream.pieces, None)) is not None:
            yield _event("delta", {"text": piece})
        yield _event("done", asdict(stream.answer))
    except Exception as exc:  # the status line is sent: the failure becomes an event
        status, payload = error_payload(exc)
        yield _event("error", {**payload, "status": status})
    finally:
        stream.close()


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, payload = error_payload(exc)
        return JSONResponse(payload, status_code=status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        )
        return JSONResponse(error(problems, "invalid_request_error"), status_code=422)
