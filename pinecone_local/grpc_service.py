"""The gRPC data plane: Pinecone's ``VectorService``, served by grpcio for each index.

Pinecone's REST data plane is the JSON transcoding of this service, so a request message is
turned into the REST body with protobuf's JSON mapping (``top_k`` becomes ``topK``), run by the
same function of ``operations`` through :meth:`Store.run` (same lock, same state, same
validation), and the JSON answer is parsed back into the response message. REST and gRPC
clients therefore see the same records and get the same errors, as gRPC status codes.

The message classes come from ``grpc_proto/vector_service.proto``, written from the wire format
the official clients use (service ``/VectorService/<Method>``, API 2025-10): the Python SDK's
gRPC channel is compiled Rust and ships no Python protobuf modules to reuse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from pinecone_local import operations
from pinecone_local.errors import PineconeApiError
from pinecone_local.faults import FAULT_CODES, FAULT_MESSAGES, FaultInjector
from pinecone_local.grpc_proto import vector_service_pb2 as pb
from pinecone_local.state import IndexState
from pinecone_local.store import Store

SERVICE = "VectorService"
WORKERS = 4
STOP_GRACE_SECONDS = 1.0
#: Control-plane style codes that have no gRPC status of the same name.
STATUS_ALIASES = {"FORBIDDEN": grpc.StatusCode.PERMISSION_DENIED}
Body = dict[str, Any]


@dataclass(frozen=True)
class Method:
    """One RPC: its message types and the data-plane operation it runs."""

    request: type[Message]
    response: type[Message]
    operation: Callable[[IndexState, Body], Body]
    writes: bool


def _fetch(index: IndexState, body: Body) -> Body:
    return operations.fetch(index, body.get("ids", []), body.get("namespace", ""))


def _list(index: IndexState, body: Body) -> Body:
    return operations.list_ids(
        index,
        body.get("namespace", ""),
        body.get("prefix"),
        body.get("limit"),
        body.get("paginationToken"),
    )


def _list_namespaces(index: IndexState, body: Body) -> Body:
    return operations.list_namespaces(
        index, body.get("prefix"), body.get("limit"), body.get("paginationToken")
    )


def _describe_namespace(index: IndexState, body: Body) -> Body:
    return operations.describe_namespace(index, body.get("namespace", ""))


def _delete_namespace(index: IndexState, body: Body) -> Body:
    return operations.delete_namespace(index, body.get("namespace", ""))


METHODS: dict[str, Method] = {
    "Upsert": Method(pb.UpsertRequest, pb.UpsertResponse, operations.upsert, True),
    "Query": Method(pb.QueryRequest, pb.QueryResponse, operations.query, False),
    "Fetch": Method(pb.FetchRequest, pb.FetchResponse, _fetch, False),
    "FetchByMetadata": Method(
        pb.FetchByMetadataRequest, pb.FetchByMetadataResponse, operations.fetch_by_metadata, False
    ),
    "Update": Method(pb.UpdateRequest, pb.UpdateResponse, operations.update, True),
    "Delete": Method(pb.DeleteRequest, pb.DeleteResponse, operations.delete, True),
    "List": Method(pb.ListRequest, pb.ListResponse, _list, False),
    "DescribeIndexStats": Method(
        pb.DescribeIndexStatsRequest,
        pb.DescribeIndexStatsResponse,
        operations.describe_stats,
        False,
    ),
    "ListNamespaces": Method(
        pb.ListNamespacesRequest, pb.ListNamespacesResponse, _list_namespaces, False
    ),
    "DescribeNamespace": Method(
        pb.DescribeNamespaceRequest, pb.NamespaceDescription, _describe_namespace, False
    ),
    "CreateNamespace": Method(
        pb.CreateNamespaceRequest, pb.NamespaceDescription, operations.create_namespace, True
    ),
    "DeleteNamespace": Method(
        pb.DeleteNamespaceRequest, pb.DeleteResponse, _delete_namespace, True
    ),
}


def status_code(code: str) -> grpc.StatusCode:
    """The gRPC status for one of :class:`PineconeApiError`'s codes."""
    if code in STATUS_ALIASES:
        return STATUS_ALIASES[code]
    return getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)


def _handler(
    store: Store, index: IndexState, faults: FaultInjector, method: Method
) -> grpc.RpcMethodHandler:
    def handle(request: Message, context: grpc.ServicerContext) -> Message:
        fault = faults.draw()
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.status is not None:
            context.abort(status_code(FAULT_CODES[fault.status]), FAULT_MESSAGES[fault.status])
        body = json_format.MessageToDict(request)
        try:
            result = store.run(index, lambda target: method.operation(target, body), method.writes)
        except PineconeApiError as error:
            context.abort(status_code(error.code), error.message)
        return json_format.ParseDict(result, method.response(), ignore_unknown_fields=True)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=method.request.FromString,
        response_serializer=method.response.SerializeToString,
    )


class GrpcListener:
    """A grpcio server answering ``VectorService`` calls for one index on one port."""

    def __init__(self, store: Store, index: IndexState, faults: FaultInjector) -> None:
        handlers = {name: _handler(store, index, faults, m) for name, m in METHODS.items()}
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pinecone-grpc"),
            handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
            # Pinecone's 2 MB request limit; larger messages fail with RESOURCE_EXHAUSTED.
            options=[("grpc.max_receive_message_length", operations.MAX_REQUEST_BYTES)],
        )
        self.port = 0

    def bind(self, host: str, port: int) -> None:
        """Listen on *host*:*port* (0: a free port)."""
        address = f"[{host}]" if ":" in host else host
        try:
            self.port = self.server.add_insecure_port(f"{address}:{port}")
        except RuntimeError as error:
            raise OSError(f"pinecone-local could not serve gRPC on {host}:{port}") from error

    def start(self) -> None:
        self.server.start()

    def request_stop(self) -> threading.Event:
        """Stop accepting calls; running ones get a short grace. Set when all are done."""
        return self.server.stop(STOP_GRACE_SECONDS)

    def stop(self) -> None:
        self.request_stop().wait(STOP_GRACE_SECONDS + 1)
