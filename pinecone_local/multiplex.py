"""REST and gRPC on one index port, as Pinecone Local serves them.

Clients reach gRPC at the host ``describe_index`` reports, so that host has to speak both
HTTP/1.1 (uvicorn) and HTTP/2 (grpcio). uvicorn cannot serve gRPC and grpcio cannot serve
HTTP/1.1, so the index port's uvicorn protocol looks at the first bytes of each connection: a
connection that opens with the HTTP/2 preface (``PRI * HTTP/2.0``, which gRPC clients send at
once on plaintext connections) is relayed byte for byte to the index's grpcio server on a
loopback port; any other connection is handed, unchanged, to uvicorn's own HTTP protocol. REST
traffic therefore pays one prefix check per connection and nothing per byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SNIFF_BYTES = 4
LOOPBACK = "127.0.0.1"


def sniffing_protocol(grpc_port: int) -> Callable[..., asyncio.Protocol]:
    """A uvicorn ``http`` protocol factory that relays HTTP/2 connections to *grpc_port*."""

    def create(**uvicorn_kwargs: Any) -> asyncio.Protocol:
        return _SniffingProtocol(AutoHTTPProtocol(**uvicorn_kwargs), grpc_port)

    return create


class _SniffingProtocol(asyncio.Protocol):
    """Decides per connection between uvicorn's HTTP/1.1 protocol and a relay to gRPC."""

    def __init__(self, http: asyncio.Protocol, grpc_port: int) -> None:
        self.http = http
        self.grpc_port = grpc_port
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.mode = "sniff"
        self.upstream: asyncio.Transport | None = None
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        # uvicorn tracks the connection from here, so a shutdown closes relayed ones as well.
        self.http.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.mode == "http":
            self.http.data_received(data)
        elif self.mode == "grpc":
            self._relay(data)
        else:
            self._sniff(data)

    def _sniff(self, data: bytes) -> None:
        self.buffer += data
        head = self.buffer[:SNIFF_BYTES]
        if len(head) < SNIFF_BYTES and HTTP2_PREFACE.startswith(head):
            return
        pending, self.buffer = self.buffer, b""
        if head == HTTP2_PREFACE[:SNIFF_BYTES]:
            self.mode = "grpc"
            self._relay(pending)
            return
        self.mode = "http"
        self.http.data_received(pending)

    def _relay(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.buffer += data
        if self.connecting is None and self.transport is not None:
            self.transport.pause_reading()
            self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        downstream = self.transport
        try:
            upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: _Relay(downstream), LOOPBACK, self.grpc_port
            )
        except OSError:
            downstream.close()
            return
        self.upstream = upstream
        pending, self.buffer = self.buffer, b""
        upstream.write(pending)
        if not downstream.is_closing():
            downstream.resume_reading()

    def eof_received(self) -> bool | None:
        if self.mode == "grpc":
            return None
        return self.http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()
        self.http.connection_lost(exc)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()


class _Relay(asyncio.Protocol):
    """The loopback connection to grpcio: copies its bytes back to the client."""

    def __init__(self, downstream: asyncio.Transport) -> None:
        self.downstream = downstream

    def data_received(self, data: bytes) -> None:
        self.downstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.downstream.close()
