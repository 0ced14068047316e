"""How rag-app talks to OpenAI-compatible servers: bounded in time, failures as one line.

LlamaIndex's OpenAI classes retry with tenacity (waits of 4 s and more) around an `openai`
client that retries again, so one unreachable server cost minutes and ended in chained
tracebacks. Here both layers are told not to retry (`max_retries=0`); the HTTP client they
share retries transient failures itself through `rag_app.util.retry`, within RAG_RETRY_SECONDS, with
a short connect timeout and RAG_OPENAI_TIMEOUT per request. `openai_errors` turns whatever
still fails into a `RemoteServiceError` naming the server, the call, the cause and the fix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx

from rag_app.errors import RemoteServiceError
from rag_app.settings import Settings
from rag_app.util.retry import (
    DEFAULT_POLICY,
    RetriesExhaustedError,
    TransientStatusError,
    install_retries,
)

#: A server that does not accept a connection within this is down (or the address is wrong).
CONNECT_TIMEOUT = 3.0
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def http_client(settings: Settings, on_status: Callable[[int], None] | None = None) -> httpx.Client:
    """The client every OpenAI call goes through: timeouts and bounded retries.

    `on_status` hears every status answered (the embedder's adaptive concurrency limit). The
    connection pool holds RAG_EMBED_CONCURRENCY connections at least, so concurrent requests
    reuse them instead of opening new ones.
    """
    connections = max(settings.embed_concurrency, 10)
    client = httpx.Client(
        timeout=httpx.Timeout(settings.openai_timeout, connect=CONNECT_TIMEOUT),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )
    policy = replace(DEFAULT_POLICY, max_seconds=settings.retry_seconds)
    install_retries(
        client,
        "OpenAI-compatible server",
        policy,
        connect_timeout=CONNECT_TIMEOUT,
        on_status=on_status,
    )
    return client


def worst_case_seconds(settings: Settings) -> float:
    """How long an unreachable server can take to be reported: retries plus one last connect."""
    return settings.retry_seconds + CONNECT_TIMEOUT


@contextmanager
def openai_errors(what: str, settings: Settings) -> Iterator[None]:
    """Re-raise failures of the `openai` client as one `RemoteServiceError` line."""
    try:
        yield
    except Exception as exc:
        error = describe(exc, what, settings)
        if error is None:
            raise
        raise error from None


def describe(exc: Exception, what: str, settings: Settings) -> RemoteServiceError | None:
    """The user's view of an `openai` failure, or None for anything else."""
    openai = sys.modules.get("openai")
    if openai is None or not isinstance(exc, openai.APIError):
        return None
    server = (
        f"the OpenAI-compatible server at {settings.openai_base_url or OPENAI_DEFAULT_BASE_URL}"
    )
    exhausted = _cause(exc, RetriesExhaustedError)
    if exhausted is not None:
        return RemoteServiceError(_exhausted(exhausted, server, what, settings))
    status = getattr(exc, "status_code", None)
    message = " ".join(str(getattr(exc, "message", exc)).split())
    if status in (401, 403):
        return RemoteServiceError(
            f"{server} refused OPENAI_API_KEY (HTTP {status}: {message}) when {what}. "
            "Set a valid OPENAI_API_KEY in the environment or .env."
        )
    if getattr(exc, "code", None) == "content_policy_violation":
        return RemoteServiceError(
            f"{server} refused the content when {what} ({message}). Rephrase the prompt or use "
            "another image."
        )
    if status == 404:
        return RemoteServiceError(
            f"{server} answered HTTP 404 when {what} ({message}). Check the model name in "
            "RAG_LLM / RAG_EMBED_MODEL and OPENAI_BASE_URL."
        )
    if status is not None:
        return RemoteServiceError(f"{server} answered HTTP {status} when {what}: {message}.")
    return RemoteServiceError(
        f"cannot reach {server} when {what} ({message}). Check OPENAI_BASE_URL and that the "
        "server is running."
    )


def _exhausted(exhausted: RetriesExhaustedError, server: str, what: str, settings: Settings) -> str:
    tries = f"{exhausted.attempts} attempts within RAG_RETRY_SECONDS={settings.retry_seconds:g}"
    last = exhausted.last
    if isinstance(last, TransientStatusError) and last.status == 429:
        return (
            f"{server} kept answering HTTP 429 (rate limit) when {what} ({tries}). Wait and run "
            "the same command again (it resumes), lower RAG_EMBED_BATCH_SIZE, or check your "
            "quota."
        )
    if isinstance(last, TransientStatusError):
        return (
            f"{server} kept answering HTTP {last.status} when {what} ({tries}). The server "
            "has a problem: run the same command again later (it resumes)."
        )
    if isinstance(last, httpx.TimeoutException) and not isinstance(last, httpx.ConnectTimeout):
        return (
            f"{server} did not answer within RAG_OPENAI_TIMEOUT={settings.openai_timeout:g} s "
            f"when {what} ({tries}). Raise RAG_OPENAI_TIMEOUT or check the server."
        )
    return (
        f"cannot reach {server} when {what} ({tries}; last error: {last}). Start the server "
        "or fix OPENAI_BASE_URL."
    )


def _cause(
    exc: BaseException | None, kind: type[RetriesExhaustedError]
) -> RetriesExhaustedError | None:
    """The first `kind` among `exc` and its causes (the openai client wraps transport errors)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
