"""Start pinecone-local in a subprocess for a test, and stop it afterwards.

A subprocess (rather than a thread) keeps the server's sockets, threads and signal handling out
of the test process, exactly as ``python -m pinecone_local`` runs for a developer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pinecone.grpc import GrpcIndex

from pinecone_local import http_host
from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


@contextmanager
def running_pinecone_local(
    tmp_dir: Path,
    fault_rate: float = 0.0,
    fault_delay_ms: int = 0,
    fault_seed: int | None = 7,
    snapshot: Path | None = None,
    snapshot_interval: float | None = None,
) -> Iterator[str]:
    """Run pinecone-local on a free port; yield its control-plane URL (``http://127.0.0.1:N``).

    The server's output goes to ``tmp_dir/pinecone-local.log``, quoted in the error raised when
    it does not answer within 20 seconds.
    """
    port = free_port()
    command = [sys.executable, "-m", "pinecone_local", "--port", str(port)]
    command += ["--fault-rate", str(fault_rate), "--fault-delay-ms", str(fault_delay_ms)]
    if fault_seed is not None:
        command += ["--fault-seed", str(fault_seed)]
    if snapshot is not None:
        command += ["--snapshot", str(snapshot)]
    if snapshot_interval is not None:
        command += ["--snapshot-interval", str(snapshot_interval)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log_path = Path(tmp_dir) / "pinecone-local.log"
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_healthy(base_url, process, log_path)
            yield base_url
        finally:
            _stop(process)


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pinecone-local exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"pinecone-local did not answer within 20 s:\n{log_path.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def index_client(pc: Any, name: str, transport: str) -> Any:
    """A data-plane client of index *name*: the SDK's REST ``Index`` or its plaintext gRPC one.

    Both use the host ``describe_index`` reports, as with Pinecone Local's Docker image; gRPC
    goes through ``GrpcIndex(secure=False)``, since pinecone 9's ``PineconeGRPC.Index`` always
    uses TLS (its REST fallbacks, such as ``fetch_by_metadata``, need the ``http://`` host).
    """
    host = http_host(pc.describe_index(name).host)
    if transport == "grpc":
        return GrpcIndex(host=host, api_key=pc.config.api_key, secure=False)
    return pc.Index(host=host)
