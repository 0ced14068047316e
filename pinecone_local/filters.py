"""Pinecone's metadata filter language, compiled once per request into a Python predicate.

Semantics follow Pinecone's MongoDB-derived language: a bare value means ``$eq``; several fields
(or several operators on one field) are AND-ed; a list-of-strings field matches ``$eq``/``$in``
when any element matches, and ``$ne``/``$nin`` only when no element does; ``$ne``, ``$nin`` and
``$exists: false`` match records that lack the field. Comparisons are type-strict (``True`` is
not ``1``), and ``$gt``/``$gte``/``$lt``/``$lte`` take numbers only. Malformed filters raise a
400 error, as Pinecone does, instead of silently matching nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from pinecone_local.errors import invalid

Metadata = Mapping[str, Any]
Predicate = Callable[[Metadata], bool]

_MISSING = object()
_RANGE_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def compile_filter(spec: Any) -> Predicate:
    """Compile a filter document into a predicate over a record's metadata."""
    if spec is None:
        return _always
    if not isinstance(spec, dict):
        raise invalid("The filter must be a JSON object.")
    clauses = [_compile_entry(key, value) for key, value in spec.items()]
    return _all_of(clauses)


def _compile_entry(key: str, value: Any) -> Predicate:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise invalid(f"The {key} operator must be given a non-empty array of filters.")
        parts = [compile_filter(item) for item in value]
        return _all_of(parts) if key == "$and" else _any_of(parts)
    if key.startswith("$"):
        raise invalid(f"Unsupported top-level filter operator: {key}.")
    if isinstance(value, dict):
        if not value:
            raise invalid(f"The filter for field '{key}' has no operator.")
        return _all_of([_compile_operator(key, op, arg) for op, arg in value.items()])
    _require_scalar(key, "$eq", value)
    return _field_test(key, lambda actual: _equals(actual, value), on_missing=False)


def _compile_operator(field: str, op: str, arg: Any) -> Predicate:
    if op in ("$eq", "$ne"):
        _require_scalar(field, op, arg)
        test = _field_test(field, lambda actual: _equals(actual, arg), on_missing=False)
        return test if op == "$eq" else _negate(test)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise invalid(f"The {op} operator for field '{field}' must be given an array.")
        for item in arg:
            _require_scalar(field, op, item)
        test = _field_test(field, lambda actual: any(_equals(actual, v) for v in arg), False)
        return test if op == "$in" else _negate(test)
    if op in _RANGE_OPERATORS:
        if not _is_number(arg):
            raise invalid(f"The {op} operator for field '{field}' must be given a number.")
        compare = _RANGE_OPERATORS[op]
        return _field_test(field, lambda actual: _is_number(actual) and compare(actual, arg), False)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise invalid(f"The $exists operator for field '{field}' must be given a boolean.")
        return lambda metadata: (field in metadata) == arg
    raise invalid(f"Unsupported filter operator {op} for field '{field}'.")


def _field_test(field: str, test: Callable[[Any], bool], on_missing: bool) -> Predicate:
    """Apply *test* to the field's value, or to each element when the value is a list."""

    def predicate(metadata: Metadata) -> bool:
        actual = metadata.get(field, _MISSING)
        if actual is _MISSING:
            return on_missing
        if isinstance(actual, list):
            return any(test(element) for element in actual)
        return test(actual)

    return predicate


def _equals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if _is_number(actual) and _is_number(expected):
        return float(actual) == float(expected)
    return type(actual) is type(expected) and actual == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_scalar(field: str, op: str, value: Any) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise invalid(
            f"The {op} operator for field '{field}' must be given a string, number or boolean."
        )


def _negate(predicate: Predicate) -> Predicate:
    return lambda metadata: not predicate(metadata)


def _all_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda metadata: all(part(metadata) for part in parts)


def _any_of(parts: list[Predicate]) -> Predicate:
    return lambda metadata: any(part(metadata) for part in parts)


def _always(metadata: Metadata) -> bool:
    return True
