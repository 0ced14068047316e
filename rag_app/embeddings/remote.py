"""Embedding calls to a remote API (OpenAI or an `openai:` compatible server) run concurrently.

Why: a remote embedding call is ~300 ms of waiting, not computing, so an ingest that sends one
request at a time spends almost all its time idle. Up to RAG_EMBED_CONCURRENCY requests are in
flight at once, each a batch within the API's limits (2,048 inputs, 300,000 tokens). The limit
adapts (AIMD, as TCP does): a 429 halves it, once per window of requests started under the old
limit, and every success grows it by 1/limit, so it climbs back by one per window. The 429
itself is retried by the HTTP client (rag_app.util.retry) after the server's Retry-After,
within RAG_RETRY_SECONDS; the slot stays held meanwhile, so a rate limit lowers the load at
once. `embed_in_order` keeps the result order whatever order the requests finish in.

Only the embedding layer uses this; it imports nothing from rag_app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: OpenAI's per-request limits for /v1/embeddings.
OPENAI_MAX_INPUTS = 2048
OPENAI_MAX_REQUEST_TOKENS = 300_000
RATE_LIMITED = 429


class AdaptiveLimit:
    """A semaphore whose size halves on a rate limit and grows slowly back (AIMD).

    `observe` is called from the thread that holds a slot (the HTTP transport runs in the
    caller's thread), so a 429 is known to belong to a request started under `epoch`: only the
    first 429 of a window cuts, not every request that was already in flight when it came.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        #: How many times the limit was cut; also the current window's number.
        self.cuts = 0
        #: The lowest limit reached (reported by the benchmark).
        self.lowest = maximum
        self._changed = threading.Condition()
        self._local = threading.local()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait until fewer than `limit` calls are in flight, then hold one slot."""
        with self._changed:
            while self.in_flight >= int(self.limit):
                self._changed.wait()
            self.in_flight += 1
            self._local.epoch = self.cuts
        try:
            yield
        finally:
            with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()

    def observe(self, status: int) -> None:
        """Adapt to one response: halve on 429 (once per window), grow on success."""
        with self._changed:
            if status == RATE_LIMITED:
                if getattr(self._local, "epoch", self.cuts) == self.cuts:
                    self.limit = max(1.0, self.limit / 2)
                    self.lowest = min(self.lowest, int(self.limit))
                    self.cuts += 1
                self._local.epoch = self.cuts
            elif status < 400:
                self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
                self._changed.notify_all()


def request_batches(
    texts: Sequence[str], max_inputs: int, max_tokens: int = OPENAI_MAX_REQUEST_TOKENS
) -> list[range]:
    """Consecutive index ranges of at most `max_inputs` texts and `max_tokens` tokens each.

    A text's UTF-8 length bounds its token count (every token is at least one byte), so no
    tokenizer runs; a single text over the bound still goes alone (the API then says why).
    """
    batches: list[range] = []
    start = tokens = 0
    for index, text in enumerate(texts):
        size = len(text.encode("utf-8"))
        if index > start and (index - start >= max_inputs or tokens + size > max_tokens):
            batches.append(range(start, index))
            start, tokens = index, 0
        tokens += size
    if start < len(texts):
        batches.append(range(start, len(texts)))
    return batches


def embed_in_order(call: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R]:
    """`[call(item) for item in items]` with up to `concurrency` calls at once, in order.

    The first failure cancels the calls not yet started and is raised once the running ones end.
    """
    if concurrency <= 1 or len(items) <= 1:
        return [call(item) for item in items]
    pool = ThreadPoolExecutor(min(concurrency, len(items)), thread_name_prefix="rag-embed")
    futures: list[Future[R]] = []
    try:
        futures = [pool.submit(call, item) for item in items]
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
