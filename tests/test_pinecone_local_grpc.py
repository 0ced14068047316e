"""The data plane of pinecone-local through the official SDK, over REST and over gRPC.

Each test runs twice (``transport`` rest / grpc) against one server process and one dotproduct
index of dimension 2, like the official SDK's integration suite (``tests/integration/data`` in
pinecone-io/pinecone-python-client, run with ``USE_GRPC`` false and true). The comment on each
test names the upstream test it follows; assertions that need Pinecone's cloud (LSN polling,
API-key checks, eventual-consistency sleeps) are left out. Tests write to namespaces of their
own, so the two transports and the tests do not see each other's records.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from pinecone import Pinecone, PineconeException, ServerlessSpec, SparseValues, Vector

from pinecone_local import http_host
from pinecone_local.grpc_proto import vector_service_pb2 as pb
from tests.support.pinecone_server import index_client, running_pinecone_local

API_KEY = "pinecone-local-grpc-test"
SPEC = ServerlessSpec(cloud="aws", region="us-east-1")
TRANSPORTS = ["rest", "grpc"]


@pytest.fixture(scope="module")
def pc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pinecone]:
    with running_pinecone_local(tmp_path_factory.mktemp("pinecone-grpc")) as url:
        client = Pinecone(api_key=API_KEY, host=url)
        yield client
        client.close()


@pytest.fixture(scope="module")
def index_name(pc: Pinecone) -> str:
    name = f"data-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, metric="dotproduct", spec=SPEC)
    return name


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def idx(pc: Pinecone, index_name: str, transport: str) -> Iterator[Any]:
    client = index_client(pc, index_name, transport)
    yield client
    client.close()


@pytest.fixture
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:10]}"


MOVIES = [
    ("genre-action-1", [0.9, 0.1], {"genre": "action", "year": 2020, "rating": 8.5}),
    ("genre-action-2", [0.8, 0.3], {"genre": "action", "year": 2021, "rating": 7.5}),
    ("genre-comedy-1", [0.2, 0.9], {"genre": "comedy", "year": 2020, "rating": 9.0}),
    ("genre-comedy-2", [0.1, 0.8], {"genre": "comedy", "year": 2022, "rating": 8.0}),
    ("genre-drama-1", [0.5, 0.5], {"genre": "drama", "year": 2020, "rating": 9.5}),
    ("genre-romance-1", [0.3, 0.4], {"genre": "romance", "year": 2021, "rating": 7.0}),
]


def seed_movies(idx: Any, namespace: str) -> None:
    """The records of upstream ``seed_for_fetch_by_metadata`` (plus one without metadata)."""
    vectors = [Vector(id=i, values=v, metadata=m) for i, v, m in MOVIES]
    vectors.append(Vector(id="no-metadata-1", values=[0.4, 0.4]))
    assert idx.upsert(vectors=vectors, namespace=namespace).upserted_count == 7


# Follows data/test_upsert_dense.py and data/test_fetch.py (fetch several, missing ids skipped).
def test_upsert_in_every_form_then_fetch(idx: Any, namespace: str) -> None:
    response = idx.upsert(
        vectors=[
            Vector(id="1", values=[0.1, 0.2], metadata={"genre": "action"}),
            ("2", [0.3, 0.4]),
            ("3", [0.5, 0.6], {"tags": ["a", "b"]}),
            {"id": "4", "values": [0.7, 0.8], "metadata": {"year": 2020}},
        ],
        namespace=namespace,
    )
    assert response.upserted_count == 4

    fetched = idx.fetch(ids=["1", "3", "4", "nope"], namespace=namespace)
    assert fetched.namespace == namespace
    assert set(fetched.vectors) == {"1", "3", "4"}
    assert fetched.vectors["1"].values == pytest.approx([0.1, 0.2])
    assert fetched.vectors["1"].metadata == {"genre": "action"}
    assert fetched.vectors["3"].metadata == {"tags": ["a", "b"]}
    assert fetched.vectors["4"].metadata["year"] == 2020
    assert idx.fetch(ids=["1"], namespace="other-namespace").vectors == {}


# Follows data/test_query.py: by vector and by id, include values/metadata, filters.
def test_query_by_vector_and_by_id(idx: Any, namespace: str) -> None:
    seed_movies(idx, namespace)
    result = idx.query(
        vector=[1.0, 0.0], top_k=3, namespace=namespace, include_values=True, include_metadata=True
    )
    assert [m.id for m in result.matches] == ["genre-action-1", "genre-action-2", "genre-drama-1"]
    assert result.matches[0].score == pytest.approx(0.9)
    assert result.matches[0].values == pytest.approx([0.9, 0.1])
    assert result.matches[0].metadata["genre"] == "action"

    bare = idx.query(vector=[1.0, 0.0], top_k=1, namespace=namespace)
    assert bare.matches[0].values == []
    assert not bare.matches[0].metadata

    by_id = idx.query(id="genre-comedy-1", top_k=2, namespace=namespace)
    assert [m.id for m in by_id.matches] == ["genre-comedy-1", "genre-comedy-2"]

    filtered = idx.query(
        vector=[1.0, 0.0],
        top_k=10,
        namespace=namespace,
        filter={"genre": {"$in": ["comedy", "drama"]}, "year": {"$gte": 2020}},
    )
    assert [m.id for m in filtered.matches] == ["genre-drama-1", "genre-comedy-1", "genre-comedy-2"]
    assert idx.query(id="missing", top_k=3, namespace=namespace).matches == []


# Follows data/test_query_errors.py.
def test_query_errors_name_the_problem(idx: Any, namespace: str) -> None:
    with pytest.raises(PineconeException) as wrong_dimension:
        idx.query(vector=[1, 2, 3], namespace=namespace, top_k=10)
    assert "vector" in str(wrong_dimension.value).lower()
    with pytest.raises(PineconeException) as bad_top_k:
        idx.query(id="1", namespace=namespace, top_k=-1)
    assert "top_k" in str(bad_top_k.value).lower()


# Follows data/test_upsert_errors.py (the cases the server decides).
def test_upsert_errors_leave_the_namespace_unchanged(idx: Any, namespace: str) -> None:
    with pytest.raises(PineconeException) as mismatch:
        idx.upsert(
            vectors=[Vector(id="1", values=[0.1, 0.2]), Vector(id="2", values=[0.1, 0.2, 0.3])],
            namespace=namespace,
        )
    assert "dimension" in str(mismatch.value).lower()
    for sparse in (
        SparseValues(indices=[0], values=[0.5, 0.5]),
        {"indices": [0, 1], "values": [1]},
    ):
        with pytest.raises(PineconeException):
            idx.upsert(
                vectors=[{"id": "s", "values": [0.1, 0.1], "sparse_values": sparse}],
                namespace=namespace,
            )
    with pytest.raises(PineconeException):
        idx.upsert(vectors=[], namespace=namespace)
    assert namespace not in idx.describe_index_stats().namespaces


# Follows data/test_upsert_hybrid.py: sparse-dense records on a dotproduct index.
def test_upsert_hybrid_and_query_both_parts(idx: Any, namespace: str) -> None:
    idx.upsert(
        vectors=[
            Vector(id="1", values=[0.1, 0.2], sparse_values=SparseValues([0, 1], [0.5, 0.5])),
            {
                "id": "2",
                "values": [0.1, 0.2],
                "sparse_values": {"indices": [0, 1], "values": [2, 1]},
            },
            {"id": "3", "values": [0.1, 0.2], "sparse_values": {"indices": [7], "values": [3.0]}},
        ],
        namespace=namespace,
    )
    stats = idx.describe_index_stats()
    assert stats.namespaces[namespace].vector_count == 3
    assert stats.dimension == 2

    result = idx.query(
        vector=[1.0, 0.0],
        sparse_vector={"indices": [0], "values": [1.0]},
        top_k=3,
        namespace=namespace,
        include_values=True,
    )
    assert [m.id for m in result.matches] == ["2", "1", "3"]
    assert [m.score for m in result.matches] == pytest.approx([2.1, 0.6, 0.1])
    assert result.matches[0].sparse_values.indices == [0, 1]


# Follows data/test_query_namespaces.py (the SDK fans out and merges; the server answers each).
def test_query_namespaces(idx: Any, namespace: str) -> None:
    for suffix, scale in (("-a", 1.0), ("-b", 2.0)):
        idx.upsert(
            vectors=[(f"x{suffix}", [scale, 0.0]), (f"y{suffix}", [0.0, scale])],
            namespace=namespace + suffix,
        )
    merged = idx.query_namespaces(
        vector=[1.0, 0.1],
        namespaces=[namespace + "-a", namespace + "-b", namespace + "-missing"],
        metric="dotproduct",
        top_k=3,
    )
    assert [m.id for m in merged.matches] == ["x-b", "x-a", "y-b"]
    assert [m.score for m in merged.matches] == pytest.approx([2.0, 1.0, 0.2])


# Follows data/test_update.py: values, sparse values and metadata by id; metadata by filter.
def test_update_by_id_and_by_filter(idx: Any, namespace: str) -> None:
    seed_movies(idx, namespace)
    idx.update(
        id="genre-action-1",
        values=[0.2, 0.2],
        sparse_values={"indices": [4], "values": [1.0]},
        set_metadata={"rating": 1.0, "seen": True},
        namespace=namespace,
    )
    record = idx.fetch(ids=["genre-action-1"], namespace=namespace).vectors["genre-action-1"]
    assert record.values == pytest.approx([0.2, 0.2])
    assert record.sparse_values.indices == [4]
    assert record.metadata == {"genre": "action", "year": 2020, "rating": 1.0, "seen": True}

    dry = idx.update(
        filter={"genre": "comedy"}, set_metadata={"x": "y"}, dry_run=True, namespace=namespace
    )
    assert dry.matched_records == 2
    done = idx.update(filter={"genre": "comedy"}, set_metadata={"x": "y"}, namespace=namespace)
    assert done.matched_records == 2
    comedies = idx.fetch(ids=["genre-comedy-1", "genre-comedy-2"], namespace=namespace).vectors
    assert all(v.metadata["x"] == "y" for v in comedies.values())


# Follows data/test_list.py: prefix, limit and pagination tokens.
def test_list_paginated_and_list(idx: Any, namespace: str) -> None:
    ids = ["99", *[f"99{i}" for i in range(10)], "1", "2"]
    idx.upsert(vectors=[(i, [0.1, 0.1]) for i in ids], namespace=namespace)
    first = idx.list_paginated(prefix="99", limit=5, namespace=namespace)
    assert [v.id for v in first.vectors] == ["99", "990", "991", "992", "993"]
    second = idx.list_paginated(
        prefix="99", limit=5, namespace=namespace, pagination_token=first.pagination.next
    )
    assert [v.id for v in second.vectors] == ["994", "995", "996", "997", "998"]
    third = idx.list_paginated(
        prefix="99", limit=5, namespace=namespace, pagination_token=second.pagination.next
    )
    assert [v.id for v in third.vectors] == ["999"]
    assert third.pagination is None
    pages = list(idx.list(prefix="99", limit=5, namespace=namespace))
    assert [len(page) for page in pages] == [5, 5, 1]
    assert list(idx.list(prefix="no-results", namespace=namespace)) == []
    assert idx.list_paginated(namespace="no-results").vectors == []


# Follows data/test_delete_future.py and the delete cases of data/test_fetch.py.
def test_delete_by_ids_filter_and_all(idx: Any, namespace: str) -> None:
    seed_movies(idx, namespace)
    idx.delete(ids=["genre-action-1"], namespace=namespace)
    idx.delete(filter={"genre": {"$eq": "comedy"}}, namespace=namespace)
    remaining = {item.id for page in idx.list(namespace=namespace) for item in page}
    assert remaining == {"genre-action-2", "genre-drama-1", "genre-romance-1", "no-metadata-1"}
    idx.delete(delete_all=True, namespace=namespace)
    assert namespace not in idx.describe_index_stats().namespaces


# Follows data/test_fetch_by_metadata.py.
def test_fetch_by_metadata(idx: Any, namespace: str) -> None:
    seed_movies(idx, namespace)
    action = idx.fetch_by_metadata(filter={"genre": {"$eq": "action"}}, namespace=namespace)
    assert action.namespace == namespace
    assert set(action.vectors) == {"genre-action-1", "genre-action-2"}
    assert action.vectors["genre-action-1"].metadata["genre"] == "action"
    assert action.usage.read_units > 0
    limited = idx.fetch_by_metadata(
        filter={"genre": {"$eq": "action"}}, namespace=namespace, limit=1
    )
    assert len(limited.vectors) == 1
    several = idx.fetch_by_metadata(
        filter={"genre": {"$in": ["comedy", "drama"]}}, namespace=namespace
    )
    assert set(several.vectors) == {"genre-comedy-1", "genre-comedy-2", "genre-drama-1"}
    both = idx.fetch_by_metadata(
        filter={"genre": {"$eq": "action"}, "year": {"$eq": 2020}}, namespace=namespace
    )
    assert set(both.vectors) == {"genre-action-1"}
    recent = idx.fetch_by_metadata(filter={"year": {"$gte": 2021}}, namespace=namespace)
    assert set(recent.vectors) == {"genre-action-2", "genre-comedy-2", "genre-romance-1"}
    assert idx.fetch_by_metadata(filter={"genre": "horror"}, namespace=namespace).vectors == {}
    elsewhere = idx.fetch_by_metadata(filter={"genre": "action"}, namespace="nonexistent-namespace")
    assert elsewhere.namespace == "nonexistent-namespace"
    assert elsewhere.vectors == {}

    everything = {"genre": {"$in": ["action", "comedy", "drama", "romance"]}}
    page1 = idx.fetch_by_metadata(filter=everything, namespace=namespace, limit=4)
    page2 = idx.fetch_by_metadata(
        filter=everything, namespace=namespace, limit=4, pagination_token=page1.pagination.next
    )
    assert len(page1.vectors) == 4
    assert len(page2.vectors) == 2
    assert not set(page1.vectors) & set(page2.vectors)


# Follows data/test_namespace.py, on an index of its own (it lists every namespace).
def test_namespaces_describe_list_delete(pc: Pinecone, transport: str) -> None:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    pc.create_index(name=name, dimension=2, metric="cosine", spec=SPEC)
    idx = index_client(pc, name, transport)
    try:
        for namespace in [f"test_paginated_{i}" for i in range(5)]:
            idx.upsert(vectors=[("id_0", [0.1, 0.2]), ("id_1", [0.2, 0.1])], namespace=namespace)
        described = idx.describe_namespace(namespace="test_paginated_0")
        assert (described.name, described.record_count) == ("test_paginated_0", 2)

        first = idx.list_namespaces_paginated(limit=2)
        assert [n.name for n in first.namespaces] == ["test_paginated_0", "test_paginated_1"]
        second = idx.list_namespaces_paginated(limit=2, pagination_token=first.pagination.next)
        assert len(second.namespaces) == 2
        last = idx.list_namespaces_paginated(limit=2, pagination_token=second.pagination.next)
        assert [n.name for n in last.namespaces] == ["test_paginated_4"]
        assert last.pagination is None
        assert count_namespaces(idx) == 5

        idx.delete_namespace(namespace="test_paginated_0")
        with pytest.raises(PineconeException) as missing:
            idx.describe_namespace(namespace="test_paginated_0")
        assert "not found" in str(missing.value).lower()
        assert count_namespaces(idx) == 4
    finally:
        idx.close()
        pc.delete_index(name)


def weird_valid_ids() -> list[str]:
    """Upstream seed.py's ``weird_valid_ids``: ASCII punctuation, whitespace and injections."""
    punctuation = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    characters = list("1234567890") + [" ", "\n", "\t", "\r"] + punctuation
    characters += [f"\\{c}" for c in punctuation]
    pairs = ["".join(p) for p in itertools.combinations_with_replacement(characters, 2)]
    others = ["undefined", "null", "None", "True", "<script>alert(0)</script>", "' OR '1'='1"]
    return characters + pairs + others + ["$HOME", "%s", "{0}"]


# Follows data/test_weird_ids.py (queries by a sample of the ids rather than each of ~3000).
def test_weird_ids(idx: Any, namespace: str) -> None:
    ids = weird_valid_ids()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        idx.upsert(
            vectors=[(i, [0.1, 0.1 + n / 1000]) for n, i in enumerate(chunk)], namespace=namespace
        )
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        fetched = idx.fetch(ids=chunk, namespace=namespace).vectors
        assert set(fetched) == set(chunk)
        assert all(fetched[i].id == i and len(fetched[i].values) == 2 for i in chunk)
    for weird in ids[::250]:
        result = idx.query(id=weird, top_k=10, namespace=namespace, include_values=True)
        assert len(result.matches) == 10
    listed = [item.id for page in idx.list(namespace=namespace) for item in page]
    assert sorted(listed) == sorted(set(ids))

    # pinecone 9 refuses these ids itself; the raw request below shows the server does too.
    for invalid in ["\u2800", "\u00a0", "🌲", "田", "‘", "＂"]:
        with pytest.raises(PineconeException) as refused:
            idx.upsert(vectors=[(invalid, [0.1, 0.1])], namespace=namespace)
        assert "ASCII" in str(refused.value)
    with pytest.raises(PineconeException) as nul:
        idx.upsert(vectors=[("\0", [0.1, 0.1])], namespace=namespace)
    assert "null character" in str(nul.value)


@pytest.mark.parametrize(
    ("record_id", "message"),
    [("🌲", "Vector ID must be ASCII"), ("a\0b", "Vector ID must not contain null character")],
)
def test_server_refuses_ids_pinecone_refuses(
    pc: Pinecone, index_name: str, record_id: str, message: str
) -> None:
    host = http_host(pc.describe_index(index_name).host)
    body = {"vectors": [{"id": record_id, "values": [0.1, 0.1]}]}
    response = httpx.post(f"{host}/vectors/upsert", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


def count_namespaces(idx: Any) -> int:
    return sum(len(page.namespaces) for page in idx.list_namespaces())


def test_rest_and_grpc_clients_share_one_index(
    pc: Pinecone, index_name: str, namespace: str
) -> None:
    rest = index_client(pc, index_name, "rest")
    grpc = index_client(pc, index_name, "grpc")
    try:
        grpc.upsert(vectors=[("g", [0.5, 0.5], {"via": "grpc"})], namespace=namespace)
        assert rest.fetch(ids=["g"], namespace=namespace).vectors["g"].metadata == {"via": "grpc"}
        rest.upsert(vectors=[("r", [0.5, 0.1])], namespace=namespace)
        assert grpc.describe_index_stats().namespaces[namespace].vector_count == 2
        rest.delete(ids=["g"], namespace=namespace)
        assert grpc.fetch(ids=["g", "r"], namespace=namespace).vectors.keys() == {"r"}
    finally:
        rest.close()
        grpc.close()


def struct(value: dict[str, Any]) -> Struct:
    message = Struct()
    message.update(value)
    return message


def test_raw_grpc_calls_and_status_codes(pc: Pinecone, index_name: str, namespace: str) -> None:
    """RPCs pinecone 9 routes over REST (FetchByMetadata), and gRPC status codes of errors."""
    host = pc.describe_index(index_name).host.split("://")[-1]
    with grpc.insecure_channel(host) as channel:

        def call(method: str, request: Message, answer: type[Message]) -> Any:
            stub = channel.unary_unary(
                f"/VectorService/{method}",
                request_serializer=type(request).SerializeToString,
                response_deserializer=answer.FromString,
            )
            return stub(request, timeout=10)

        record = pb.Vector(id="a", values=[1.0, 0.0], metadata=struct({"genre": "drama"}))
        upserted = call(
            "Upsert", pb.UpsertRequest(vectors=[record], namespace=namespace), pb.UpsertResponse
        )
        assert upserted.upserted_count == 1
        found = call(
            "FetchByMetadata",
            pb.FetchByMetadataRequest(namespace=namespace, filter=struct({"genre": "drama"})),
            pb.FetchByMetadataResponse,
        )
        assert list(found.vectors) == ["a"]
        assert found.vectors["a"].metadata["genre"] == "drama"
        created = call(
            "CreateNamespace",
            pb.CreateNamespaceRequest(name=f"{namespace}-new"),
            pb.NamespaceDescription,
        )
        assert (created.name, created.record_count) == (f"{namespace}-new", 0)

        failures = [
            (
                "Upsert",
                pb.UpsertRequest(vectors=[pb.Vector(id="b", values=[1.0])]),
                pb.UpsertResponse,
            ),
            (
                "DescribeNamespace",
                pb.DescribeNamespaceRequest(namespace="missing"),
                pb.NamespaceDescription,
            ),
            (
                "CreateNamespace",
                pb.CreateNamespaceRequest(name=f"{namespace}-new"),
                pb.NamespaceDescription,
            ),
        ]
        big = [
            pb.Vector(id=str(i), values=[0.1, 0.1], metadata=struct({"t": "x" * 3000}))
            for i in range(800)
        ]
        failures.append(("Upsert", pb.UpsertRequest(vectors=big), pb.UpsertResponse))  # > 2 MB
        codes = []
        for method, request, answer in failures:
            with pytest.raises(grpc.RpcError) as error:
                call(method, request, answer)
            codes.append(error.value.code())
        assert codes == [
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ]


def test_faults_reach_grpc_clients_as_status_codes(tmp_path: Any) -> None:
    body = {"name": "faults", "dimension": 2, "spec": {"serverless": {"cloud": "a", "region": "b"}}}
    with running_pinecone_local(tmp_path, fault_rate=0.5, fault_seed=3) as url:
        created = httpx.post(f"{url}/indexes", json=body)
        while created.status_code != 201:
            created = httpx.post(f"{url}/indexes", json=body)
        with grpc.insecure_channel(created.json()["host"]) as channel:
            stats = channel.unary_unary(
                "/VectorService/DescribeIndexStats",
                request_serializer=pb.DescribeIndexStatsRequest.SerializeToString,
                response_deserializer=pb.DescribeIndexStatsResponse.FromString,
            )
            codes = set()
            for _ in range(12):
                try:
                    stats(pb.DescribeIndexStatsRequest(), timeout=10)
                    codes.add(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.add(error.code())
    faults = {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
    }
    assert grpc.StatusCode.OK in codes
    assert codes & faults
    assert codes <= faults | {grpc.StatusCode.OK}


# Follows data/test_upsert_future.py, test_fetch_future.py and test_delete_future.py (gRPC only).
def test_grpc_futures(pc: Pinecone, index_name: str, namespace: str) -> None:
    grpc_index = index_client(pc, index_name, "grpc")
    try:
        upserts = [
            grpc_index.upsert_async(vectors=[(f"f{i}", [0.1 * i + 0.1, 0.5])], namespace=namespace)
            for i in range(5)
        ]
        assert [f.result(timeout=10).upserted_count for f in upserts] == [1] * 5
        fetched = grpc_index.fetch_async(ids=["f0", "f4", "nope"], namespace=namespace)
        assert set(fetched.result(timeout=10).vectors) == {"f0", "f4"}
        queried = grpc_index.query_async(vector=[1.0, 0.0], top_k=2, namespace=namespace)
        assert [m.id for m in queried.result(timeout=10).matches] == ["f4", "f3"]
        grpc_index.delete_async(ids=["f0", "f1"], namespace=namespace).result(timeout=10)
        remaining = grpc_index.fetch(ids=[f"f{i}" for i in range(5)], namespace=namespace)
        assert set(remaining.vectors) == {"f2", "f3", "f4"}
    finally:
        grpc_index.close()
