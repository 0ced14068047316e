"""Behaviour of pinecone-local through the official SDK, raw HTTP and LlamaIndex.

Every test talks to a real server process over real HTTP (started by
``tests.support.pinecone_server``), so these tests also prove the SDK runs unchanged against it.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pinecone import Pinecone, ServerlessSpec
from pinecone.errors.exceptions import ApiError, ConflictError, NotFoundError

from pinecone_local import http_host, main
from tests.support.pinecone_server import running_pinecone_local

API_KEY = "pinecone-local-test"
HEADERS = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2025-10"}
SPEC = ServerlessSpec(cloud="aws", region="us-east-1")
FAULT_STATUSES = {429, 500, 503}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_pinecone_local(tmp_path_factory.mktemp("pinecone-local")) as url:
        yield url


@pytest.fixture(scope="module")
def pc(server_url: str) -> Iterator[Pinecone]:
    client = Pinecone(api_key=API_KEY, host=server_url)
    yield client
    client.close()


@pytest.fixture
def make_index(pc: Pinecone) -> Iterator[Any]:
    """Create indexes with unique names; delete them after the test."""
    names: list[str] = []

    def create(dimension: int = 3, metric: str = "cosine") -> Any:
        name = f"t-{uuid.uuid4().hex[:12]}"
        names.append(name)
        pc.create_index(name=name, dimension=dimension, metric=metric, spec=SPEC)
        return pc.Index(host=http_host(pc.describe_index(name).host))

    yield create
    for name in names:
        if pc.has_index(name):
            pc.delete_index(name)


# ---- control plane -------------------------------------------------------------------------


def test_index_lifecycle_through_the_sdk(pc: Pinecone) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    created = pc.create_index(name=name, dimension=8, metric="dotproduct", spec=SPEC)
    assert created.name == name
    described = pc.describe_index(name)
    assert described.status.ready is True
    assert described.status.state == "Ready"
    assert described.dimension == 8
    assert described.metric == "dotproduct"
    assert described.host.startswith("https://127.0.0.1:")
    assert described.spec.serverless.cloud == "aws"
    assert pc.has_index(name)
    assert name in [index.name for index in pc.list_indexes()]

    with pytest.raises(ConflictError) as conflict:
        pc.create_index(name=name, dimension=8, metric="dotproduct", spec=SPEC)
    assert conflict.value.status_code == 409
    assert conflict.value.body["error"]["code"] == "ALREADY_EXISTS"

    pc.delete_index(name)
    assert not pc.has_index(name)
    with pytest.raises(NotFoundError) as missing:
        pc.describe_index(name)
    assert missing.value.body == {
        "error": {"code": "NOT_FOUND", "message": f"Index {name} not found."},
        "status": 404,
    }
    with pytest.raises(NotFoundError):
        pc.delete_index(name, timeout=-1)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "no-cloud", "dimension": 3, "spec": {"serverless": {}}}, 422, None),
        (
            {
                "name": "Bad_Name",
                "dimension": 3,
                "spec": {"serverless": {"cloud": "aws", "region": "r"}},
            },
            400,
            "INVALID_ARGUMENT",
        ),
        ({"name": "no-spec", "dimension": 3}, 422, "UNPROCESSABLE_ENTITY"),
        (
            {
                "name": "bad-metric",
                "dimension": 3,
                "metric": "manhattan",
                "spec": {"serverless": {"cloud": "aws", "region": "r"}},
            },
            400,
            "INVALID_ARGUMENT",
        ),
        (
            {
                "name": "zero-dim",
                "dimension": 0,
                "spec": {"serverless": {"cloud": "aws", "region": "r"}},
            },
            400,
            "INVALID_ARGUMENT",
        ),
        (
            {
                "name": "pod-index",
                "dimension": 3,
                "spec": {"pod": {"environment": "e", "pod_type": "p1.x1"}},
            },
            400,
            "INVALID_ARGUMENT",
        ),
    ],
)
def test_create_index_rejects_bad_input(
    server_url: str, body: dict[str, Any], status: int, code: str | None
) -> None:
    response = httpx.post(f"{server_url}/indexes", json=body, headers=HEADERS)
    assert response.status_code == status
    payload = response.json()
    assert payload["status"] == status
    assert set(payload["error"]) == {"code", "message"}
    if code is not None:
        assert payload["error"]["code"] == code
    assert (
        httpx.get(f"{server_url}/indexes/{body['name'].lower()}", headers=HEADERS).status_code
        == 404
    )


def test_deletion_protection_blocks_delete(pc: Pinecone) -> None:
    name = f"prot-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, spec=SPEC, deletion_protection="enabled")
    with pytest.raises(ApiError) as forbidden:
        pc.delete_index(name)
    assert forbidden.value.status_code == 403
    pc.configure_index(name, deletion_protection="disabled")
    pc.delete_index(name)
    assert not pc.has_index(name)


def test_each_index_has_its_own_host_and_data(make_index: Any) -> None:
    first, second = make_index(dimension=2), make_index(dimension=2)
    assert first.host != second.host
    first.upsert(vectors=[("only-in-first", [1.0, 0.0])])
    second.upsert(vectors=[("only-in-second", [0.0, 1.0])])
    assert list(first.fetch(ids=["only-in-first", "only-in-second"]).vectors) == ["only-in-first"]
    assert list(second.fetch(ids=["only-in-first", "only-in-second"]).vectors) == ["only-in-second"]


def test_data_plane_of_a_deleted_index_answers_not_found(pc: Pinecone) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, spec=SPEC)
    url = http_host(pc.describe_index(name).host)
    pc.delete_index(name)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            response = httpx.post(f"{url}/describe_index_stats", json={}, headers=HEADERS)
        except (httpx.ConnectError, httpx.ReadError):  # closed, or reset while it closes
            return
        assert response.status_code == 404
        assert response.json()["code"] == 5
        time.sleep(0.05)
    raise AssertionError("the deleted index's port is still open")


# ---- data plane ----------------------------------------------------------------------------


def test_upsert_fetch_update_delete_round_trip(make_index: Any) -> None:
    index = make_index(dimension=3, metric="dotproduct")
    upserted = index.upsert(
        vectors=[
            {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"genre": "drama", "year": 2019}},
            {
                "id": "b",
                "values": [0.0, 1.0, 0.0],
                "sparse_values": {"indices": [1, 7], "values": [0.5, 0.25]},
            },
            ("c", [0.0, 0.0, 1.0], {"tags": ["x", "y"]}),
        ]
    )
    assert upserted.upserted_count == 3

    fetched = index.fetch(ids=["a", "b", "missing"]).vectors
    assert set(fetched) == {"a", "b"}
    assert fetched["a"].values == [1.0, 0.0, 0.0]
    assert fetched["a"].metadata == {"genre": "drama", "year": 2019}
    assert fetched["b"].sparse_values.indices == [1, 7]

    index.update(id="a", values=[0.5, 0.5, 0.0], set_metadata={"year": 2020, "new": True})
    updated = index.fetch(ids=["a"]).vectors["a"]
    assert updated.values == [0.5, 0.5, 0.0]
    assert updated.metadata == {"genre": "drama", "year": 2020, "new": True}

    assert index.update(filter={"tags": "x"}, set_metadata={"seen": True}).matched_records == 1
    assert index.fetch(ids=["c"]).vectors["c"].metadata == {"tags": ["x", "y"], "seen": True}

    index.delete(ids=["b", "never-existed"])
    stats = index.describe_index_stats()
    assert stats.total_vector_count == 2
    assert stats.dimension == 3
    assert stats.metric == "dotproduct"
    assert stats.namespaces[""].vector_count == 2

    index.delete(filter={"genre": {"$eq": "drama"}})
    assert set(index.fetch(ids=["a", "c"]).vectors) == {"c"}
    index.delete(delete_all=True)
    assert index.describe_index_stats().total_vector_count == 0


def test_upsert_overwrites_an_existing_id(make_index: Any) -> None:
    index = make_index(dimension=2)
    index.upsert(vectors=[("a", [1.0, 0.0], {"v": 1})])
    index.upsert(vectors=[("a", [0.0, 1.0])])
    stored = index.fetch(ids=["a"]).vectors["a"]
    assert stored.values == [0.0, 1.0]
    assert stored.metadata is None
    assert index.describe_index_stats().total_vector_count == 1


def test_list_pages_through_sorted_ids(make_index: Any) -> None:
    index = make_index(dimension=2)
    ids = [f"doc{n % 3}#chunk{n:02d}" for n in range(25)]
    index.upsert(vectors=[(i, [1.0, float(n)]) for n, i in enumerate(ids)], namespace="ns")

    first = index.list_paginated(limit=10, namespace="ns")
    assert [item.id for item in first.vectors] == sorted(ids)[:10]
    assert first.pagination is not None
    pages = list(index.list(limit=10, namespace="ns"))
    assert [len(page.vectors) for page in pages] == [10, 10, 5]
    assert [item.id for page in pages for item in page.vectors] == sorted(ids)

    prefixed = [item.id for page in index.list(prefix="doc1#", namespace="ns") for item in page]
    assert prefixed == sorted(i for i in ids if i.startswith("doc1#"))
    assert list(index.list(namespace="other")) == []


def test_namespaces_are_isolated(make_index: Any) -> None:
    index = make_index(dimension=2)
    index.upsert(vectors=[("same-id", [1.0, 0.0], {"ns": "one"})], namespace="one")
    index.upsert(vectors=[("same-id", [0.0, 1.0], {"ns": "two"})], namespace="two")
    index.upsert(vectors=[("default", [1.0, 1.0])])

    in_one = index.query(vector=[1.0, 0.0], top_k=10, namespace="one", include_metadata=True)
    assert [(m.id, m.metadata) for m in in_one.matches] == [("same-id", {"ns": "one"})]
    assert in_one.namespace == "one"
    assert index.fetch(ids=["same-id"], namespace="two").vectors["same-id"].values == [0.0, 1.0]
    assert index.fetch(ids=["same-id"]).vectors == {}

    stats = index.describe_index_stats()
    assert {name: ns.vector_count for name, ns in stats.namespaces.items()} == {
        "one": 1,
        "two": 1,
        "": 1,
    }
    index.delete(delete_all=True, namespace="one")
    stats = index.describe_index_stats()
    assert set(stats.namespaces) == {"two", ""}
    assert stats.total_vector_count == 2


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_scores_match_numpy(make_index: Any, metric: str) -> None:
    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    query = rng.normal(size=16).astype(np.float32)
    index = make_index(dimension=16, metric=metric)
    index.upsert(vectors=[(f"v{n}", row.tolist()) for n, row in enumerate(vectors)])

    if metric == "cosine":
        expected = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        order = np.argsort(-expected)
    elif metric == "dotproduct":
        expected = vectors @ query
        order = np.argsort(-expected)
    else:
        expected = ((vectors - query) ** 2).sum(axis=1)
        order = np.argsort(expected)

    result = index.query(vector=query.tolist(), top_k=10, include_values=True)
    assert [m.id for m in result.matches] == [f"v{n}" for n in order[:10]]
    np.testing.assert_allclose(
        [m.score for m in result.matches], expected[order[:10]], rtol=1e-4, atol=1e-4
    )
    assert result.matches[0].values == pytest.approx(vectors[order[0]].tolist())


def test_query_by_id_and_include_flags(make_index: Any) -> None:
    index = make_index(dimension=2, metric="dotproduct")
    index.upsert(vectors=[("a", [1.0, 0.0], {"k": "a"}), ("b", [2.0, 0.0]), ("c", [0.0, 1.0])])
    by_id = index.query(id="a", top_k=2)
    assert [m.id for m in by_id.matches] == ["b", "a"]
    assert by_id.matches[0].score == pytest.approx(2.0)
    assert by_id.matches[0].values == []
    assert by_id.matches[1].metadata is None
    with_meta = index.query(id="a", top_k=3, include_metadata=True)
    assert {m.id: m.metadata for m in with_meta.matches}["a"] == {"k": "a"}
    assert index.query(id="not-there", top_k=3).matches == []


def test_sparse_values_add_to_dotproduct_scores(make_index: Any) -> None:
    index = make_index(dimension=2, metric="dotproduct")
    index.upsert(
        vectors=[
            {"id": "a", "values": [1.0, 0.0], "sparse_values": {"indices": [3], "values": [2.0]}},
            {"id": "b", "values": [1.0, 0.0]},
        ]
    )
    result = index.query(
        vector=[1.0, 0.0], sparse_vector={"indices": [3], "values": [0.5]}, top_k=2
    )
    assert [(m.id, pytest.approx(m.score)) for m in result.matches] == [("a", 2.0), ("b", 1.0)]


FILTER_RECORDS: dict[str, dict[str, Any]] = {
    "a": {"genre": "drama", "year": 2019, "tags": ["x", "y"], "flag": True},
    "b": {"genre": "comedy", "year": 2020, "tags": ["y"], "flag": False},
    "c": {"genre": "drama", "year": 2021, "rating": 4.5},
    "d": {"genre": "documentary", "year": 1},
    "e": {},
}

FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"genre": "drama"}, {"a", "c"}),
    ({"genre": {"$eq": "drama"}}, {"a", "c"}),
    ({"genre": {"$ne": "drama"}}, {"b", "d", "e"}),
    ({"year": {"$gt": 2019}}, {"b", "c"}),
    ({"year": {"$gte": 2019}}, {"a", "b", "c"}),
    ({"year": {"$lt": 2020}}, {"a", "d"}),
    ({"year": {"$lte": 2020}}, {"a", "b", "d"}),
    ({"rating": {"$gt": 4}}, {"c"}),
    ({"genre": {"$in": ["comedy", "documentary"]}}, {"b", "d"}),
    ({"genre": {"$nin": ["comedy", "documentary"]}}, {"a", "c", "e"}),
    ({"rating": {"$exists": True}}, {"c"}),
    ({"rating": {"$exists": False}}, {"a", "b", "d", "e"}),
    ({"tags": "y"}, {"a", "b"}),
    ({"tags": {"$in": ["x"]}}, {"a"}),
    ({"tags": {"$nin": ["x"]}}, {"b", "c", "d", "e"}),
    ({"tags": {"$ne": "y"}}, {"c", "d", "e"}),
    ({"flag": True}, {"a"}),
    ({"flag": 1}, set()),
    ({"year": True}, set()),
    ({"genre": "drama", "year": 2019}, {"a"}),
    ({"year": {"$gte": 2019, "$lt": 2021}}, {"a", "b"}),
    ({"$and": [{"genre": "drama"}, {"year": {"$gt": 2020}}]}, {"c"}),
    ({"$or": [{"genre": "comedy"}, {"rating": {"$exists": True}}]}, {"b", "c"}),
    (
        {"$or": [{"$and": [{"genre": "drama"}, {"year": 2019}]}, {"genre": "documentary"}]},
        {"a", "d"},
    ),
]


@pytest.fixture(scope="module")
def filter_index(pc: Pinecone) -> Iterator[Any]:
    name = f"filters-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, spec=SPEC)
    index = pc.Index(host=http_host(pc.describe_index(name).host))
    index.upsert(
        vectors=[
            {"id": rid, "values": [1.0, 0.5], **({"metadata": meta} if meta else {})}
            for rid, meta in FILTER_RECORDS.items()
        ]
    )
    yield index
    pc.delete_index(name)


@pytest.mark.parametrize(("query_filter", "expected"), FILTER_CASES)
def test_filter_operators(
    filter_index: Any, query_filter: dict[str, Any], expected: set[str]
) -> None:
    result = filter_index.query(vector=[1.0, 0.5], top_k=10, filter=query_filter)
    assert {m.id for m in result.matches} == expected


@pytest.mark.parametrize(
    "bad_filter",
    [
        {"year": {"$gt": "2019"}},
        {"genre": {"$regex": "dr.*"}},
        {"$and": {"genre": "drama"}},
        {"genre": {"$in": "drama"}},
        {"rating": {"$exists": "yes"}},
        {"genre": None},
        {"$not": {"genre": "drama"}},
    ],
)
def test_malformed_filters_are_rejected(filter_index: Any, bad_filter: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as error:
        filter_index.query(vector=[1.0, 0.5], top_k=10, filter=bad_filter)
    assert error.value.status_code == 400
    assert error.value.body["code"] == 3


# ---- errors and limits ---------------------------------------------------------------------


def assert_rejected(call: Any, message: str) -> None:
    with pytest.raises(ApiError) as error:
        call()
    assert error.value.status_code == 400
    assert error.value.body["code"] == 3
    assert error.value.body["details"] == []
    assert message in error.value.body["message"]


def test_dimension_mismatch_is_rejected(make_index: Any) -> None:
    index = make_index(dimension=3)
    assert_rejected(
        lambda: index.upsert(vectors=[("a", [1.0, 2.0, 3.0, 4.0])]),
        "Vector dimension 4 does not match the dimension of the index 3",
    )
    assert_rejected(
        lambda: index.query(vector=[1.0, 2.0], top_k=1),
        "Vector dimension 2 does not match the dimension of the index 3",
    )


def test_invalid_upserts_are_rejected_and_write_nothing(make_index: Any) -> None:
    index = make_index(dimension=2)
    good = ("good", [1.0, 0.0])
    cases = [
        ([good, ("big", [1.0, 0.0], {"text": "x" * 41_000})], "exceeds the limit of 40960 bytes"),
        ([good, ("null", [1.0, 0.0], {"k": None})], "null"),
        ([good, ("nested", [1.0, 0.0], {"k": {"a": 1}})], "nested object"),
        ([good, ("mixed", [1.0, 0.0], {"k": ["a", 1]})], "not all strings"),
        ([good, ("x" * 513, [1.0, 0.0])], "exceeds the maximum length of 512"),
        ([good, ("zeros", [0.0, 0.0])], "at least one non-zero value"),
        ([(f"v{n}", [1.0, 0.0]) for n in range(1001)], "exceeds the maximum of 1000"),
    ]
    for vectors, message in cases:
        assert_rejected(lambda v=vectors: index.upsert(vectors=v), message)
    assert index.describe_index_stats().total_vector_count == 0
    index.upsert(vectors=[("x" * 512, [1.0, 0.0], {"text": "x" * 40_000})])
    assert index.describe_index_stats().total_vector_count == 1


def test_top_k_limits(make_index: Any) -> None:
    index = make_index(dimension=2)
    index.upsert(vectors=[("a", [1.0, 0.0])])
    assert_rejected(lambda: index.query(vector=[1.0, 0.0], top_k=10_001), "topK")
    assert len(index.query(vector=[1.0, 0.0], top_k=10_000).matches) == 1


def test_requests_over_two_megabytes_are_rejected(make_index: Any) -> None:
    index = make_index(dimension=2)
    text = "y" * 30_000
    vectors = [{"id": f"v{n}", "values": [1.0, 0.0], "metadata": {"t": text}} for n in range(80)]
    response = httpx.post(
        f"{index.host}/vectors/upsert", json={"vectors": vectors}, headers=HEADERS
    )
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert "2 MB" in response.json()["message"]


def test_update_and_delete_argument_errors(make_index: Any) -> None:
    index = make_index(dimension=2)
    url = index.host
    both = httpx.post(
        f"{url}/vectors/delete", json={"ids": ["a"], "deleteAll": True}, headers=HEADERS
    )
    assert both.status_code == 400
    too_many = httpx.post(
        f"{url}/vectors/delete", json={"ids": [str(n) for n in range(1001)]}, headers=HEADERS
    )
    assert too_many.status_code == 400
    by_filter_values = httpx.post(
        f"{url}/vectors/update", json={"filter": {"a": 1}, "values": [1, 0]}, headers=HEADERS
    )
    assert by_filter_values.status_code == 400
    assert httpx.get(f"{url}/vectors/fetch", headers=HEADERS).status_code == 400
    index.upsert(vectors=[("kept", [1.0, 0.0])])
    empty_filter = httpx.post(f"{url}/vectors/delete", json={"filter": {}}, headers=HEADERS)
    assert empty_filter.status_code == 400
    assert index.describe_index_stats().total_vector_count == 1


def test_ten_thousand_vector_query_is_fast(make_index: Any) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(10_000, 64)).astype(np.float32)
    index = make_index(dimension=64)
    payload = [(f"v{n}", row.tolist()) for n, row in enumerate(vectors)]
    result = index.upsert(vectors=payload, batch_size=1000, show_progress=False)
    assert result.upserted_count == 10_000
    query = vectors[1234] + 0.01

    started = time.perf_counter()
    matches = index.query(vector=query.tolist(), top_k=5).matches
    elapsed = time.perf_counter() - started

    assert matches[0].id == "v1234"
    assert elapsed < 1.0


# ---- LlamaIndex ----------------------------------------------------------------------------


def test_llamaindex_vector_store_adds_and_queries(make_index: Any) -> None:
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import (
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
    )
    from llama_index.vector_stores.pinecone import PineconeVectorStore

    index = make_index(dimension=4)
    store = PineconeVectorStore(pinecone_index=index, namespace="ns")
    nodes = [
        TextNode(
            id_="n1", text="apples", embedding=[1.0, 0.0, 0.0, 0.0], metadata={"kind": "fruit"}
        ),
        TextNode(
            id_="n2", text="pears", embedding=[0.8, 0.2, 0.0, 0.0], metadata={"kind": "fruit"}
        ),
        TextNode(id_="n3", text="kale", embedding=[0.0, 0.0, 1.0, 0.0], metadata={"kind": "veg"}),
    ]
    assert store.add(nodes) == ["n1", "n2", "n3"]

    result = store.query(VectorStoreQuery(query_embedding=[1.0, 0.1, 0.0, 0.0], similarity_top_k=2))
    assert result.ids == ["n1", "n2"]
    assert result.nodes[0].get_content() == "apples"
    assert result.similarities[0] > result.similarities[1]

    veg = MetadataFilters(filters=[MetadataFilter(key="kind", value="veg")])
    filtered = store.query(
        VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0, 0.0], similarity_top_k=3, filters=veg)
    )
    assert filtered.ids == ["n3"]

    store.delete_nodes(["n1"])
    assert index.describe_index_stats().namespaces["ns"].vector_count == 2
    assert "" not in index.describe_index_stats().namespaces


# ---- fault mode ----------------------------------------------------------------------------


def request_until_ok(send: Any) -> httpx.Response:
    for _ in range(50):
        response = send()
        if response.status_code not in FAULT_STATUSES:
            return response
    raise AssertionError("the request kept faulting")


def test_fault_mode_fails_a_fraction_of_requests_without_changing_state(tmp_path: Path) -> None:
    with running_pinecone_local(tmp_path, fault_rate=0.3, fault_seed=11) as url:
        create = {
            "name": "faulty",
            "dimension": 2,
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
        }
        created = request_until_ok(
            lambda: httpx.post(f"{url}/indexes", json=create, headers=HEADERS)
        )
        assert created.status_code == 201
        host = http_host(created.json()["host"])

        statuses: list[int] = []
        succeeded: list[str] = []
        for n in range(150):
            body = {"vectors": [{"id": f"v{n}", "values": [1.0, float(n)]}]}
            response = httpx.post(f"{host}/vectors/upsert", json=body, headers=HEADERS)
            statuses.append(response.status_code)
            if response.status_code == 200:
                succeeded.append(f"v{n}")
            else:
                assert response.status_code in FAULT_STATUSES
                assert set(response.json()) == {"code", "message", "details"}

        failed_share = sum(s != 200 for s in statuses) / len(statuses)
        assert 0.18 <= failed_share <= 0.42
        assert {s for s in statuses if s != 200} == FAULT_STATUSES

        stats = request_until_ok(
            lambda: httpx.post(f"{host}/describe_index_stats", json={}, headers=HEADERS)
        )
        assert stats.json()["totalVectorCount"] == len(succeeded)

        control = [httpx.get(f"{url}/indexes", headers=HEADERS) for _ in range(30)]
        faulted = [r for r in control if r.status_code != 200]
        assert faulted
        for response in faulted:
            body = response.json()
            assert body["status"] == response.status_code
            assert body["error"]["code"] in {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL"}

        client = Pinecone(api_key=API_KEY, host=url)
        index = client.Index(host=host)
        ids = [f"sdk{n}" for n in range(4)]
        for record_id in ids:
            index.upsert(vectors=[(record_id, [1.0, 2.0])])
        assert set(index.fetch(ids=ids).vectors) == set(ids)


def test_fault_delay_slows_requests(tmp_path: Path) -> None:
    with running_pinecone_local(tmp_path, fault_delay_ms=200, fault_seed=3) as url:
        started = time.perf_counter()
        for _ in range(10):
            assert httpx.get(f"{url}/indexes", headers=HEADERS).status_code == 200
        assert time.perf_counter() - started > 0.5


# ---- snapshots -----------------------------------------------------------------------------


def test_snapshot_is_saved_while_running_and_survives_a_restart(tmp_path: Path) -> None:
    snapshot = tmp_path / "state" / "pinecone.json"
    with running_pinecone_local(tmp_path, snapshot=snapshot, snapshot_interval=0.2) as url:
        pc = Pinecone(api_key=API_KEY, host=url)
        pc.create_index(name="kept", dimension=2, metric="euclidean", spec=SPEC)
        index = pc.Index(host=http_host(pc.describe_index("kept").host))
        index.upsert(vectors=[("a", [1.0, 2.0], {"k": ["v"]})], namespace="ns")
        deadline = time.monotonic() + 10
        while not snapshot.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        saved = json.loads(snapshot.read_text())
        assert [saved_index["name"] for saved_index in saved["indexes"]] == ["kept"]
        index.upsert(vectors=[("b", [3.0, 4.0])], namespace="ns")
    assert not list(snapshot.parent.glob(".*"))

    with running_pinecone_local(tmp_path, snapshot=snapshot) as url:
        pc = Pinecone(api_key=API_KEY, host=url)
        described = pc.describe_index("kept")
        assert described.metric == "euclidean"
        index = pc.Index(host=http_host(described.host))
        stored = index.fetch(ids=["a", "b"], namespace="ns").vectors
        assert stored["a"].values == [1.0, 2.0]
        assert stored["a"].metadata == {"k": ["v"]}
        assert stored["b"].values == [3.0, 4.0]
        assert index.query(vector=[1.0, 2.0], top_k=1, namespace="ns").matches[0].score == 0.0


def test_main_reports_bad_options_and_busy_ports() -> None:
    assert main(["--fault-rate", "1.5"]) == 1
    with socket.create_server(("127.0.0.1", 0)) as busy:
        assert main(["--port", str(busy.getsockname()[1])]) == 1


def test_http_host_turns_a_described_host_into_an_http_url() -> None:
    assert http_host("https://127.0.0.1:5081") == "http://127.0.0.1:5081"
    assert http_host("127.0.0.1:5081") == "http://127.0.0.1:5081"
