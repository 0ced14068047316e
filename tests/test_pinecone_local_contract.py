"""Contract tests: pinecone-local's requests and responses against Pinecone's OpenAPI specs.

Each exchange validates the request body against the operation's ``requestBody`` schema, checks
that the answered status is declared for the operation (exactly, or as ``4XX``/``5XX``), and
validates the response body against that response's schema. Schemas come from the official
2025-10 specs, with ``$ref``s resolved by ``referencing``; they are read from the shared folder
next to the repository, so the tests skip when it is absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from pinecone_local import http_host
from tests.support.pinecone_server import running_pinecone_local

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "pinecone-api" / "2025-10"
CONTROL_SPEC = SPEC_DIR / "db_control_2025-10.oas.yaml"
DATA_SPEC = SPEC_DIR / "db_data_2025-10.oas.yaml"
HEADERS = {"Api-Key": "contract", "X-Pinecone-Api-Version": "2025-10"}

pytestmark = pytest.mark.skipif(
    not (CONTROL_SPEC.exists() and DATA_SPEC.exists()),
    reason=f"Pinecone OpenAPI specs not found in {SPEC_DIR}; contract tests need them",
)


class Contract:
    """One OpenAPI document, able to validate bodies of its operations."""

    def __init__(self, path: Path, uri: str) -> None:
        self.uri = uri
        self.spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.spec, default_specification=DRAFT4)
        self.registry = Registry().with_resource(uri, resource)

    def validate(self, pointer: str, instance: Any) -> None:
        """Validate *instance* against the schema at JSON *pointer* inside the spec."""
        schema = {"$ref": f"{self.uri}#{pointer}"}
        Draft4Validator(schema, registry=self.registry).validate(instance)

    def component(self, name: str) -> str:
        return _pointer("components", "schemas", name)

    def operation(self, path: str, method: str) -> dict[str, Any]:
        return self.spec["paths"][path][method.lower()]

    def check_request(self, path: str, method: str, body: Any) -> None:
        media = ("requestBody", "content", "application/json", "schema")
        self.validate(_pointer("paths", path, method.lower(), *media), body)

    def check_response(self, path: str, method: str, response: httpx.Response) -> None:
        declared = self.operation(path, method)["responses"]
        status = response.status_code
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in declared), None
        )
        assert key is not None, f"{method} {path} answered undeclared status {status}"
        if "content" not in declared[key]:
            return
        media = ("content", "application/json", "schema")
        self.validate(
            _pointer("paths", path, method.lower(), "responses", key, *media), response.json()
        )


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


@pytest.fixture(scope="module")
def control() -> Contract:
    return Contract(CONTROL_SPEC, "urn:pinecone:control")


@pytest.fixture(scope="module")
def data() -> Contract:
    return Contract(DATA_SPEC, "urn:pinecone:data")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_pinecone_local(tmp_path_factory.mktemp("contract")) as url:
        yield url


def exchange(
    contract: Contract,
    base_url: str,
    method: str,
    path: str,
    spec_path: str | None = None,
    body: Any = None,
    params: Any = None,
) -> httpx.Response:
    """Send one request, checking request and response against *contract*."""
    template = spec_path or path
    if body is not None:
        contract.check_request(template, method, body)
    response = httpx.request(method, f"{base_url}{path}", json=body, params=params, headers=HEADERS)
    contract.check_response(template, method, response)
    return response


@pytest.fixture(scope="module")
def index_host(control: Contract, server_url: str) -> str:
    body = {
        "name": f"contract-{uuid.uuid4().hex[:8]}",
        "dimension": 3,
        "metric": "dotproduct",
        "deletion_protection": "disabled",
        "tags": {"team": "rag"},
        "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
        "vector_type": "dense",
    }
    created = exchange(control, server_url, "POST", "/indexes", body=body)
    assert created.status_code == 201
    return http_host(created.json()["host"])


def test_control_plane_index_lifecycle(control: Contract, server_url: str) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "dimension": 4, "spec": {"serverless": {"cloud": "gcp", "region": "x"}}}
    assert exchange(control, server_url, "POST", "/indexes", body=body).status_code == 201
    assert exchange(control, server_url, "POST", "/indexes", body=body).status_code == 409
    item = f"/indexes/{name}"
    template = "/indexes/{index_name}"
    assert exchange(control, server_url, "GET", "/indexes").status_code == 200
    assert exchange(control, server_url, "GET", item, template).status_code == 200
    configure = {"deletion_protection": "enabled", "tags": {"env": "dev"}}
    configured = exchange(control, server_url, "PATCH", item, template, body=configure)
    assert configured.status_code == 202
    assert configured.json()["tags"] == {"env": "dev"}
    assert exchange(control, server_url, "DELETE", item, template).status_code == 403
    exchange(control, server_url, "PATCH", item, template, body={"deletion_protection": "disabled"})
    assert exchange(control, server_url, "DELETE", item, template).status_code == 202
    assert exchange(control, server_url, "GET", item, template).status_code == 404
    assert exchange(control, server_url, "DELETE", item, template).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            {
                "name": "UPPER",
                "dimension": 3,
                "spec": {"serverless": {"cloud": "a", "region": "b"}},
            },
            400,
        ),
        ({"name": "missing-spec", "dimension": 3}, 422),
    ],
)
def test_control_plane_errors(
    control: Contract, server_url: str, body: dict[str, Any], status: int
) -> None:
    response = httpx.post(f"{server_url}/indexes", json=body, headers=HEADERS)
    assert response.status_code == status
    control.check_response("/indexes", "POST", response)
    control.validate(control.component("ErrorResponse"), response.json())


def test_data_plane_operations(data: Contract, index_host: str) -> None:
    upsert = {
        "namespace": "ns",
        "vectors": [
            {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"genre": "drama", "year": 2019}},
            {
                "id": "b",
                "values": [0.0, 1.0, 0.0],
                "sparseValues": {"indices": [2, 9], "values": [0.5, 0.1]},
                "metadata": {"tags": ["x"]},
            },
        ],
    }
    upserted = exchange(data, index_host, "POST", "/vectors/upsert", body=upsert)
    assert upserted.json() == {"upsertedCount": 2}

    query = {
        "namespace": "ns",
        "topK": 2,
        "vector": [1.0, 0.1, 0.0],
        "filter": {"year": {"$gte": 2000}},
        "includeValues": True,
        "includeMetadata": True,
    }
    matches = exchange(data, index_host, "POST", "/query", body=query).json()["matches"]
    assert [m["id"] for m in matches] == ["a"]
    by_id = exchange(
        data, index_host, "POST", "/query", body={"id": "b", "topK": 1, "namespace": "ns"}
    )
    assert by_id.json()["matches"][0]["id"] == "b"

    fetched = exchange(
        data, index_host, "GET", "/vectors/fetch", params={"ids": ["a", "b"], "namespace": "ns"}
    )
    assert set(fetched.json()["vectors"]) == {"a", "b"}

    update = {"id": "a", "namespace": "ns", "setMetadata": {"year": 2020}, "values": [1, 1, 0]}
    assert exchange(data, index_host, "POST", "/vectors/update", body=update).status_code == 200

    listed = exchange(
        data, index_host, "GET", "/vectors/list", params={"namespace": "ns", "limit": 1}
    ).json()
    assert [v["id"] for v in listed["vectors"]] == ["a"]
    assert "next" in listed["pagination"]

    stats = exchange(data, index_host, "POST", "/describe_index_stats", body={}).json()
    assert stats["namespaces"]["ns"] == {"vectorCount": 2}

    delete = {"ids": ["a"], "namespace": "ns"}
    assert exchange(data, index_host, "POST", "/vectors/delete", body=delete).json() == {}
    delete_all = {"deleteAll": True, "namespace": "ns"}
    assert exchange(data, index_host, "POST", "/vectors/delete", body=delete_all).status_code == 200


def test_fetch_by_metadata_and_namespaces(data: Contract, index_host: str) -> None:
    namespace = f"meta-{uuid.uuid4().hex[:6]}"
    vectors = [
        {"id": f"v{i}", "values": [1.0, float(i), 0.0], "metadata": {"genre": genre}}
        for i, genre in enumerate(["drama", "comedy", "drama", "drama"])
    ]
    exchange(
        data,
        index_host,
        "POST",
        "/vectors/upsert",
        body={"namespace": namespace, "vectors": vectors},
    )

    by_metadata = {"namespace": namespace, "filter": {"genre": {"$eq": "drama"}}, "limit": 2}
    first = exchange(data, index_host, "POST", "/vectors/fetch_by_metadata", body=by_metadata)
    assert sorted(first.json()["vectors"]) == ["v0", "v2"]
    rest = {**by_metadata, "paginationToken": first.json()["pagination"]["next"]}
    second = exchange(data, index_host, "POST", "/vectors/fetch_by_metadata", body=rest).json()
    assert list(second["vectors"]) == ["v3"]
    assert "pagination" not in second

    template = "/namespaces/{namespace}"
    created = exchange(
        data,
        index_host,
        "POST",
        "/namespaces",
        body={"name": f"{namespace}-empty", "schema": {"fields": {"genre": {"filterable": True}}}},
    )
    assert created.json()["record_count"] == 0
    again = exchange(data, index_host, "POST", "/namespaces", body={"name": f"{namespace}-empty"})
    assert again.status_code == 409
    listed = exchange(data, index_host, "GET", "/namespaces", params={"prefix": namespace}).json()
    assert [(n["name"], n["record_count"]) for n in listed["namespaces"]] == [
        (namespace, 4),
        (f"{namespace}-empty", 0),
    ]
    described = exchange(data, index_host, "GET", f"/namespaces/{namespace}", template)
    assert described.json() == {"name": namespace, "record_count": 4}
    deleted = exchange(data, index_host, "DELETE", f"/namespaces/{namespace}", template)
    assert deleted.status_code == 200
    missing = exchange(data, index_host, "GET", f"/namespaces/{namespace}", template)
    assert missing.status_code == 404


def test_sparse_index_bodies(control: Contract, data: Contract, server_url: str) -> None:
    body = {
        "name": f"sparse-{uuid.uuid4().hex[:8]}",
        "metric": "dotproduct",
        "vector_type": "sparse",
        "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
    }
    created = exchange(control, server_url, "POST", "/indexes", body=body).json()
    assert created["vector_type"] == "sparse"
    assert "dimension" not in created
    host = http_host(created["host"])
    sparse = {"indices": [1, 5], "values": [0.5, 2.0]}
    upsert = {"vectors": [{"id": "s", "sparseValues": sparse, "metadata": {"k": "v"}}]}
    assert exchange(data, host, "POST", "/vectors/upsert", body=upsert).status_code == 200
    query = {"topK": 3, "sparseVector": {"indices": [5], "values": [1.0]}, "includeValues": True}
    matches = exchange(data, host, "POST", "/query", body=query).json()["matches"]
    assert [(m["id"], m["score"], m["sparseValues"]) for m in matches] == [("s", 2.0, sparse)]
    stats = exchange(data, host, "POST", "/describe_index_stats", body={}).json()
    assert stats["vectorType"] == "sparse"
    assert "dimension" not in stats
    dense = {"vectors": [{"id": "d", "values": [1.0, 2.0], "sparseValues": sparse}]}
    refused = exchange(data, host, "POST", "/vectors/upsert", body=dense)
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/vectors/upsert", {"vectors": [{"id": "bad", "values": [1.0, 2.0]}]}),
        ("/query", {"topK": 20000, "vector": [1.0, 0.0, 0.0]}),
        ("/vectors/delete", {"ids": ["a"], "deleteAll": True}),
        ("/vectors/update", {"id": "a", "setMetadata": {"k": {"nested": 1}}}),
    ],
)
def test_data_plane_errors_are_rpc_status(
    data: Contract, index_host: str, path: str, body: dict[str, Any]
) -> None:
    response = httpx.post(f"{index_host}{path}", json=body, headers=HEADERS)
    assert response.status_code == 400
    data.check_response(path, "POST", response)
    data.validate(data.component("rpcStatus"), response.json())


def test_fault_responses_match_the_error_schemas(
    control: Contract, data: Contract, tmp_path: Path
) -> None:
    with running_pinecone_local(tmp_path, fault_rate=0.5, fault_seed=5) as url:
        body = {
            "name": "faults",
            "dimension": 2,
            "spec": {"serverless": {"cloud": "a", "region": "b"}},
        }
        control_faults: list[httpx.Response] = []
        created = httpx.post(f"{url}/indexes", json=body, headers=HEADERS)
        while created.status_code != 201:
            control_faults.append(created)
            created = httpx.post(f"{url}/indexes", json=body, headers=HEADERS)
        control_faults += [httpx.get(f"{url}/indexes", headers=HEADERS) for _ in range(10)]
        control_faults = [r for r in control_faults if r.status_code != 200]
        assert control_faults
        for response in control_faults:
            assert response.status_code in {429, 500, 503}
            control.validate(control.component("ErrorResponse"), response.json())

        host = http_host(created.json()["host"])
        query = {"topK": 1, "vector": [1.0, 0.0]}
        answers = [httpx.post(f"{host}/query", json=query, headers=HEADERS) for _ in range(10)]
        data_faults = [r for r in answers if r.status_code != 200]
        assert data_faults
        for response in data_faults:
            assert response.status_code in {429, 500, 503}
            data.check_response("/query", "POST", response)
