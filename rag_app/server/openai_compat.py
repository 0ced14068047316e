"""`/v1/models` and `/v1/chat/completions` in OpenAI's wire format: the collection as a model.

The last user message is the question (earlier turns are not condensed into it); the answer
cites its sources as [n] in the text, and the sources themselves travel in the extra field
`sources` (of the completion, or of the first chunk when streaming), each with the number
that cites it, its document id, character range, score and relevance.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag_app.answers.types import Source
from rag_app.server.errors import JSONErrorRoute, error_payload
from rag_app.server.service import Service, Stream


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: not used
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=100, description="extra: how many sources")
    retriever: Literal["hybrid", "dense", "keyword"] | None = Field(
        None, description="extra: overrides RAG_RETRIEVER"
    )


def openai_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["openai"], route_class=JSONErrorRoute)
    created = int(time.time())

    @router.get("/models")
    def models() -> dict[str, Any]:
        """The collection, as the one model id to ask."""
        model = {"id": service.model_id, "object": "model", "created": created}
        return {"object": "list", "data": [{**model, "owned_by": "rag-app"}]}

    @router.post("/chat/completions")
    def chat_completions(request: ChatRequest) -> Any:
        """The RAG answer to the last user message; `stream: true` as chunks, then [DONE]."""
        if request.model != service.model_id:
            raise HTTPException(
                404, f"no model {request.model!r}: this server answers as {service.model_id!r}"
            )
        question = _question(request.messages)
        options = service.options(request.retriever, None)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if request.stream:
            stream = service.stream(question, request.top_k, **options)
            return StreamingResponse(
                _chunks(stream, completion_id, service.model_id), media_type="text/event-stream"
            )
        answer = service.query(question, request.top_k, **options)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": service.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "sources": _sources(answer.sources),
        }

    return router


def _question(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", "")) for p in content if p.get("type") == "text"
                )
            return content or ""
    raise HTTPException(400, "messages has no user message: the last user message is asked")


def _sources(sources: list[Source]) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(s).items()} for s in sources]


async def _chunks(stream: Stream, completion_id: str, model: str) -> AsyncIterator[str]:
    """OpenAI's `chat.completion.chunk` events; the first carries the sources."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""}, sources=_sources(stream.answer.sources))
        while (piece := await run_in_threadpool(next, stream.pieces, None)) is not None:
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
    except Exception as exc:  # the status line is sent: OpenAI's clients read an error event
        _, payload = error_payload(exc)
        yield f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
    finally:
        stream.close()
