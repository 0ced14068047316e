"""`rag-app serve`'s application on a real uvicorn server in a thread, on a free loopback port.

Tests of the `openai` client, the browser and load need real HTTP (sockets, streaming,
disconnects); a thread in the test process lets them also look inside the `Service`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from rag_app.server import Service, create_app
from tests.support.ports import free_port


@contextlib.contextmanager
def running_server(service: Service, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve `service` until the block ends; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
