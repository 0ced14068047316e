"""A real Chroma server in a subprocess, so tests cover the HTTP client path the app uses.

An in-process or ephemeral Chroma client would skip the network, the server's own validation
and what happens when the server goes away. `ChromaServer` runs the `chroma run` CLI that ships
with the installed chromadb package, waits for its heartbeat, and can be killed abruptly and
started again on the same port and data directory for "server dies" tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings

from tests.support.ports import free_port

HOST = "127.0.0.1"


def chroma_executable() -> Path:
    """The `chroma` CLI installed next to the running interpreter (same venv as chromadb)."""
    executable = Path(sys.executable).with_name("chroma")
    if not executable.exists():
        raise FileNotFoundError(f"chroma CLI not found at {executable}")
    return executable


def http_client(host: str, port: int) -> ClientAPI:
    """An HttpClient with telemetry off: test traffic must stay on 127.0.0.1."""
    return chromadb.HttpClient(host=host, port=port, settings=Settings(anonymized_telemetry=False))


class ChromaServer:
    """One `chroma run` subprocess bound to `host:port`, persisting into `data_dir`.

    The server's combined output goes to `log_path`, next to `data_dir`, and is quoted when
    it fails to start. The object unpacks as `(host, port)`, so
    `with running_chroma_server(d) as (host, port):` works too.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        grace: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.log_path = self.data_dir.with_name(f"{self.data_dir.name}.chroma-server.log")
        self._process: subprocess.Popen[bytes] | None = None

    def __iter__(self) -> Iterator[str | int]:
        return iter((self.host, self.port))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Launch the server and return once its heartbeat answers."""
        if self.running:
            raise RuntimeError(f"Chroma server already running on port {self.port}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(chroma_executable()),
            "run",
            "--path",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        environment = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with self.log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        self._process = process
        try:
            self._wait_for_heartbeat(process)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Terminate gracefully; kill if it is still alive after `grace` seconds."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Die abruptly (SIGKILL), as a crashed server would."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop if needed, then start again on the same port and data directory."""
        self.stop()
        self.start()

    def output_tail(self, limit: int = 4000) -> str:
        """The end of the server's combined stdout and stderr since the last start."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:]

    def _wait_for_heartbeat(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"chroma run exited with code {process.returncode} before its "
                    f"heartbeat answered:\n{self.output_tail()}"
                )
            try:
                http_client(self.host, self.port).heartbeat()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(
            f"chroma run on port {self.port} gave no heartbeat within "
            f"{self.startup_timeout}s:\n{self.output_tail()}"
        )


@contextlib.contextmanager
def running_chroma_server(
    data_dir: Path, *, port: int | None = None, startup_timeout: float = 60.0
) -> Iterator[ChromaServer]:
    """Start a Chroma server for the `with` block and stop it afterwards, even on failure."""
    server = ChromaServer(data_dir, port=port, startup_timeout=startup_timeout)
    server.start()
    try:
        yield server
    finally:
        server.stop()
