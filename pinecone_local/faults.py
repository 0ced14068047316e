"""Seeded fault injection, so client retry logic can be tested against misbehaving Pinecone.

A faulted request is answered with 429, 503 or 500 before its handler runs, so it never changes
state and a client may retry it safely. Delays are drawn from the same seeded generator, so a
run with a fixed seed and a fixed request order is reproducible.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

FAULT_STATUSES = (429, 429, 503, 503, 500)
FAULT_CODES = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL"}
FAULT_MESSAGES = {
    429: "Request rate limit exceeded (fault injected by pinecone-local).",
    503: "Service temporarily unavailable (fault injected by pinecone-local).",
    500: "Internal server error (fault injected by pinecone-local).",
}


@dataclass(frozen=True)
class Fault:
    """The outcome drawn for one request."""

    status: int | None
    delay_seconds: float


class FaultInjector:
    """Draws, per request, whether to fail it and how long to delay it."""

    def __init__(self, rate: float = 0.0, delay_ms: int = 0, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1; got {rate}")
        if delay_ms < 0:
            raise ValueError(f"fault delay must not be negative; got {delay_ms}")
        self.rate = rate
        self.delay_ms = delay_ms
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> Fault:
        """Decide the fate of one request: a status to fail with (or None) and a delay."""
        with self._lock:
            failed = self.rate > 0 and self._random.random() < self.rate
            status = self._random.choice(FAULT_STATUSES) if failed else None
            delay = self._random.uniform(0, self.delay_ms) / 1000 if self.delay_ms else 0.0
        return Fault(status, delay)
