"""A local, in-memory Pinecone-compatible server for development and tests.

Pinecone's cloud cannot be reached from development machines and CI here, and Pinecone Local
ships only as a Docker image, so this server is written by hand against Pinecone's official
OpenAPI specs (2025-10). The official ``pinecone`` SDK and LlamaIndex's ``PineconeVectorStore``
run against it unchanged.

Layout: ``python -m pinecone_local --port 5080`` serves the control plane on port 5080
and each index's data plane, REST and plaintext gRPC, on a port of its own (see ``server`` and
``multiplex``). ``describe_index`` reports the host as ``127.0.0.1:<index port>``; the SDK
turns a scheme-less host into ``https://``, so clients pass
``pc.Index(host="http://127.0.0.1:<index port>")`` (see :func:`http_host`), or
``GrpcIndex(host=..., secure=False)`` for gRPC.
"""

from __future__ import annotations

from pinecone_local.cli import main
from pinecone_local.faults import FaultInjector
from pinecone_local.server import PineconeLocal, serve


def http_host(described_host: str) -> str:
    """The ``http://`` URL for a host reported by ``describe_index`` (which may carry https)."""
    bare = described_host.split("://", 1)[-1]
    return f"http://{bare}"


__all__ = ["FaultInjector", "PineconeLocal", "http_host", "main", "serve"]
