"""Metadata filters as boolean row masks over the memory store's columns.

LlamaIndex's own `build_metadata_filter_fn` tests one node at a time in Python; at a million
rows that is seconds per query, so each metadata key becomes a column (numeric as float64,
the rest as objects) and a filter becomes one vectorised comparison per condition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilters,
)

# ---------------------------------------------------------------------------------------------
# Metadata filters -> boolean row masks
# ---------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(values: list[Any]) -> np.ndarray:
    return np.fromiter(
        (v if _is_number(v) else np.nan for v in values), dtype=np.float64, count=len(values)
    )


def _compare(operator: FilterOperator, stored: Any, wanted: Any) -> bool:
    try:
        if operator == FilterOperator.GT:
            return stored > wanted
        if operator == FilterOperator.GTE:
            return stored >= wanted
        if operator == FilterOperator.LT:
            return stored < wanted
        return stored <= wanted
    except TypeError:
        return False


def _contains(container: Any, item: Any) -> bool:
    try:
        return item in container
    except TypeError:
        return False


def _text(operator: FilterOperator, stored: Any, wanted: Any) -> str:
    """A stored string for TEXT_MATCH; anything else is a `TypeError`, as in LlamaIndex's
    filters (a silent non-match would hide a filter on the wrong field)."""
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored
    raise TypeError(
        f"Both metadata_value and value should be strings to be used with a {operator.name} "
        f"filter (got {type(stored).__name__} and {type(wanted).__name__})"
    )


def _predicate(operator: FilterOperator, wanted: Any) -> Callable[[Any], bool]:
    """Per-value predicate with LlamaIndex semantics: a missing value only matches NE/NIN."""
    if operator == FilterOperator.IS_EMPTY:
        return lambda v: v is None or v == "" or v == []
    if operator == FilterOperator.NE:
        return lambda v: v is None or v != wanted
    if operator == FilterOperator.NIN:
        return lambda v: v is None or not _contains(wanted, v)
    simple: dict[FilterOperator, Callable[[Any], bool]] = {
        FilterOperator.EQ: lambda v: v == wanted,
        FilterOperator.IN: lambda v: _contains(wanted, v),
        FilterOperator.CONTAINS: lambda v: _contains(v, wanted),
        FilterOperator.TEXT_MATCH: lambda v: wanted in _text(operator, v, wanted),
        FilterOperator.TEXT_MATCH_INSENSITIVE: (
            lambda v: wanted.lower() in _text(operator, v, wanted).lower()
        ),
        FilterOperator.ANY: lambda v: any(_contains(v, w) for w in wanted),
        FilterOperator.ALL: lambda v: all(_contains(v, w) for w in wanted),
    }
    if operator in simple:
        test = simple[operator]
        return lambda v: v is not None and test(v)
    if operator in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
        return lambda v: v is not None and _compare(operator, v, wanted)
    raise ValueError(f"MemoryVectorStore does not support filter operator {operator!r}")


_NUMERIC_OPS: dict[FilterOperator, Callable[[np.ndarray, float], np.ndarray]] = {
    FilterOperator.EQ: np.equal,
    FilterOperator.GT: np.greater,
    FilterOperator.GTE: np.greater_equal,
    FilterOperator.LT: np.less,
    FilterOperator.LTE: np.less_equal,
}


class Column:
    """One metadata key's values for all rows, plus a float view for vectorised comparisons."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self._numeric: np.ndarray | None = None
        self._objects: np.ndarray | None = None

    @property
    def numeric(self) -> np.ndarray:
        if self._numeric is None:
            self._numeric = _numeric_column(self.values)
        return self._numeric

    @property
    def objects(self) -> np.ndarray:
        if self._objects is None:
            self._objects = np.fromiter(self.values, dtype=object, count=len(self.values))
        return self._objects

    def mask(self, operator: FilterOperator, wanted: Any) -> np.ndarray:
        if operator in _NUMERIC_OPS and _is_number(wanted):
            return _NUMERIC_OPS[operator](self.numeric, wanted)
        if operator in (FilterOperator.EQ, FilterOperator.NE) and isinstance(wanted, str):
            equal = np.asarray(self.objects == wanted, dtype=bool)
            return equal if operator == FilterOperator.EQ else ~equal
        test = _predicate(operator, wanted)
        return np.fromiter(map(test, self.values), dtype=bool, count=len(self.values))


def filters_mask(
    filters: MetadataFilters, column: Callable[[str], Column], size: int
) -> np.ndarray:
    masks = [
        filters_mask(f, column, size)
        if isinstance(f, MetadataFilters)
        else column(f.key).mask(getattr(f, "operator", FilterOperator.EQ), f.value)
        for f in filters.filters
    ]
    if not masks:
        return np.ones(size, dtype=bool)
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return np.logical_and.reduce(masks)
    any_match = np.logical_or.reduce(masks)
    if condition == FilterCondition.OR:
        return any_match
    if condition == FilterCondition.NOT:
        return ~any_match
    raise ValueError(f"MemoryVectorStore does not support filter condition {condition!r}")
