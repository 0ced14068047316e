"""The LlamaIndex query options each store answers, checked before any query is sent.

Why: LlamaIndex's integrations disagree, often silently. Upstream Chroma ignores `node_ids`
in a query and raises a bare `ValueError` deep inside the query for operators it lacks;
Pinecone's has no MMR; SimpleVectorStore raises `TypeError` on a TEXT_MATCH against a number.
A query through the factory's store (`CatalogVectorStore`) therefore either gets the same
results on every backend or is refused up front with one `QueryOptionError` that names the
store and the option:

- `vector_store_query_mode="mmr"` (with `mmr_threshold`, `mmr_prefetch_factor` or
  `mmr_prefetch_k`) runs here, the same way for every backend: the store's top candidates by
  cosine, re-embedded through the app's embedding model (and cache) so the MMR sees identical
  vectors everywhere, then LlamaIndex's `get_top_k_mmr_embeddings`. Scores stay cosine.
- `doc_ids` become a filter on the chunks' `doc_id` metadata, which every backend evaluates.
- Filters: every backend evaluates EQ, NE, GT, GTE, LT, LTE, IN, NIN combined with AND / OR
  at any depth; the memory store also evaluates TEXT_MATCH, TEXT_MATCH_INSENSITIVE,
  CONTAINS, ANY, ALL, IS_EMPTY, the NOT condition and `node_ids`. Range operators take
  numbers and TEXT_MATCH takes a string on every store (Chroma and Pinecone compare numbers
  only; a string would compare differently per store).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from rag_app.errors import RagAppError

COMMON_OPERATORS = frozenset(
    {
        FilterOperator.EQ,
        FilterOperator.NE,
        FilterOperator.GT,
        FilterOperator.GTE,
        FilterOperator.LT,
        FilterOperator.LTE,
        FilterOperator.IN,
        FilterOperator.NIN,
    }
)
COMMON_CONDITIONS = frozenset({FilterCondition.AND, FilterCondition.OR})
RANGE_OPERATORS = frozenset(
    {FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE}
)
LIST_OPERATORS = frozenset(
    {FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL}
)
TEXT_OPERATORS = frozenset({FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE})
MMR_OPTIONS = ("mmr_threshold", "mmr_prefetch_factor", "mmr_prefetch_k")
DEFAULT_MMR_PREFETCH_FACTOR = 4.0


@dataclass(frozen=True)
class StoreAbilities:
    operators: frozenset[FilterOperator]
    conditions: frozenset[FilterCondition]
    node_ids: bool


COMMON = StoreAbilities(COMMON_OPERATORS, COMMON_CONDITIONS, node_ids=False)
ABILITIES: dict[str, StoreAbilities] = {
    "memory": StoreAbilities(frozenset(FilterOperator), frozenset(FilterCondition), True),
    "chroma": COMMON,
    "pinecone": COMMON,
}


class QueryOptionError(RagAppError):
    """A query option this store cannot answer the way every other store does."""


@dataclass(frozen=True)
class MMR:
    """The MMR options of one query."""

    threshold: float | None
    prefetch: int


def check_query(
    query: VectorStoreQuery, store: str, kwargs: dict[str, Any]
) -> tuple[VectorStoreQuery, MMR | None]:
    """The query to send (doc_ids as a filter, mode DEFAULT) and its MMR options, if any.

    MMR keyword options are taken out of `kwargs`. Raises `QueryOptionError` before any query.
    """
    abilities = ABILITIES.get(store, COMMON)
    mmr = _mmr_options(query, store, kwargs)
    if query.node_ids and not abilities.node_ids:
        _refuse(store, "node_ids", "restrict by document with doc_ids, or filter on metadata")
    filters = _with_doc_ids(query.filters, query.doc_ids)
    if filters is not None:
        for item in _walk(filters):
            _check_item(item, store, abilities)
    mode = VectorStoreQueryMode.DEFAULT
    return replace(query, filters=filters, doc_ids=None, mode=mode), mmr


def _mmr_options(query: VectorStoreQuery, store: str, kwargs: dict[str, Any]) -> MMR | None:
    options = {name: kwargs.pop(name) for name in MMR_OPTIONS if name in kwargs}
    if query.mode == VectorStoreQueryMode.DEFAULT:
        if options:
            _refuse(store, ", ".join(options), 'they need vector_store_query_mode="mmr"')
        return None
    if query.mode != VectorStoreQueryMode.MMR:
        _refuse(
            store,
            f"vector_store_query_mode={query.mode.value!r}",
            'use "default" or "mmr" (for dense + keyword retrieval: RagApp.as_query_engine() '
            "with RAG_RETRIEVER=hybrid)",
        )
    threshold = options.get("mmr_threshold", query.mmr_threshold)
    if threshold is not None and not 0 <= threshold <= 1:
        _refuse(store, f"mmr_threshold={threshold!r}", "it must be between 0 and 1")
    if "mmr_prefetch_k" in options and "mmr_prefetch_factor" in options:
        _refuse(store, "mmr_prefetch_k with mmr_prefetch_factor", "give one of them")
    factor = options.get("mmr_prefetch_factor", DEFAULT_MMR_PREFETCH_FACTOR)
    prefetch = options.get("mmr_prefetch_k") or math.ceil(query.similarity_top_k * factor)
    return MMR(threshold, max(int(prefetch), query.similarity_top_k))


def _with_doc_ids(
    filters: MetadataFilters | None, doc_ids: list[str] | None
) -> MetadataFilters | None:
    if not doc_ids:
        return filters
    by_document = MetadataFilter(key="doc_id", operator=FilterOperator.IN, value=list(doc_ids))
    if filters is None or not filters.filters:
        return MetadataFilters(filters=[by_document])
    return MetadataFilters(filters=[filters, by_document], condition=FilterCondition.AND)


def _walk(filters: MetadataFilters) -> Iterator[MetadataFilter | MetadataFilters]:
    yield filters
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            yield from _walk(item)
        else:
            yield item


def _check_item(item: MetadataFilter | MetadataFilters, store: str, abilities: StoreAbilities):
    if isinstance(item, MetadataFilters):
        condition = item.condition or FilterCondition.AND
        if condition not in abilities.conditions:
            _refuse(store, f"filter condition {condition.value.upper()}", _only(abilities))
        return
    operator, value = item.operator, item.value
    if operator not in abilities.operators:
        _refuse(store, f"filter operator {operator.name} (key {item.key!r})", _only(abilities))
    if operator in RANGE_OPERATORS and not _is_number(value):
        _refuse(store, f"{operator.name} on {item.key!r} with {value!r}", "compare numbers")
    if operator in LIST_OPERATORS and not isinstance(value, list):
        _refuse(store, f"{operator.name} on {item.key!r} with {value!r}", "give a list")
    if operator in TEXT_OPERATORS and not isinstance(value, str):
        _refuse(store, f"{operator.name} on {item.key!r} with {value!r}", "give a string")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _only(abilities: StoreAbilities) -> str:
    operators = ", ".join(sorted(o.name for o in abilities.operators))
    conditions = "/".join(sorted(c.value.upper() for c in abilities.conditions))
    return f"it supports {operators} combined with {conditions}"


def _refuse(store: str, option: str, fix: str) -> None:
    raise QueryOptionError(f"The {store} store does not support {option} ({fix}).")
