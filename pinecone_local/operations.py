"""The data-plane operations, as pure functions from a request body to a response body.

Every function validates its whole request before it changes anything, so a rejected request
leaves the index as it was (an upsert with one bad vector writes none of them). Callers hold
the store lock while a function runs.
"""

from __future__ import annotations

import base64
from bisect import bisect_right
from typing import Any

import numpy as np

from pinecone_local.errors import PineconeApiError, invalid
from pinecone_local.filters import Predicate, compile_filter
from pinecone_local.records import (
    SPARSE_UNSUPPORTED,
    check_metadata_size,
    parse_id,
    parse_metadata,
    parse_record,
    parse_sparse,
    parse_values,
)
from pinecone_local.state import IndexState, Namespace

MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_UPSERT_VECTORS = 1000
MAX_IDS_PER_REQUEST = 1000
MAX_TOP_K = 10000
DEFAULT_LIST_LIMIT = 100
#: How the namespaces API names the default namespace (the empty string elsewhere).
DEFAULT_NAMESPACE = "__default__"
USAGE = {"readUnits": 1}


def upsert(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /vectors/upsert``: insert or overwrite up to 1000 vectors."""
    vectors = body.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise invalid("The vectors field must be a non-empty array.")
    if len(vectors) > MAX_UPSERT_VECTORS:
        raise invalid(
            f"The number of vectors to upsert ({len(vectors)}) exceeds the maximum of "
            f"{MAX_UPSERT_VECTORS} per request."
        )
    accepts_sparse = index.metric == "dotproduct"
    records = [parse_record(raw, index.dimension, accepts_sparse) for raw in vectors]
    namespace = index.writable_namespace(_namespace(body))
    for record in records:
        namespace.upsert(record)
    return {"upsertedCount": len(records)}


def query(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /query``: the topK nearest records to a vector or to a stored record."""
    top_k = body.get("topK")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise invalid(f"topK must be an integer between 1 and {MAX_TOP_K}; got {top_k!r}.")
    name = _namespace(body)
    predicate = compile_filter(body.get("filter")) if body.get("filter") else None
    sparse = parse_sparse(body.get("sparseVector"))
    if sparse is not None and index.metric != "dotproduct":
        raise invalid("Sparse query vectors are only supported for indexes with dotproduct.")
    namespace = index.namespace(name)
    vector = _query_vector(index, body, namespace)
    response: dict[str, Any] = {"matches": [], "namespace": name, "usage": USAGE}
    if namespace is None or vector is None:
        return response
    if index.sparse and sparse is None:
        sparse = namespace.sparse[namespace.rows[body["id"]]]
    matches = namespace.search(index.metric, vector, sparse, top_k, predicate)
    include_values = bool(body.get("includeValues"))
    include_metadata = bool(body.get("includeMetadata"))
    for match in matches:
        stored = namespace.vector(match.row)
        item: dict[str, Any] = {"id": match.id, "score": match.score}
        item["values"] = stored["values"] if include_values else []
        if include_values and "sparseValues" in stored:
            item["sparseValues"] = stored["sparseValues"]
        if include_metadata and "metadata" in stored:
            item["metadata"] = stored["metadata"]
        response["matches"].append(item)
    return response


def _query_vector(index: IndexState, body: dict[str, Any], namespace: Any) -> np.ndarray | None:
    has_vector = body.get("vector") is not None
    has_id = body.get("id") is not None
    if has_vector and has_id:
        raise invalid("Only one of vector or id can be given in a query.")
    if index.sparse:
        return _sparse_query_vector(body, has_vector, has_id, namespace)
    if has_vector:
        return parse_values(body["vector"], index.dimension)
    if has_id:
        record_id = parse_id(body["id"])
        if namespace is None or record_id not in namespace.rows:
            return None
        return namespace.matrix[namespace.rows[record_id]].copy()
    if body.get("sparseVector") is not None:
        return np.zeros(index.dimension, dtype=np.float32)
    raise invalid("A query must contain a vector, an id or a sparseVector.")


def _sparse_query_vector(
    body: dict[str, Any], has_vector: bool, has_id: bool, namespace: Namespace | None
) -> np.ndarray | None:
    """The (empty) dense part of a query on a sparse index, which needs sparse input."""
    if has_vector:
        raise invalid(
            "Sparse indexes do not support dense query vectors; query with sparseVector instead."
        )
    if body.get("sparseVector") is None and not has_id:
        raise invalid("A query on a sparse index must contain a sparseVector or an id.")
    if has_id and (namespace is None or parse_id(body["id"]) not in namespace.rows):
        return None
    return np.zeros(0, dtype=np.float32)


def fetch(index: IndexState, ids: list[str], name: str) -> dict[str, Any]:
    """``GET /vectors/fetch``: the stored records with the given ids (missing ids are skipped)."""
    _check_ids(ids)
    namespace = index.namespace(name)
    vectors: dict[str, Any] = {}
    if namespace is not None:
        for record_id in ids:
            row = namespace.rows.get(record_id)
            if row is not None:
                vectors[record_id] = namespace.vector(row)
    return {"vectors": vectors, "namespace": name, "usage": USAGE}


def delete(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /vectors/delete``: by ids, by filter, or everything in a namespace."""
    ids, delete_all, spec = body.get("ids"), bool(body.get("deleteAll")), body.get("filter")
    modes = sum([ids is not None, delete_all, spec is not None])
    if modes != 1:
        raise invalid("Exactly one of ids, deleteAll or filter must be given in a delete request.")
    name = _namespace(body)
    if ids is not None:
        _check_ids(ids)
    predicate = _selection_filter(spec) if spec is not None else None
    namespace = index.namespace(name)
    if namespace is None:
        return {}
    if delete_all:
        del index.namespaces[name]
        return {}
    doomed = ids if predicate is None else namespace.matching_ids(predicate)
    for record_id in doomed:
        namespace.delete(record_id)
    index.drop_if_empty(name)
    return {}


def update(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /vectors/update``: new values and/or merged metadata, by id or by filter."""
    has_id, spec = body.get("id") is not None, body.get("filter")
    if has_id == (spec is not None):
        raise invalid("Exactly one of id or filter must be given in an update request.")
    values = body.get("values") or None
    if values is not None and index.sparse:
        raise invalid("Sparse indexes do not support dense values; update sparseValues instead.")
    vector = parse_values(values, index.dimension) if values is not None else None
    sparse = parse_sparse(body.get("sparseValues"))
    if sparse is not None and index.metric != "dotproduct":
        raise invalid(SPARSE_UNSUPPORTED)
    new_metadata = body.get("setMetadata")
    if new_metadata is not None:
        parse_metadata(new_metadata)
    namespace = index.namespace(_namespace(body))
    if has_id:
        record_id = parse_id(body["id"])
        targets = [record_id] if namespace is not None and record_id in namespace.rows else []
    else:
        if vector is not None or sparse is not None:
            raise invalid("Updating by filter can only set metadata, not vector values.")
        predicate = _selection_filter(spec)
        targets = namespace.matching_ids(predicate) if namespace is not None else []
    if namespace is None or body.get("dryRun"):
        return {"matchedRecords": len(targets)}
    merged = [_merged_metadata(namespace, t, new_metadata) for t in targets]
    for record_id, metadata in zip(targets, merged, strict=True):
        row = namespace.rows[record_id]
        if vector is not None:
            namespace.set_values(row, vector)
        if sparse is not None:
            namespace.set_sparse(row, sparse)
        namespace.metadata[row] = metadata
    return {"matchedRecords": len(targets)}


def _merged_metadata(namespace: Any, record_id: str, new: dict[str, Any] | None) -> Any:
    current = namespace.metadata[namespace.rows[record_id]]
    if new is None:
        return current
    merged = {**(current or {}), **new}
    check_metadata_size(merged)
    return merged


def list_ids(
    index: IndexState, name: str, prefix: str | None, limit: int | None, token: str | None
) -> dict[str, Any]:
    """``GET /vectors/list``: ids in bitwise order, a page at a time."""
    namespace = index.namespace(name)
    ids = namespace.ids_with_prefix(prefix or "") if namespace else []
    page, pagination = _page(ids, limit, token)
    vectors = [{"id": record_id} for record_id in page]
    return {"vectors": vectors, "namespace": name, "usage": USAGE, **pagination}


def fetch_by_metadata(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /vectors/fetch_by_metadata``: records matching a filter, a page at a time."""
    name = _namespace(body)
    predicate = compile_filter(body.get("filter"))
    namespace = index.namespace(name)
    ids = sorted(namespace.matching_ids(predicate)) if namespace is not None else []
    page, pagination = _page(ids, body.get("limit"), body.get("paginationToken"))
    vectors = {i: namespace.vector(namespace.rows[i]) for i in page} if namespace else {}
    return {"vectors": vectors, "namespace": name, "usage": USAGE, **pagination}


def list_namespaces(
    index: IndexState, prefix: str | None, limit: int | None, token: str | None
) -> dict[str, Any]:
    """``GET /namespaces``: namespace descriptions in bitwise order, a page at a time."""
    names = sorted(_public_name(n) for n in index.namespaces)
    names = [n for n in names if n.startswith(prefix or "")]
    page, pagination = _page(names, limit, token)
    descriptions = [_namespace_description(index, n) for n in page]
    return {"namespaces": descriptions, "total_count": len(names), **pagination}


def create_namespace(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /namespaces``: an empty namespace, optionally with a metadata schema."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("The namespace name must be a non-empty string.")
    if name == DEFAULT_NAMESPACE or name in index.namespaces:
        raise PineconeApiError(409, "ALREADY_EXISTS", f"Namespace {name} already exists.")
    schema = body.get("schema")
    if schema is not None and not (
        isinstance(schema, dict) and isinstance(schema.get("fields"), dict)
    ):
        raise invalid("The namespace schema must be an object with a fields object.")
    index.writable_namespace(name).schema = schema
    return _namespace_description(index, name)


def describe_namespace(index: IndexState, name: str) -> dict[str, Any]:
    """``GET /namespaces/{namespace}``: the record count of one namespace."""
    return _namespace_description(index, name)


def delete_namespace(index: IndexState, name: str) -> dict[str, Any]:
    """``DELETE /namespaces/{namespace}``: drop a namespace and all of its records."""
    _namespace_description(index, name)
    del index.namespaces[_internal_name(name)]
    return {}


def _public_name(name: str) -> str:
    return name or DEFAULT_NAMESPACE


def _internal_name(name: str) -> str:
    return "" if name == DEFAULT_NAMESPACE else name


def _namespace_description(index: IndexState, name: str) -> dict[str, Any]:
    namespace = index.namespace(_internal_name(name))
    if namespace is None:
        raise PineconeApiError(404, "NOT_FOUND", f"Namespace {name} not found.")
    description: dict[str, Any] = {"name": name, "record_count": len(namespace)}
    if namespace.schema is not None:
        description["schema"] = namespace.schema
    return description


def _page(keys: list[str], limit: Any, token: str | None) -> tuple[list[str], dict[str, Any]]:
    """One page of sorted *keys* after *token*, and the ``pagination`` field when more remain.

    The token's place is found by bisection, so paging through N keys costs O(N), not O(N^2).
    """
    page_size = DEFAULT_LIST_LIMIT if limit is None else limit
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise invalid(f"limit must be a positive integer; got {page_size!r}.")
    after = _decode_token(token) if token else None
    start = bisect_right(keys, after) if after is not None else 0
    chosen = keys[start : start + page_size + 1]
    page = chosen[:page_size]
    if len(chosen) > page_size:
        return page, {"pagination": {"next": _encode_token(page[-1])}}
    return page, {}


def describe_stats(index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /describe_index_stats``: vector counts per namespace."""
    if body.get("filter"):
        raise invalid(
            "Serverless and starter indexes do not support describing index stats "
            "with metadata filtering."
        )
    return index.stats()


def _selection_filter(spec: Any) -> Predicate:
    """Compile the filter of a delete or update; an empty one would select every record."""
    if not spec:
        raise invalid("The filter of a delete or update must not be empty.")
    return compile_filter(spec)


def _namespace(body: dict[str, Any]) -> str:
    name = body.get("namespace") or ""
    if not isinstance(name, str):
        raise invalid("namespace must be a string.")
    return name


def _check_ids(ids: Any) -> None:
    if not isinstance(ids, list) or not ids:
        raise invalid("ids must be a non-empty array of strings.")
    if len(ids) > MAX_IDS_PER_REQUEST:
        raise invalid(
            f"The number of ids ({len(ids)}) exceeds the maximum of {MAX_IDS_PER_REQUEST} "
            "per request."
        )
    for record_id in ids:
        parse_id(record_id)


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError) as error:
        raise PineconeApiError(400, "INVALID_ARGUMENT", "Invalid pagination token.") from error
