"""The registry of indexes shared by the control plane and every index's data plane.

One re-entrant lock guards all state: requests arrive on several server threads (one per
listening socket), and numpy scoring is quick enough that serialising them costs little.
Opening and closing an index's listening socket is delegated to hooks set by the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pinecone_local.control import apply_configure_request, index_model
from pinecone_local.errors import PineconeApiError
from pinecone_local.state import IndexState, not_found

ListenerHook = Callable[[IndexState], None]
Operation = Callable[[IndexState], dict[str, Any]]


def _no_listener(index: IndexState) -> None:
    """Default hook: no socket to open or close."""


class Store:
    """All indexes, their namespaces, and whether anything changed since the last snapshot."""

    def __init__(self, advertised_host: str) -> None:
        self.advertised_host = advertised_host
        self.lock = threading.RLock()
        self.indexes: dict[str, IndexState] = {}
        self.dirty = False
        self.open_listener: ListenerHook = _no_listener
        self.close_listener: ListenerHook = _no_listener

    def create(self, index: IndexState) -> dict[str, Any]:
        """Register *index* and open its data-plane socket; 409 when the name is taken."""
        with self.lock:
            if index.name in self.indexes:
                raise PineconeApiError(409, "ALREADY_EXISTS", "Resource already exists.")
            self.open_listener(index)
            self.indexes[index.name] = index
            self.dirty = True
            return self.describe(index.name)

    def describe(self, name: str) -> dict[str, Any]:
        """The ``IndexModel`` of one index; 404 when it does not exist."""
        with self.lock:
            return index_model(self.get(name), self.advertised_host)

    def list(self) -> dict[str, Any]:
        """The ``IndexList`` body."""
        with self.lock:
            host = self.advertised_host
            return {"indexes": [index_model(i, host) for i in self.indexes.values()]}

    def delete(self, name: str) -> None:
        """Drop an index and close its socket; 403 while deletion protection is enabled."""
        with self.lock:
            index = self.get(name)
            if index.deletion_protection == "enabled":
                raise PineconeApiError(
                    403,
                    "FORBIDDEN",
                    "Deletion protection is enabled for this index. "
                    "Disable deletion protection before retrying.",
                )
            del self.indexes[name]
            self.dirty = True
        self.close_listener(index)

    def configure(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Change deletion protection or tags of an index."""
        with self.lock:
            apply_configure_request(self.get(name), body)
            self.dirty = True
            return self.describe(name)

    def run(self, index: IndexState, operation: Operation, writes: bool) -> dict[str, Any]:
        """Run a data-plane *operation* on *index* under the lock; 404 once it was deleted.

        REST and gRPC handlers both come through here, so they see and change the same state.
        """
        with self.lock:
            if self.indexes.get(index.name) is not index:
                raise not_found(index.name)
            result = operation(index)
            self.dirty = self.dirty or writes
            return result

    def get(self, name: str) -> IndexState:
        """The index called *name*; 404 when it does not exist."""
        index = self.indexes.get(name)
        if index is None:
            raise not_found(name)
        return index

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every index; clears the dirty flag."""
        with self.lock:
            self.dirty = False
            return {"version": 1, "indexes": [i.to_snapshot() for i in self.indexes.values()]}
