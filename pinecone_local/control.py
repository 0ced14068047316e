"""Validation of control-plane requests and the ``IndexModel`` body describing an index.

Only serverless indexes exist here (as in Pinecone Local), dense or sparse; pod and BYOC
requests are refused with a 400 naming the limitation instead of being silently accepted.
A sparse index has no dimension and only the ``dotproduct`` metric, as in Pinecone.
Missing required fields answer 422 like Pinecone's JSON deserializer; bad values answer 400.
"""

from __future__ import annotations

import re
from typing import Any

from pinecone_local.errors import PineconeApiError, invalid
from pinecone_local.state import VECTOR_TYPES, IndexState, check_metric

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MAX_NAME_LENGTH = 45
MAX_DIMENSION = 20000
DELETION_PROTECTION = ("disabled", "enabled")


def parse_create_request(body: dict[str, Any]) -> IndexState:
    """Validate a ``CreateIndexRequest`` body into a new (empty) index."""
    for required in ("name", "spec"):
        if required not in body:
            raise unprocessable(f"missing field `{required}`")
    name = check_name(body["name"])
    cloud, region = _serverless_location(body["spec"])
    vector_type = body.get("vector_type") or "dense"
    if vector_type not in VECTOR_TYPES:
        raise invalid(f"vector_type must be 'dense' or 'sparse'; got {vector_type!r}.")
    sparse = vector_type == "sparse"
    metric = check_metric(body.get("metric") or ("dotproduct" if sparse else "cosine"))
    if sparse and metric != "dotproduct":
        raise invalid("Sparse vector indexes must use dotproduct as their metric.")
    if sparse and body.get("dimension") is not None:
        raise invalid("dimension should not be specified for sparse indexes.")
    return IndexState(
        name=name,
        dimension=0 if sparse else _dimension(body.get("dimension")),
        metric=metric,
        cloud=cloud,
        region=region,
        deletion_protection=check_deletion_protection(body.get("deletion_protection")),
        tags=check_tags(body.get("tags")),
        vector_type=vector_type,
    )


def apply_configure_request(index: IndexState, body: dict[str, Any]) -> None:
    """Apply a ``ConfigureIndexRequest``: deletion protection and tags (merged)."""
    protection = body.get("deletion_protection")
    tags = check_tags(body.get("tags"))
    if protection is not None:
        index.deletion_protection = check_deletion_protection(protection)
    if tags:
        merged = {**(index.tags or {}), **tags}
        index.tags = {key: value for key, value in merged.items() if value}


def index_model(index: IndexState, host: str) -> dict[str, Any]:
    """The ``IndexModel`` body for *index*, served at *host*."""
    model: dict[str, Any] = {
        "name": index.name,
        "metric": index.metric,
        "host": f"{host}:{index.port}",
        "deletion_protection": index.deletion_protection,
        "spec": {
            "serverless": {
                "cloud": index.cloud,
                "region": index.region,
                "read_capacity": {"mode": "OnDemand", "status": {"state": "Ready"}},
            }
        },
        "status": {"ready": True, "state": "Ready"},
        "vector_type": index.vector_type,
    }
    if not index.sparse:
        model["dimension"] = index.dimension
    if index.tags:
        model["tags"] = dict(index.tags)
    return model


def check_name(name: Any) -> str:
    """Validate an index name (1-45 lower-case alphanumerics or '-', alphanumeric ends)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise invalid(f"Index name must be 1-{MAX_NAME_LENGTH} characters long.")
    if not NAME_PATTERN.match(name):
        raise invalid(
            "Index name must contain only lowercase alphanumeric characters or hyphens, "
            "and must not begin or end with a hyphen."
        )
    return name


def check_deletion_protection(value: Any) -> str:
    """Validate ``deletion_protection`` (default ``disabled``)."""
    value = value or "disabled"
    if value not in DELETION_PROTECTION:
        raise invalid(f"deletion_protection must be 'disabled' or 'enabled'; got {value!r}.")
    return str(value)


def check_tags(tags: Any) -> dict[str, str] | None:
    """Validate index tags: a flat object of string values."""
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise invalid("tags must be an object whose values are strings.")
    return dict(tags)


def unprocessable(detail: str) -> PineconeApiError:
    """A 422 error worded like Pinecone's JSON deserialization failures."""
    return PineconeApiError(
        422,
        "UNPROCESSABLE_ENTITY",
        f"Failed to deserialize the JSON body into the target type: {detail}",
    )


def _serverless_location(spec: Any) -> tuple[str, str]:
    if not isinstance(spec, dict):
        raise unprocessable("spec must be an object")
    if "serverless" not in spec:
        raise invalid("pinecone-local supports only serverless indexes (spec.serverless).")
    serverless = spec["serverless"]
    if not isinstance(serverless, dict):
        raise unprocessable("spec.serverless must be an object")
    for required in ("cloud", "region"):
        if not isinstance(serverless.get(required), str):
            raise unprocessable(f"missing field `{required}`")
    return serverless["cloud"], serverless["region"]


def _dimension(value: Any) -> int:
    if value is None:
        raise invalid("Dimension must be provided for dense indexes.")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIMENSION:
        raise invalid(f"Dimension must be an integer between 1 and {MAX_DIMENSION}.")
    return value
