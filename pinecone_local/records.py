"""Validation of request records against Pinecone's documented limits.

Every check raises a 400 error with a message in Pinecone's words, so code that works here does
not start failing when it meets the real service: ASCII ids of at most 512 characters without
NUL (Pinecone refuses Korean or emoji ids, so callers must derive ASCII ones), dense values
whose length equals the index dimension and that are not all zero, sparse values with matching
index/value arrays (on sparse indexes, where they are required and dense values are refused, and
on dense ``dotproduct`` indexes), and flat metadata of at most 40 KB whose values are strings,
numbers, booleans or lists of strings (no nulls, no nested objects).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pinecone_local.errors import invalid

MAX_ID_LENGTH = 512
MAX_METADATA_BYTES = 40 * 1024
MAX_SPARSE_ENTRIES = 1000
MAX_SPARSE_INDEX = 2**32 - 1
SPARSE_UNSUPPORTED = (
    "Index configuration does not support sparse values - only indexes that are sparse or "
    "using dotproduct are supported"
)


@dataclass
class Record:
    """One validated vector, ready to be stored."""

    id: str
    values: np.ndarray
    sparse: dict[str, list] | None
    metadata: dict[str, Any] | None


def parse_record(raw: Any, dimension: int, accepts_sparse: bool) -> Record:
    """Validate one element of an upsert's ``vectors`` array (*dimension* 0: a sparse index)."""
    if not isinstance(raw, dict):
        raise invalid("Each vector must be a JSON object.")
    record_id = parse_id(raw.get("id"))
    sparse = parse_sparse(raw.get("sparseValues"))
    values = _sparse_record_values(raw, record_id, sparse) if dimension == 0 else None
    if dimension:
        values = _dense_record_values(raw, record_id, dimension)
        if sparse is not None and not accepts_sparse:
            raise invalid(SPARSE_UNSUPPORTED)
    metadata = None if raw.get("metadata") is None else parse_metadata(raw["metadata"])
    return Record(record_id, values, sparse, metadata)


def _dense_record_values(raw: dict[str, Any], record_id: str, dimension: int) -> np.ndarray:
    if raw.get("values") is None:
        raise invalid(f"Vector '{record_id}' is missing dense values.")
    values = parse_values(raw["values"], dimension)
    if not np.any(values):
        raise invalid(f"Dense vector '{record_id}' must contain at least one non-zero value.")
    return values


def _sparse_record_values(
    raw: dict[str, Any], record_id: str, sparse: dict[str, list] | None
) -> np.ndarray:
    if raw.get("values"):
        raise invalid(
            f"Vector '{record_id}' has dense values, but sparse indexes accept only "
            "sparseValues; remove values or use a dense index."
        )
    if sparse is None or not sparse["indices"]:
        raise invalid(f"Vector '{record_id}' must have non-empty sparseValues for a sparse index.")
    return np.zeros(0, dtype=np.float32)


def parse_id(raw: Any) -> str:
    """Validate a record id: a non-empty ASCII string of at most 512 characters, without NUL."""
    if not isinstance(raw, str) or not raw:
        raise invalid("Vector id must be a non-empty string.")
    if len(raw) > MAX_ID_LENGTH:
        raise invalid(f"Vector id length {len(raw)} exceeds the maximum length of {MAX_ID_LENGTH}.")
    if not raw.isascii():
        raise invalid(f"Vector ID must be ASCII; got {raw!r}.")
    if "\0" in raw:
        raise invalid("Vector ID must not contain null character.")
    return raw


def parse_values(raw: Any, dimension: int) -> np.ndarray:
    """Validate dense values and convert them to a float32 array of the index dimension."""
    if not isinstance(raw, list) or not all(_is_finite_number(v) for v in raw):
        raise invalid("Vector values must be an array of finite numbers.")
    if len(raw) != dimension:
        raise invalid(
            f"Vector dimension {len(raw)} does not match the dimension of the index {dimension}"
        )
    return np.asarray(raw, dtype=np.float32)


def parse_sparse(raw: Any) -> dict[str, list] | None:
    """Validate sparse values: equal-length ``indices`` and ``values`` with unique indices."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("sparseValues must be an object with indices and values.")
    indices, values = raw.get("indices"), raw.get("values")
    if not isinstance(indices, list) or not isinstance(values, list):
        raise invalid("sparseValues must contain the arrays indices and values.")
    if len(indices) != len(values):
        raise invalid("Sparse vector indices and values must have the same length.")
    if len(indices) > MAX_SPARSE_ENTRIES:
        raise invalid(f"Sparse vector has more than {MAX_SPARSE_ENTRIES} non-zero values.")
    if not all(_is_index(i) for i in indices) or not all(_is_finite_number(v) for v in values):
        raise invalid("Sparse indices must be unsigned 32-bit integers and values numbers.")
    if len(set(indices)) != len(indices):
        raise invalid("Sparse vector indices must be unique.")
    return {"indices": list(indices), "values": [float(v) for v in values]}


def parse_metadata(raw: Any) -> dict[str, Any]:
    """Validate a metadata object's value types and its 40 KB size limit."""
    if not isinstance(raw, dict):
        raise invalid("Metadata must be a JSON object.")
    for key, value in raw.items():
        _check_metadata_value(key, value)
    check_metadata_size(raw)
    return dict(raw)


def check_metadata_size(metadata: dict[str, Any]) -> None:
    """Reject metadata whose JSON encoding exceeds 40 KB."""
    size = len(json.dumps(metadata, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise invalid(
            f"Metadata size is {size} bytes, which exceeds the limit of "
            f"{MAX_METADATA_BYTES} bytes per vector"
        )


def _check_metadata_value(key: str, value: Any) -> None:
    if value is None:
        raise invalid(
            f"Metadata field '{key}' is null; null metadata values are not supported, "
            "remove the key instead."
        )
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise invalid(f"Metadata field '{key}' is a list whose items are not all strings.")
        return
    if isinstance(value, dict):
        raise invalid(f"Metadata field '{key}' is a nested object, which is not supported.")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(f"Metadata field '{key}' is not a finite number.")
    if not isinstance(value, (str, int, float, bool)):
        raise invalid(f"Metadata field '{key}' has an unsupported type.")


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SPARSE_INDEX
