"""Pinecone's two error body shapes, so SDK error handling behaves as it does against the cloud.

The data plane answers with a gRPC ``rpcStatus``
(``{"code": <int>, "message": ..., "details": []}``); the control plane answers with
``{"error": {"code": "<NAME>", "message": ...}, "status": <int>}``.
Both shapes come from the official OpenAPI specs (``rpcStatus`` and ``ErrorResponse``).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

GRPC_CODES: dict[str, int] = {
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}


class PineconeApiError(Exception):
    """An error a request handler reports; rendered in the plane's own error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> PineconeApiError:
    """A 400 INVALID_ARGUMENT error, Pinecone's answer to most malformed requests."""
    return PineconeApiError(400, "INVALID_ARGUMENT", message)


def data_plane_response(error: PineconeApiError) -> JSONResponse:
    """Render *error* as the data plane's ``rpcStatus`` body."""
    body = {"code": GRPC_CODES.get(error.code, 2), "message": error.message, "details": []}
    return JSONResponse(body, status_code=error.status)


def control_plane_response(error: PineconeApiError) -> JSONResponse:
    """Render *error* as the control plane's ``ErrorResponse`` body."""
    body = {"error": {"code": error.code, "message": error.message}, "status": error.status}
    return JSONResponse(body, status_code=error.status)
