"""Sparse indexes in pinecone-local through the official SDK, over REST and over gRPC.

The comment on each test names the upstream test it follows (pinecone-io/pinecone-python-client,
``tests/integration``); data-plane tests run once per transport against one sparse index, in
namespaces of their own. Pinecone's validation is part of the contract: sparse indexes use
dotproduct, have no dimension and refuse dense values, and dense indexes accept sparse values
only with dotproduct.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from pinecone import Pinecone, PineconeException, ServerlessSpec, SparseValues, Vector

from pinecone_local.records import Record
from pinecone_local.state import IndexState
from tests.support.pinecone_server import index_client, running_pinecone_local

API_KEY = "pinecone-local-sparse-test"
SPEC = ServerlessSpec(cloud="aws", region="us-east-1")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_pinecone_local(tmp_path_factory.mktemp("pinecone-sparse")) as url:
        yield url


@pytest.fixture(scope="module")
def pc(server_url: str) -> Iterator[Pinecone]:
    client = Pinecone(api_key=API_KEY, host=server_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def sparse_name(pc: Pinecone) -> str:
    name = f"sparse-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, metric="dotproduct", vector_type="sparse", spec=SPEC)
    return name


@pytest.fixture(scope="module", params=["rest", "grpc"])
def sparse_idx(pc: Pinecone, sparse_name: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    client = index_client(pc, sparse_name, request.param)
    yield client
    client.close()


@pytest.fixture
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:10]}"


# Follows control/serverless/test_sparse_index.py::TestSparseIndex.
def test_create_sparse_index_and_deletion_protection(pc: Pinecone) -> None:
    name = f"sp-{uuid.uuid4().hex[:8]}"
    pc.create_index(
        name=name,
        metric="dotproduct",
        vector_type="sparse",
        deletion_protection="enabled",
        spec=SPEC,
    )
    described = pc.describe_index(name)
    assert (described.metric, described.vector_type, described.dimension) == (
        "dotproduct",
        "sparse",
        None,
    )
    listed = next(i for i in pc.list_indexes() if i.name == name)
    assert (listed.vector_type, listed.dimension) == ("sparse", None)
    with pytest.raises(PineconeException) as protected:
        pc.delete_index(name)
    assert "Deletion protection is enabled for this index" in str(protected.value)
    pc.configure_index(name, deletion_protection="disabled")
    pc.delete_index(name)


# Follows control/serverless/test_sparse_index.py::TestSparseIndexErrorCases.
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_sparse_indexes_only_support_dotproduct(pc: Pinecone, metric: str) -> None:
    with pytest.raises(PineconeException) as refused:
        pc.create_index(name=f"sp-{metric}", metric=metric, vector_type="sparse", spec=SPEC)
    assert "Sparse vector indexes must use dotproduct" in str(refused.value)


def test_sparse_indexes_refuse_a_dimension(server_url: str) -> None:
    # The SDK refuses this before sending it; the server refuses it too, for other clients.
    body = {
        "name": "sp-dimension",
        "dimension": 10,
        "metric": "dotproduct",
        "vector_type": "sparse",
        "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
    }
    response = httpx.post(f"{server_url}/indexes", json=body, headers={"Api-Key": API_KEY})
    assert response.status_code == 400
    assert "dimension should not be specified for sparse indexes" in response.text


# Follows data/test_upsert_sparse.py::test_upsert_sparse_to_namespace.
def test_upsert_sparse_in_every_form_then_query(sparse_idx: Any, namespace: str) -> None:
    rng = random.Random(3)

    def sparse(i: int) -> dict[str, list]:
        return {"indices": [i, rng.randint(2000, 4000)], "values": [rng.random(), rng.random()]}

    # pinecone 9 accepts two of upstream's four forms (Vector with SparseValues, plain dicts).
    objects = [Vector(id=str(i), sparse_values=SparseValues(**sparse(i))) for i in range(100)]
    dicts = [{"id": str(i), "sparse_values": sparse(i)} for i in range(100, 200)]
    for vectors in (objects, dicts):
        assert sparse_idx.upsert(vectors=vectors, namespace=namespace).upserted_count == 100
    query = {"indices": [5, 6, 7, 8, 9], "values": [0.1, 0.2, 0.3, 0.4, 0.5]}
    results = sparse_idx.query(sparse_vector=query, namespace=namespace, top_k=10)
    # Only records sharing an index with the query match, best first.
    assert sorted(m.id for m in results.matches) == ["5", "6", "7", "8", "9"]
    scores = [m.score for m in results.matches]
    assert scores == sorted(scores, reverse=True)
    again = sparse_idx.query(sparse_vector=SparseValues(**query), namespace=namespace, top_k=5)
    assert len(again.matches) == 5

    stats = sparse_idx.describe_index_stats()
    assert stats.namespaces[namespace].vector_count == 200
    assert (stats.dimension, stats.metric) == (None, "dotproduct")


def test_sparse_scores_fetch_and_update(sparse_idx: Any, namespace: str) -> None:
    sparse_idx.upsert(
        vectors=[
            {"id": "a", "sparse_values": {"indices": [1, 2], "values": [1.0, 2.0]}},
            {"id": "b", "sparse_values": {"indices": [2, 3], "values": [0.5, 4.0]}},
        ],
        namespace=namespace,
    )
    result = sparse_idx.query(
        sparse_vector={"indices": [2, 3], "values": [1.0, 1.0]},
        top_k=2,
        namespace=namespace,
        include_values=True,
    )
    assert [(m.id, m.score) for m in result.matches] == [("b", 4.5), ("a", 2.0)]
    assert result.matches[0].sparse_values.indices == [2, 3]
    fetched = sparse_idx.fetch(ids=["a"], namespace=namespace).vectors["a"]
    assert fetched.values == []
    assert fetched.sparse_values.values == [1.0, 2.0]

    sparse_idx.update(id="a", sparse_values={"indices": [3], "values": [9.0]}, namespace=namespace)
    by_id = sparse_idx.query(id="b", top_k=2, namespace=namespace)
    assert [m.id for m in by_id.matches] == ["a", "b"]


# Follows data/test_list_sparse.py.
def test_list_sparse(sparse_idx: Any, namespace: str) -> None:
    vectors = [
        Vector(id=str(i), sparse_values=SparseValues([i, i * 2 + 1], [0.1, 0.2]))
        for i in range(1, 1000)
    ]
    sparse_idx.upsert(vectors=vectors, batch_size=250, namespace=namespace, show_progress=False)
    first = sparse_idx.list_paginated(prefix="99", limit=5, namespace=namespace)
    assert [v.id for v in first.vectors] == ["99", "990", "991", "992", "993"]
    pages = list(sparse_idx.list(prefix="99", limit=5, namespace=namespace))
    assert [len(page) for page in pages] == [5, 5, 1]
    ids = [item.id for page in pages for item in page]
    fetched = sparse_idx.fetch(ids=ids, namespace=namespace).vectors
    assert set(fetched) == set(ids)
    assert sparse_idx.list_paginated(namespace="no-results").vectors == []


# Follows data/test_query_namespaces_sparse.py.
def test_query_namespaces_sparse(sparse_idx: Any, namespace: str) -> None:
    for suffix, weight in (("-1", 1.0), ("-2", 3.0)):
        sparse_idx.upsert(
            vectors=[
                {"id": f"x{suffix}", "sparse_values": {"indices": [10], "values": [weight]}},
                {"id": f"y{suffix}", "sparse_values": {"indices": [11], "values": [weight]}},
            ],
            namespace=namespace + suffix,
        )
    merged = sparse_idx.query_namespaces(
        sparse_vector={"indices": [10], "values": [1.0]},
        namespaces=[namespace + "-1", namespace + "-2"],
        metric="dotproduct",
        top_k=3,
    )
    assert [(m.id, m.score) for m in merged.matches] == [("x-2", 3.0), ("x-1", 1.0)]


def test_sparse_index_validation_errors(sparse_idx: Any, namespace: str) -> None:
    refused = [
        lambda: sparse_idx.upsert(
            vectors=[
                {
                    "id": "d",
                    "values": [1.0, 2.0],
                    "sparse_values": {"indices": [1], "values": [1.0]},
                }
            ],
            namespace=namespace,
        ),
        lambda: sparse_idx.upsert(
            vectors=[{"id": "e", "sparse_values": {"indices": [], "values": []}}],
            namespace=namespace,
        ),
        lambda: sparse_idx.query(vector=[1.0, 2.0], top_k=1, namespace=namespace),
        lambda: sparse_idx.query(
            sparse_vector={"indices": [1, 2], "values": [1.0]}, top_k=1, namespace=namespace
        ),
    ]
    messages = []
    for attempt in refused:
        with pytest.raises(PineconeException) as error:
            attempt()
        messages.append(str(error.value).lower())
    assert "dense values" in messages[0]
    assert "sparsevalues" in messages[1]
    assert "dense query vectors" in messages[2]
    assert namespace not in sparse_idx.describe_index_stats().namespaces


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_dense_indexes_take_sparse_values_only_with_dotproduct(
    pc: Pinecone, transport: str
) -> None:
    name = f"cos-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, metric="cosine", spec=SPEC)
    idx = index_client(pc, name, transport)
    try:
        with pytest.raises(PineconeException) as refused:
            idx.upsert(
                vectors=[
                    {
                        "id": "a",
                        "values": [1.0, 0.0],
                        "sparse_values": {"indices": [1], "values": [1]},
                    }
                ]
            )
        assert "does not support sparse values" in str(refused.value)
        with pytest.raises(PineconeException):
            idx.query(vector=[1.0, 0.0], sparse_vector={"indices": [1], "values": [1.0]}, top_k=1)
    finally:
        idx.close()
        pc.delete_index(name)


def test_sparse_index_survives_a_snapshot() -> None:
    index = IndexState("s", 0, "dotproduct", "aws", "us-east-1", vector_type="sparse")
    empty = np.zeros(0, dtype=np.float32)
    index.writable_namespace("").upsert(
        Record("a", empty, {"indices": [4], "values": [2.0]}, {"k": "v"})
    )
    restored = IndexState.from_snapshot(index.to_snapshot())
    assert restored.sparse
    assert restored.namespace("").vector(0) == {
        "id": "a",
        "values": [],
        "sparseValues": {"indices": [4], "values": [2.0]},
        "metadata": {"k": "v"},
    }


@pytest.mark.parametrize("dimension", [0, 2])
def test_sparse_scores_follow_upserts_overwrites_and_deletes(
    dimension: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inverted index scores as a scan of every stored record would, through row moves,
    overwrites, records without sparse values, a snapshot and rebuilds of stale postings."""
    monkeypatch.setattr("pinecone_local.postings.MIN_DEAD_BEFORE_REBUILD", 5)
    rng = random.Random(14)
    namespace = IndexState("s", dimension, "dotproduct", "aws", "us-east-1").writable_namespace("")
    values = np.zeros(dimension, dtype=np.float32)

    def brute_force(query: dict[str, list]) -> list[float]:
        weights = dict(zip(query["indices"], query["values"], strict=True))
        return [
            sum(weights.get(i, 0.0) * v for i, v in zip(s["indices"], s["values"], strict=True))
            if s
            else 0.0
            for s in namespace.sparse
        ]

    for step in range(400):
        record_id = f"r{rng.randrange(60)}"
        if rng.random() < 0.3:
            namespace.delete(record_id)
        else:
            terms = rng.sample(range(12), rng.randrange(0 if dimension else 1, 4))
            sparse = {"indices": terms, "values": [rng.random() for _ in terms]} if terms else None
            namespace.upsert(Record(record_id, values, sparse, None))
        if step == 200:
            index = IndexState("s", dimension, "dotproduct", "aws", "us-east-1")
            index.namespaces[""] = namespace
            namespace = IndexState.from_snapshot(index.to_snapshot()).namespaces[""]
        query = {"indices": [1, 5, 7], "values": [0.5, 2.0, 1.0]}
        expected = np.asarray(brute_force(query), dtype=np.float32)
        assert np.allclose(namespace._sparse_scores(query), expected, rtol=1e-6)
