"""Process-level wiring: the control-plane socket, one socket per index, snapshots, shutdown.

Every index gets its own listening port, like Pinecone Local's Docker image (which serves
each index on its own port next to the control plane). The SDK calls data-plane paths such as
``/vectors/upsert`` at the root of the index host, so the host itself has to pick the index:
a port per index is the one scheme that works with several indexes and no DNS. Each socket is
served by a uvicorn server on its own thread; ``describe_index`` advertises
``<host>:<index port>``. Each index also has a grpcio server (``grpc_service``) on a loopback
port of its own; the index port relays gRPC connections to it (``multiplex``), so REST and
plaintext gRPC clients use the same host, as with Pinecone Local's image.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from pinecone_local.app import control_app, data_app
from pinecone_local.faults import FaultInjector
from pinecone_local.grpc_service import GrpcListener
from pinecone_local.multiplex import LOOPBACK, sniffing_protocol
from pinecone_local.snapshot import load_snapshot, save_snapshot
from pinecone_local.state import IndexState
from pinecone_local.store import Store

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class _Listener:
    """One listening socket served by a uvicorn server on a daemon thread."""

    def __init__(self, app: Any, sock: socket.socket, log_level: str, http: Any = "auto") -> None:
        config = uvicorn.Config(
            app,
            http=http,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.socket = sock
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                port = self.port
                self.request_stop()
                self.join()
                raise RuntimeError(f"pinecone-local could not serve port {port}")
            time.sleep(0.01)

    def request_stop(self) -> None:
        self.server.should_exit = True

    def join(self) -> None:
        self.thread.join(timeout=START_TIMEOUT_SECONDS)
        self.socket.close()


class PineconeLocal:
    """An in-memory Pinecone: control plane on *port*, each index on a port of its own."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5080,
        snapshot: Path | None = None,
        faults: FaultInjector | None = None,
        snapshot_interval: float = 5.0,
        log_level: str = "warning",
    ) -> None:
        self.host = host
        self.requested_port = port
        self.snapshot_path = snapshot
        self.snapshot_interval = snapshot_interval
        self.faults = faults or FaultInjector()
        self.log_level = log_level
        advertised = "127.0.0.1" if host in WILDCARD_HOSTS else host
        self.store = Store(advertised)
        self.store.open_listener = self._open_index_listener
        self.store.close_listener = self._close_index_listener
        self._control: _Listener | None = None
        self._indexes: dict[int, _Listener] = {}
        self._grpc: dict[int, GrpcListener] = {}
        self._closing: list[_Listener] = []
        self._stopped = threading.Event()
        self._snapshot_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The control-plane port (useful when started with port 0)."""
        if self._control is None:
            raise RuntimeError("pinecone-local is not running")
        return self._control.port

    def start(self) -> None:
        """Restore the snapshot, if any, and start serving; on failure nothing keeps running."""
        try:
            self._restore()
            self._control = _Listener(
                control_app(self.store, self.faults),
                self._bind(self.requested_port),
                self.log_level,
            )
            self._control.start()
        except BaseException:
            self._stop_listeners()
            raise
        if self.snapshot_path is not None:
            self._snapshot_thread = threading.Thread(target=self._snapshot_loop, daemon=True)
            self._snapshot_thread.start()

    def stop(self) -> None:
        """Stop every socket and write a final snapshot."""
        self._stopped.set()
        self._stop_listeners()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join(timeout=START_TIMEOUT_SECONDS)
        self.save()

    def _stop_listeners(self) -> None:
        listeners = [self._control, *self._indexes.values(), *self._closing]
        running = [listener for listener in listeners if listener is not None]
        for listener in running:
            listener.request_stop()
        for listener in running:
            listener.join()
        for grpc_listener in self._grpc.values():
            grpc_listener.stop()
        self._grpc.clear()

    def save(self) -> None:
        """Write the snapshot now (no-op without a snapshot path)."""
        if self.snapshot_path is not None:
            save_snapshot(self.snapshot_path, self.store.snapshot())

    def __enter__(self) -> PineconeLocal:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _restore(self) -> None:
        if self.snapshot_path is None:
            return
        data = load_snapshot(self.snapshot_path)
        for saved in (data or {}).get("indexes", []):
            index = IndexState.from_snapshot(saved)
            self._open_index_listener(index)
            self.store.indexes[index.name] = index
        logger.info("restored %d indexes from %s", len(self.store.indexes), self.snapshot_path)

    def _open_index_listener(self, index: IndexState) -> None:
        grpc_listener = GrpcListener(self.store, index, self.faults)
        grpc_listener.bind(LOOPBACK, 0)
        grpc_listener.start()
        try:
            sock = self._bind(index.port)
        except OSError:
            sock = self._bind(0)
        app = data_app(self.store, index, self.faults)
        listener = _Listener(app, sock, self.log_level, sniffing_protocol(grpc_listener.port))
        try:
            listener.start()
        except BaseException:
            grpc_listener.stop()
            raise
        index.port = listener.port
        self._indexes[id(index)] = listener
        self._grpc[id(index)] = grpc_listener

    def _close_index_listener(self, index: IndexState) -> None:
        listener = self._indexes.pop(id(index), None)
        if listener is not None:
            listener.request_stop()
            self._closing.append(listener)
        grpc_listener = self._grpc.pop(id(index), None)
        if grpc_listener is not None:
            grpc_listener.request_stop()

    def _bind(self, port: int) -> socket.socket:
        return socket.create_server((self.host, port))

    def _snapshot_loop(self) -> None:
        while not self._stopped.wait(self.snapshot_interval):
            if self.store.dirty:
                try:
                    self.save()
                except OSError:
                    logger.exception("could not write snapshot %s", self.snapshot_path)


def serve(
    host: str = "127.0.0.1",
    port: int = 5080,
    snapshot: Path | None = None,
    fault_rate: float = 0.0,
    fault_delay_ms: int = 0,
    fault_seed: int | None = None,
    snapshot_interval: float = 5.0,
    log_level: str = "warning",
) -> None:
    """Run pinecone-local in the foreground until SIGINT or SIGTERM."""
    server = PineconeLocal(
        host=host,
        port=port,
        snapshot=snapshot,
        faults=FaultInjector(fault_rate, fault_delay_ms, fault_seed),
        snapshot_interval=snapshot_interval,
        log_level=log_level,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"pinecone-local control plane on http://{host}:{server.port}", flush=True)
        while not stop.wait(0.2):
            pass
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
