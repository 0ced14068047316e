"""Bounded retries, with jittered exponential backoff, for transient vector-store failures.

A Chroma server restarting, a keep-alive connection dropped by a proxy or a 503 under load are
ordinary events; an ingest that dies on the first one leaves the user to re-run it by hand.
Only failures that can succeed on a later attempt are retried: connection refused or reset,
timeouts and the statuses 408, 429 and 5xx. Any other error (a 400 for a bad request, a 404
for a missing collection) is the caller's and fails at once. Retries are bounded in attempts
and in time, and the jitter keeps many clients from retrying in lockstep. A rate limit (429)
is bounded in time only, and its Retry-After (`retry-after-ms` or `retry-after`) is the wait:
a rate limit that clears within the time budget never fails the call, however many attempts
it takes while several calls share the quota.

chromadb's `HttpClient` retries nothing, so `RetryingTransport` wraps its HTTP transport.
The Pinecone SDK (9.1) retries these failures itself, but its data-plane `Index` ignores the
client's `RetryConfig` and keeps the SDK default (3 retries), so `RetryingProxy` wraps the
index too. The OpenAI client has its own `max_retries`. Every call retried here is safe to
repeat: rag-app writes with upserts and deletes, never inserts that fail on an existing id.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from rag_app.errors import RagAppError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses that say "try again later" rather than "this request is wrong".
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Connection refused or reset, timeouts: the server may answer a later attempt.
NETWORK_ERRORS = (httpx.TransportError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: at most `attempts` calls and about `max_seconds` in total."""

    attempts: int = 6
    #: No retry starts after this (a last attempt may still run its own timeout): an unreachable
    #: server is reported within about this plus one connect timeout (RAG_RETRY_SECONDS).
    max_seconds: float = 10.0
    #: First wait; each later wait doubles, up to `max_wait`, plus up to `jitter` seconds.
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5


DEFAULT_POLICY = RetryPolicy()


class TransientStatusError(Exception):
    """A server answered with a status that may succeed on a later attempt."""

    def __init__(self, status: int, target: str, retry_after: float | None = None) -> None:
        super().__init__(f"{target} answered HTTP {status}")
        self.status = status
        #: Seconds the server asked to wait (Retry-After), if it said.
        self.retry_after = retry_after


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait a response asks for: OpenAI's `retry-after-ms`, else `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value >= 0:
            return value * scale
    return None


def _rate_limited(exc: BaseException | None) -> bool:
    return getattr(exc, "status", None) == 429 or getattr(exc, "status_code", None) == 429


class RetriesExhaustedError(RagAppError):
    """A transient failure lasted through every attempt the policy allows."""

    def __init__(self, message: str, what: str, attempts: int, last: BaseException | None) -> None:
        super().__init__(message)
        self.what = what
        self.attempts = attempts
        self.last = last


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another attempt (network, timeouts, 408/429/5xx).

    SDK errors count by what they carry: an HTTP `status_code` (Pinecone's `RateLimitError`,
    `ServiceError`) or a network failure as their cause (Pinecone's `PineconeConnectionError`).
    """
    if isinstance(exc, (*NETWORK_ERRORS, TransientStatusError)):
        return True
    if getattr(exc, "status_code", None) in TRANSIENT_STATUSES:
        return True
    return isinstance(exc.__cause__, NETWORK_ERRORS)


def call_with_retries(call: Callable[[], T], what: str, policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """`call()`, retried on transient failures; other exceptions propagate at once.

    Raises `RetriesExhaustedError`, naming `what`, the attempts and the last failure, when the
    policy's attempts or time run out.
    """
    out_of_time = stop_before_delay(policy.max_seconds)
    out_of_attempts = stop_after_attempt(policy.attempts)
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
    )

    def stop(state: RetryCallState) -> bool:
        if out_of_time(state):
            return True
        return out_of_attempts(state) and not _rate_limited(_failure(state))

    def wait(state: RetryCallState) -> float:
        asked = getattr(_failure(state), "retry_after", None)
        if asked is None:
            return backoff(state)
        return min(asked, policy.max_seconds) + random.uniform(0, policy.jitter / 10)

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop,
        wait=wait,
        before_sleep=lambda state: _log_retry(what, state),
    )
    try:
        return retrying(call)
    except RetryError as exc:
        state = exc.last_attempt
        last = state.exception()
        raise RetriesExhaustedError(
            f"{what} failed {state.attempt_number} times (transient errors, retried for "
            f"up to {policy.max_seconds:.0f} s); last error: {last}. Check that the server is "
            "running and reachable, then run the same command again: it resumes safely.",
            what,
            state.attempt_number,
            last,
        ) from last


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _log_retry(what: str, state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # A rate limit is the service pacing concurrent calls, expected while ingesting at speed.
    level = logging.INFO if _rate_limited(error) else logging.WARNING
    log.log(
        level,
        "%s: attempt %d failed (%s); retrying in %.1f s",
        what,
        state.attempt_number,
        error,
        wait,
    )


class RetryingProxy:
    """`target` with every method call retried by `call_with_retries` (for SDK clients).

    Only for clients whose calls are all safe to repeat; a method returning a lazy iterator is
    retried when called, not while iterated, so page through such results with single calls.
    """

    def __init__(self, target: Any, name: str, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self._target = target
        self._name = name
        self._policy = policy

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            what = f"{self._name}: {attribute}"
            return call_with_retries(lambda: value(*args, **kwargs), what, self._policy)

        return call


class RetryingTransport(httpx.BaseTransport):
    """An httpx transport that retries transient failures of the transport it wraps."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        name: str,
        policy: RetryPolicy = DEFAULT_POLICY,
        connect_timeout: float | None = None,
        on_status: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = name
        self.policy = policy
        #: Caps the connect phase of every request, whatever timeout the caller sets (the
        #: OpenAI client applies its one `timeout` to connecting too).
        self.connect_timeout = connect_timeout
        #: Told every status answered, retried ones included (an adaptive concurrency limit
        #: halves on 429 and grows on success: rag_app.embeddings.remote).
        self.on_status = on_status

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        what = f"{self.name}: {request.method} {request.url.path}"
        if self.connect_timeout is not None:
            timeout = dict(request.extensions.get("timeout") or {})
            connect = timeout.get("connect")
            timeout["connect"] = min(connect or self.connect_timeout, self.connect_timeout)
            request.extensions = {**request.extensions, "timeout": timeout}
        return call_with_retries(lambda: self._send(request, what), what, self.policy)

    def _send(self, request: httpx.Request, what: str) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.on_status is not None:
            self.on_status(response.status_code)
        if response.status_code in TRANSIENT_STATUSES:
            response.read()
            response.close()
            after = retry_after_seconds(response.headers)
            raise TransientStatusError(response.status_code, what, after)
        return response

    def close(self) -> None:
        self.inner.close()


def install_retries(
    session: httpx.Client,
    name: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    connect_timeout: float | None = None,
    on_status: Callable[[int], None] | None = None,
) -> None:
    """Route every request of `session` (proxies included) through one `RetryingTransport`.

    Idempotent: clients that share a session (chromadb caches one per server) are wrapped once,
    and the latest `name`, `policy` and `on_status` apply.
    """
    options = (name, policy, connect_timeout, on_status)
    session._transport = _retrying(session._transport, *options)
    for pattern, transport in list(session._mounts.items()):
        if transport is not None:
            session._mounts[pattern] = _retrying(transport, *options)


def _retrying(
    transport: httpx.BaseTransport,
    name: str,
    policy: RetryPolicy,
    connect_timeout: float | None,
    on_status: Callable[[int], None] | None,
) -> RetryingTransport:
    if isinstance(transport, RetryingTransport):
        transport.name, transport.policy = name, policy
        transport.connect_timeout, transport.on_status = connect_timeout, on_status
        return transport
    return RetryingTransport(transport, name, policy, connect_timeout, on_status)
