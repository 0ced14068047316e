"""Behaviour of MemoryVectorStore: search, filters, deletes, persistence and HNSW mode."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from rag_app.errors import EmbeddingMismatchError
from rag_app.stores.memory.vector_store import MemoryVectorStore

DIM = 16


def make_node(
    node_id: str,
    vector: np.ndarray,
    doc: str | None = "doc",
    metadata: dict | None = None,
    text: str | None = None,
) -> TextNode:
    relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)} if doc else {}
    return TextNode(
        id_=node_id,
        text=text if text is not None else f"text of {node_id}",
        embedding=[float(x) for x in vector],
        metadata=metadata or {},
        relationships=relationships,
        start_char_idx=3,
        end_char_idx=17,
    )


def random_vectors(count: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)


def filled_store(count: int = 50, **kwargs: object) -> tuple[MemoryVectorStore, np.ndarray]:
    vectors = random_vectors(count)
    store = MemoryVectorStore(**kwargs)
    store.add(
        [make_node(f"n{i}", v, doc=f"doc{i % 5}", metadata={"i": i}) for i, v in enumerate(vectors)]
    )
    return store, vectors


def query(store: MemoryVectorStore, vector: np.ndarray, k: int = 5, **kwargs: object):
    return store.query(
        VectorStoreQuery(query_embedding=[float(x) for x in vector], similarity_top_k=k, **kwargs)
    )


def cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    return (matrix @ vector) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector))


def test_query_matches_numpy_cosine() -> None:
    store, vectors = filled_store(200)
    probe = random_vectors(1, seed=1)[0]
    result = query(store, probe, k=10)
    expected = cosine(vectors, probe)
    order = np.argsort(-expected)[:10]
    assert result.ids == [f"n{i}" for i in order]
    np.testing.assert_allclose(result.similarities, expected[order], atol=1e-5)
    assert [n.node_id for n in result.nodes] == result.ids


def test_returned_nodes_keep_text_metadata_offsets_and_ref_doc() -> None:
    store = MemoryVectorStore()
    store.add([make_node("a", random_vectors(1)[0], doc="d1", metadata={"k": "v"}, text="hello")])
    node = store.get_nodes(node_ids=["a"])[0]
    assert isinstance(node, TextNode)
    assert (node.text, node.metadata, node.ref_doc_id) == ("hello", {"k": "v"}, "d1")
    assert (node.start_char_idx, node.end_char_idx) == (3, 17)
    node.metadata["k"] = "mutated"
    assert store.get_nodes(node_ids=["a"])[0].metadata == {"k": "v"}


def test_top_k_larger_than_store_returns_everything_sorted() -> None:
    store, _ = filled_store(4)
    result = query(store, random_vectors(1, seed=3)[0], k=10)
    assert len(result.ids) == 4
    assert result.similarities == sorted(result.similarities, reverse=True)


def test_readding_an_id_overwrites_it() -> None:
    store, vectors = filled_store(10)
    store.add([make_node("n3", vectors[7], doc="other", text="new text")])
    assert store.count == 10
    node = store.get_nodes(node_ids=["n3"])[0]
    assert (node.text, node.ref_doc_id) == ("new text", "other")
    result = query(store, vectors[7], k=2)
    assert set(result.ids) == {"n3", "n7"}
    np.testing.assert_allclose(result.similarities, [1.0, 1.0], atol=1e-5)


def test_delete_removes_only_that_document() -> None:
    store = MemoryVectorStore()
    vectors = random_vectors(4)
    store.add(
        [
            make_node("a", vectors[0], doc="doc1"),
            make_node("b", vectors[1], doc="doc10"),
            make_node("c", vectors[2], doc="doc1"),
            make_node("d", vectors[3], doc="doc2"),
        ]
    )
    store.delete("doc1")
    assert sorted(n.node_id for n in store.get_nodes()) == ["b", "d"]
    assert sorted(query(store, vectors[0], k=10).ids) == ["b", "d"]
    store.delete("missing")
    assert store.count == 2


def test_swap_remove_keeps_rows_consistent() -> None:
    store, vectors = filled_store(30)
    store.delete_nodes(node_ids=[f"n{i}" for i in range(0, 30, 3)] + ["n29", "n28"])
    remaining = [i for i in range(30) if i % 3 and i not in (28, 29)]
    assert store.count == len(remaining)
    for i in remaining:
        result = query(store, vectors[i], k=1)
        assert result.ids == [f"n{i}"]
        assert result.nodes[0].metadata == {"i": i}


def test_delete_nodes_by_ids_and_by_filters() -> None:
    store, _ = filled_store(20)
    store.delete_nodes(node_ids=["n0", "n1", "absent"])
    assert store.count == 18
    store.delete_nodes(
        filters=MetadataFilters(filters=[MetadataFilter(key="i", value=10, operator="<")])
    )
    assert sorted(n.metadata["i"] for n in store.get_nodes()) == list(range(10, 20))
    store.delete_nodes()
    assert store.count == 10


def test_clear_on_empty_and_full_store() -> None:
    store = MemoryVectorStore()
    store.clear()
    assert store.count == 0
    store.add([make_node("a", random_vectors(1)[0])])
    store.clear()
    assert store.count == 0 and store.get_nodes() == []
    assert query_or_empty(store)
    store.add([make_node("b", random_vectors(1, dim=4)[0])])
    assert store.dimension == 4


def query_or_empty(store: MemoryVectorStore) -> bool:
    return query(store, random_vectors(1)[0]).ids == []


FILTER_ROWS = [
    {"n": 1, "s": "alpha", "tags": ["x", "y"], "title": "Hello World"},
    {"n": 5, "s": "beta", "tags": ["y"], "title": "goodbye"},
    {"n": 10, "s": "gamma", "tags": [], "title": "world peace"},
    {"s": "", "tags": ["z"]},
]


@pytest.fixture()
def filter_store() -> MemoryVectorStore:
    store = MemoryVectorStore()
    vectors = random_vectors(len(FILTER_ROWS))
    store.add(
        [
            make_node(f"r{i}", v, metadata=m)
            for i, (v, m) in enumerate(zip(vectors, FILTER_ROWS, strict=True))
        ]
    )
    return store


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        (FilterOperator.EQ, 5, {"r1"}),
        (FilterOperator.NE, 5, {"r0", "r2", "r3"}),
        (FilterOperator.GT, 1, {"r1", "r2"}),
        (FilterOperator.GTE, 5, {"r1", "r2"}),
        (FilterOperator.LT, 5, {"r0"}),
        (FilterOperator.LTE, 5, {"r0", "r1"}),
        (FilterOperator.IN, [1, 10], {"r0", "r2"}),
        (FilterOperator.NIN, [1, 10], {"r1", "r3"}),
    ],
)
def test_numeric_filter_operators(
    filter_store: MemoryVectorStore, operator: FilterOperator, value: object, expected: set[str]
) -> None:
    assert (
        ids_matching(filter_store, MetadataFilter(key="n", value=value, operator=operator))
        == expected
    )


@pytest.mark.parametrize(
    ("key", "operator", "value", "expected"),
    [
        ("s", FilterOperator.EQ, "beta", {"r1"}),
        ("s", FilterOperator.NE, "beta", {"r0", "r2", "r3"}),
        ("s", FilterOperator.IN, ["alpha", "gamma"], {"r0", "r2"}),
        ("s", FilterOperator.NIN, ["alpha", "gamma"], {"r1", "r3"}),
        ("s", FilterOperator.GT, "beta", {"r2"}),
        ("tags", FilterOperator.CONTAINS, "y", {"r0", "r1"}),
        ("tags", FilterOperator.ANY, ["x", "z"], {"r0", "r3"}),
        ("tags", FilterOperator.ALL, ["x", "y"], {"r0"}),
        ("title", FilterOperator.TEXT_MATCH, "World", {"r0"}),
        ("title", FilterOperator.TEXT_MATCH_INSENSITIVE, "world", {"r0", "r2"}),
        ("s", FilterOperator.IS_EMPTY, None, {"r3"}),
        ("tags", FilterOperator.IS_EMPTY, None, {"r2"}),
        ("title", FilterOperator.IS_EMPTY, None, {"r3"}),
    ],
)
def test_string_and_list_filter_operators(
    filter_store: MemoryVectorStore,
    key: str,
    operator: FilterOperator,
    value: object,
    expected: set[str],
) -> None:
    assert (
        ids_matching(filter_store, MetadataFilter(key=key, value=value, operator=operator))
        == expected
    )


def ids_matching(
    store: MemoryVectorStore,
    *filters: MetadataFilter | MetadataFilters,
    condition: FilterCondition = FilterCondition.AND,
) -> set[str]:
    metadata_filters = MetadataFilters(filters=list(filters), condition=condition)
    via_get = {n.node_id for n in store.get_nodes(filters=metadata_filters)}
    via_query = set(query(store, random_vectors(1)[0], k=100, filters=metadata_filters).ids)
    assert via_get == via_query
    return via_get


def test_filter_conditions_and_nesting(filter_store: MemoryVectorStore) -> None:
    small = MetadataFilter(key="n", value=5, operator=FilterOperator.LTE)
    has_y = MetadataFilter(key="tags", value="y", operator=FilterOperator.CONTAINS)
    assert ids_matching(filter_store, small, has_y, condition=FilterCondition.AND) == {"r0", "r1"}
    assert ids_matching(filter_store, small, has_y) == {"r0", "r1"}
    gamma = MetadataFilter(key="s", value="gamma")
    assert ids_matching(filter_store, gamma, has_y, condition=FilterCondition.OR) == {
        "r0",
        "r1",
        "r2",
    }
    assert ids_matching(filter_store, gamma, has_y, condition=FilterCondition.NOT) == {"r3"}
    nested = MetadataFilters(filters=[gamma, has_y], condition=FilterCondition.OR)
    not_beta = MetadataFilter(key="s", value="beta", operator=FilterOperator.NE)
    assert ids_matching(filter_store, nested, not_beta) == {"r0", "r2"}


def test_query_filters_return_best_matching_rows() -> None:
    store, vectors = filled_store(100)
    probe = random_vectors(1, seed=9)[0]
    filters = MetadataFilters(filters=[MetadataFilter(key="i", value=50, operator=">=")])
    result = query(store, probe, k=5, filters=filters)
    scores = cosine(vectors[50:], probe)
    assert result.ids == [f"n{50 + i}" for i in np.argsort(-scores)[:5]]


def test_doc_ids_and_node_ids_restrict_the_search() -> None:
    store, vectors = filled_store(50)
    result = query(store, vectors[0], k=50, doc_ids=["doc1", "doc3"])
    assert {int(i[1:]) % 5 for i in result.ids} == {1, 3} and len(result.ids) == 20
    result = query(store, vectors[0], k=50, node_ids=["n4", "n7", "ghost"])
    assert set(result.ids) == {"n4", "n7"}
    assert query(store, vectors[0], k=5, doc_ids=["nothing"]).ids == []
    assert len(query(store, vectors[0], k=50, node_ids=[], doc_ids=[]).ids) == 50


def test_dimension_mismatch_names_both_dimensions() -> None:
    store, _ = filled_store(3)
    with pytest.raises(ValueError, match=r"dimension 8.*dimension 16"):
        store.add([make_node("x", random_vectors(1, dim=8)[0])])
    with pytest.raises(EmbeddingMismatchError, match=r"dimension 4.*dimension 16"):
        query(store, random_vectors(1, dim=4)[0])
    assert store.count == 3


def test_persist_and_load_round_trip(tmp_path: Path) -> None:
    store, _ = filled_store(60)
    store.delete("doc2")
    probe = random_vectors(1, seed=5)[0]
    filters = MetadataFilters(filters=[MetadataFilter(key="i", value=30, operator="<")])
    before = query(store, probe, k=7, filters=filters)
    store.persist(str(tmp_path / "store"))
    loaded = MemoryVectorStore.from_persist_dir(str(tmp_path / "store"))
    after = query(loaded, probe, k=7, filters=filters)
    assert after.ids == before.ids
    np.testing.assert_allclose(after.similarities, before.similarities, atol=1e-6)
    assert [n.dict() for n in after.nodes] == [n.dict() for n in before.nodes]
    loaded.add([make_node("extra", probe)])
    assert query(loaded, probe, k=1).ids == ["extra"]


def test_persist_replaces_previous_generation(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store, _ = filled_store(5)
    store.persist(str(folder))
    store.delete_nodes(node_ids=["n0"])
    store.persist(str(folder))
    assert MemoryVectorStore.from_persist_dir(str(folder)).count == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "manifest.json",
        "records-2.json",
        "vectors-2.npy",
    ]


@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_writers_sharing_a_directory_merge_instead_of_overwriting(
    tmp_path: Path, index: str
) -> None:
    folder = str(tmp_path / "store")
    vectors = random_vectors(4)
    first, second = MemoryVectorStore(index=index), MemoryVectorStore(index=index)
    first.add([make_node("a", vectors[0]), make_node("b", vectors[1])])
    first.persist(folder)
    second.add([make_node("c", vectors[2])])
    second.persist(folder)  # second never loaded a and b: they must survive
    first.add([make_node("d", vectors[3])])
    first.delete_nodes(node_ids=["a", "c"])  # c is on disk only, not in first's rows
    first.persist(folder)
    assert sorted(n.node_id for n in MemoryVectorStore.from_persist_dir(folder).get_nodes()) == [
        "b",
        "d",
    ]
    assert second.refresh(folder) and sorted(n.node_id for n in second.get_nodes()) == ["b", "d"]
    assert not second.refresh(folder)
    assert query(second, vectors[3], k=1).ids == ["d"]


@pytest.mark.parametrize("fail_on_call", [1, 2, 3])
def test_crash_during_persist_keeps_previous_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on_call: int
) -> None:
    folder = tmp_path / "store"
    store, _ = filled_store(10)
    store.persist(str(folder))
    store.delete_nodes(node_ids=["n1", "n2"])
    store.add([make_node("new", random_vectors(1, seed=4)[0])])
    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        store.persist(str(folder))
    monkeypatch.undo()
    loaded = MemoryVectorStore.from_persist_dir(str(folder))
    assert sorted(n.node_id for n in loaded.get_nodes()) == sorted(f"n{i}" for i in range(10))
    store.persist(str(folder))
    reloaded = MemoryVectorStore.from_persist_dir(str(folder))
    assert reloaded.count == 9
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def test_loading_a_missing_store_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MemoryVectorStore.from_persist_dir(str(tmp_path))


def hnsw_store(vectors: np.ndarray) -> MemoryVectorStore:
    store = MemoryVectorStore(index="hnsw", hnsw_ef_search=64)
    store.add([make_node(f"n{i}", v, metadata={"i": i}) for i, v in enumerate(vectors)])
    return store


def test_hnsw_recall_against_exact() -> None:
    """32-d keeps the build fast; 384-d Gaussian noise is HNSW's worst case (see the benchmark)."""
    vectors = random_vectors(5000, dim=32, seed=11)
    store = hnsw_store(vectors)
    probes = random_vectors(50, dim=32, seed=12)
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = 0
    for probe in probes:
        exact = {f"n{i}" for i in np.argsort(-(normalised @ probe))[:10]}
        hits += len(exact & set(query(store, probe, k=10).ids))
    assert hits / (10 * len(probes)) >= 0.9


def test_hnsw_never_returns_deleted_or_stale_rows(tmp_path: Path) -> None:
    vectors = random_vectors(600, seed=13)
    store = hnsw_store(vectors)
    query(store, vectors[0])
    deleted = {f"n{i}" for i in range(0, 600, 7)}
    store.delete_nodes(node_ids=sorted(deleted))
    store.add([make_node("n1", -vectors[1])])
    for i in range(0, 600, 7):
        result = query(store, vectors[i], k=10)
        assert not deleted & set(result.ids)
    assert "n1" not in query(store, vectors[1], k=10).ids
    store.delete_nodes(node_ids=[f"n{i}" for i in range(300)])
    assert all(int(i[1:]) >= 300 for i in query(store, vectors[5], k=20).ids)
    store.persist(str(tmp_path / "h"))
    loaded = MemoryVectorStore.from_persist_dir(str(tmp_path / "h"))
    assert loaded.index == "hnsw"
    assert query(loaded, vectors[400], k=1).ids == ["n400"]


def test_hnsw_with_selective_filter_is_exact() -> None:
    vectors = random_vectors(1000, seed=14)
    store = hnsw_store(vectors)
    filters = MetadataFilters(filters=[MetadataFilter(key="i", value=[3, 500, 999], operator="in")])
    result = query(store, vectors[0], k=10, filters=filters)
    assert sorted(result.ids) == ["n3", "n500", "n999"]


def test_hnsw_with_broad_filter_only_returns_matching_rows() -> None:
    vectors = random_vectors(2000, dim=32, seed=15)
    store = hnsw_store(vectors)
    filters = MetadataFilters(filters=[MetadataFilter(key="i", value=400, operator=">=")])
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = 0
    for probe in random_vectors(20, dim=32, seed=16):
        result = query(store, probe, k=10, filters=filters)
        assert len(result.ids) == 10
        assert all(int(i[1:]) >= 400 for i in result.ids)
        exact = {f"n{400 + i}" for i in np.argsort(-(normalised[400:] @ probe))[:10]}
        hits += len(exact & set(result.ids))
    assert hits / 200 >= 0.9


def test_works_inside_a_vector_store_index() -> None:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    store = MemoryVectorStore()
    index = VectorStoreIndex.from_documents(
        [Document(text="alpha beta", id_="d1"), Document(text="gamma delta", id_="d2")],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=MockEmbedding(embed_dim=8),
    )
    retrieved = index.as_retriever(similarity_top_k=5).retrieve("alpha")
    assert sorted(r.node.get_content() for r in retrieved) == ["alpha beta", "gamma delta"]
    assert {r.node.ref_doc_id for r in retrieved} == {"d1", "d2"}
    index.delete_ref_doc("d1")
    assert [n.ref_doc_id for n in store.get_nodes()] == ["d2"]


# LlamaIndex's vector-store contract, ported from llama-index-core's own tests
# (tests/vector_stores/test_simple.py, `SimpleVectorStoreTest`): the same three nodes and filter
# cases, each run on SimpleVectorStore and on MemoryVectorStore, which must answer alike.


def contract_nodes() -> list[TextNode]:
    """Three nodes as in llama-index-core's SimpleVectorStore tests (weights, ranks, lists)."""
    specs = [
        ("w1-a", [1.0, 0.0], {"weight": 1.0, "rank": "a", "quality": ["medium", "high"]}),
        ("w2-c", [0.0, 1.0], {"weight": 2.0, "rank": "c", "quality": ["medium"]}),
        ("w3-c", [1.0, 1.0], {"weight": 3.0, "rank": "c", "quality": ["low", "medium", "high"]}),
    ]
    return [
        TextNode(
            id_=node_id,
            text="lorem ipsum",
            embedding=vector,
            metadata={**metadata, "identifier": f"6FTR78{node_id}"},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"test-{n}")},
        )
        for n, (node_id, vector, metadata) in enumerate(specs)
    ]


def contract_stores() -> list:
    from llama_index.core.vector_stores import SimpleVectorStore

    stores = [SimpleVectorStore(), MemoryVectorStore()]
    for store in stores:
        store.add(contract_nodes())
    return stores


@pytest.mark.parametrize(
    ("operator", "key", "value", "expected"),
    [
        (FilterOperator.EQ, "weight", 1.0, 1),
        (FilterOperator.NE, "weight", 1.0, 2),
        (FilterOperator.GT, "weight", 1.5, 2),
        (FilterOperator.GTE, "weight", 1.0, 3),
        (FilterOperator.LTE, "weight", 1.0, 1),
        (FilterOperator.IN, "rank", ["a", "c"], 3),
        (FilterOperator.NIN, "rank", ["c"], 1),
        (FilterOperator.CONTAINS, "quality", "high", 2),
        (FilterOperator.TEXT_MATCH, "identifier", "6FTR78w", 3),
        (FilterOperator.TEXT_MATCH_INSENSITIVE, "identifier", "6ftr78W2", 1),
        (FilterOperator.ANY, "quality", ["high", "low"], 2),
        (FilterOperator.ALL, "quality", ["medium", "high"], 2),
        (FilterOperator.IS_EMPTY, "not_existed_key", None, 3),
    ],
)
def test_filters_answer_as_simple_vector_store_does(
    operator: FilterOperator, key: str, value: object, expected: int
) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key=key, operator=operator, value=value)])
    answers = [
        s.query(VectorStoreQuery(query_embedding=[1.0, 1.0], filters=filters, similarity_top_k=3))
        for s in contract_stores()
    ]
    assert [len(a.ids) for a in answers] == [expected, expected]
    assert answers[0].ids == answers[1].ids


@pytest.mark.parametrize(
    "operator", [FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE]
)
def test_text_match_on_a_number_raises_type_error_like_simple_vector_store(
    operator: FilterOperator,
) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key="weight", operator=operator, value="1")])
    for store in contract_stores():
        with pytest.raises(TypeError, match="should be strings"):
            store.query(VectorStoreQuery(query_embedding=[1.0, 1.0], filters=filters))


@pytest.mark.parametrize("threshold", [None, 0.0, 0.3, 1.0])
def test_mmr_query_mode_matches_simple_vector_store(threshold: float | None) -> None:
    from llama_index.core.vector_stores import SimpleVectorStore

    vectors = random_vectors(12, dim=4, seed=3)
    nodes = [make_node(f"n{i}", v) for i, v in enumerate(vectors)]
    simple, memory = SimpleVectorStore(), MemoryVectorStore()
    simple.add(nodes)
    memory.add(nodes)
    request = VectorStoreQuery(
        query_embedding=[float(x) for x in vectors[0] + vectors[1]],
        similarity_top_k=4,
        mode=VectorStoreQueryMode.MMR,
    )
    options = {"mmr_threshold": threshold, "mmr_prefetch_k": 12}
    expected = simple.query(request, **options)
    found = memory.query(request, **options)
    assert found.ids == expected.ids
    assert found.similarities == pytest.approx(expected.similarities, abs=1e-5)
    assert [n.node_id for n in found.nodes] == found.ids


def test_mmr_with_threshold_one_is_the_plain_ranking() -> None:
    store, vectors = filled_store()
    plain = query(store, vectors[7], k=5)
    mmr = query(store, vectors[7], k=5, mode=VectorStoreQueryMode.MMR)
    assert (
        store.query(
            VectorStoreQuery(
                query_embedding=[float(x) for x in vectors[7]],
                similarity_top_k=5,
                mode=VectorStoreQueryMode.MMR,
            ),
            mmr_threshold=1.0,
        ).ids
        == plain.ids
    )
    assert mmr.ids[0] == plain.ids[0] and len(mmr.ids) == 5
