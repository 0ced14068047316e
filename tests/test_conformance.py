"""One contract, every backend: switching RAG_VECTOR_STORE must not change what the app sees.

Each case runs on memory, embedded Chroma, a Chroma server and Pinecone (the local server),
through LlamaIndex's own vector-store API (`add`, `delete`, `delete_nodes`, `clear`, `query`
with `MetadataFilters`) and through the app's `Backend` and `RagApp`. The LlamaIndex
integrations disagree on overwrite, delete, batch, score and metadata semantics; the backend
modules fix them, and every fix has a case here that fails without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import SimpleSummarize
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import rag_app
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.errors import EmbeddingMismatchError
from rag_app.ingestion.catalog_store import CatalogWriteError
from rag_app.ingestion.records import flatten_metadata
from rag_app.llamaindex import close_shared
from rag_app.stores.base import Backend, searched_text
from rag_app.stores.pinecone import FixedPineconeVectorStore
from rag_app.stores.query_options import QueryOptionError
from tests.conftest import backend_overrides, cli_env
from tests.support.openai_server import running_openai_server

DIM = 384
#: chromadb 1.5's `get_max_batch_size()`; one write must be larger.
CHROMA_MAX_BATCH = 5461
CATEGORIES = ("a", "b", "c")


def make_node(
    node_id: str, vector: Sequence[float], doc: str = "doc", text: str | None = None, **meta: Any
) -> TextNode:
    node = TextNode(
        id_=node_id,
        text=text or f"text of {node_id}",
        embedding=[float(v) for v in vector],
        metadata=meta,
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def corpus() -> tuple[list[TextNode], np.ndarray, np.ndarray]:
    """30 nodes whose cosines to the query spread over [-0.9, 0.95], and that query."""
    rng = np.random.default_rng(12)
    query, noise = unit_vectors(rng, 1)[0], unit_vectors(rng, 30)
    noise -= np.outer(noise @ query, query)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosines = np.linspace(-0.9, 0.95, 30)
    rng.shuffle(cosines)
    vectors = cosines[:, None] * query + np.sqrt(1 - cosines**2)[:, None] * noise
    nodes = [
        make_node(
            f"n{i:02d}",
            vectors[i],
            doc=f"doc{i % 4}",
            category=CATEGORIES[i % 3],
            year=2000 + i,
            label="한국어" if i % 2 == 0 else "english",
        )
        for i in range(30)
    ]
    return nodes, vectors, query


def query_ids(
    backend: Backend, embedding: Sequence[float], top_k: int, filters: MetadataFilters | None = None
) -> list[str]:
    result = backend.vector_store.query(
        VectorStoreQuery(query_embedding=list(embedding), similarity_top_k=top_k, filters=filters)
    )
    return [n.node_id for n in result.nodes or []]


def stored_texts(backend: Backend, embedding: Sequence[float]) -> dict[str, str]:
    hits = backend.query(embedding, 100)
    return {hit.node.node_id: hit.node.get_content() for hit in hits}


@pytest.fixture
def app(make_app: Callable[..., RagApp]) -> RagApp:
    return make_app(retriever="dense")


@pytest.fixture
def backend(app: RagApp) -> Backend:
    return app.backend


def test_scores_are_cosine_similarity_with_the_same_top_k(backend: Backend) -> None:
    nodes, vectors, query = corpus()
    backend.vector_store.add(nodes)
    expected = vectors @ query
    order = np.argsort(-expected)
    for top_k in (5, 30):
        result = backend.vector_store.query(
            VectorStoreQuery(query_embedding=query.tolist(), similarity_top_k=top_k)
        )
        assert [n.node_id for n in result.nodes] == [nodes[i].node_id for i in order[:top_k]]
        np.testing.assert_allclose(result.similarities, expected[order[:top_k]], atol=1e-4)
    hits = backend.query(query.tolist(), 3)
    np.testing.assert_allclose([h.score for h in hits], expected[order[:3]], atol=1e-4)


def test_vector_store_add_overwrites_text_and_vector(backend: Backend) -> None:
    old, new = unit_vectors(np.random.default_rng(1), 2)
    backend.vector_store.add([make_node("same", old, text="old text")])
    backend.vector_store.add([make_node("same", new, text="new text")])
    result = backend.vector_store.query(
        VectorStoreQuery(query_embedding=new.tolist(), similarity_top_k=5)
    )
    assert [n.get_content() for n in result.nodes] == ["new text"]
    assert result.similarities[0] == pytest.approx(1.0, abs=1e-4)
    assert backend.count() == 1


def test_backend_upsert_overwrites_text_and_vector(backend: Backend) -> None:
    old, new = unit_vectors(np.random.default_rng(2), 2)
    backend.upsert([make_node("same", old, text="old text")])
    backend.upsert([make_node("same", new, text="new text")])
    hits = backend.query(new.tolist(), 5)
    assert [(h.node.get_content(), round(h.score, 4)) for h in hits] == [("new text", 1.0)]
    assert backend.fetch_nodes(["same"])["same"].get_content() == "new text"
    assert backend.count() == 1


def two_documents(rng: np.random.Generator) -> list[TextNode]:
    vectors = unit_vectors(rng, 4)
    return [
        make_node("a", vectors[0], doc="doc1"),
        make_node("b", vectors[1], doc="doc1"),
        make_node("c", vectors[2], doc="doc10"),
        make_node("d", vectors[3], doc="doc10"),
    ]


def test_vector_store_delete_by_document_is_exact(backend: Backend) -> None:
    nodes = two_documents(np.random.default_rng(3))
    backend.vector_store.add(nodes)
    backend.vector_store.delete("doc1")
    assert sorted(query_ids(backend, nodes[0].embedding, 10)) == ["c", "d"]
    assert backend.count() == 2


def test_app_delete_of_doc1_keeps_doc10(app: RagApp) -> None:
    app.ingest(
        [
            Document(id_="doc1", text="The first document is about vector databases."),
            Document(id_="doc10", text="The tenth document is about approximate search."),
        ]
    )
    assert app.delete(["doc1"]) == []
    assert [r.doc_id for r in app.documents()] == ["doc10"]
    assert {s.doc_id for s in app.retrieve("document", top_k=5)} == {"doc10"}
    assert app.backend.count() == app.documents()[0].n_chunks


def test_vector_store_delete_nodes_by_id(backend: Backend) -> None:
    nodes = two_documents(np.random.default_rng(4))
    backend.vector_store.add(nodes)
    backend.vector_store.delete_nodes(node_ids=["a", "c"])
    assert sorted(query_ids(backend, nodes[0].embedding, 10)) == ["b", "d"]


def test_backend_delete_chunks_by_id(backend: Backend) -> None:
    nodes = two_documents(np.random.default_rng(5))
    backend.upsert(nodes)
    backend.delete_chunks(["b", "d", "unknown"])
    assert sorted(query_ids(backend, nodes[0].embedding, 10)) == ["a", "c"]
    assert sorted(backend.fetch_nodes(["a", "b", "c", "d"])) == ["a", "c"]


def test_vector_store_delete_nodes_by_filter(backend: Backend) -> None:
    nodes, _, query = corpus()
    backend.vector_store.add(nodes)
    backend.vector_store.delete_nodes(
        filters=MetadataFilters(filters=[MetadataFilter(key="category", value="a")])
    )
    kept = [n.node_id for n in nodes if n.metadata["category"] != "a"]
    assert sorted(query_ids(backend, query, 30)) == sorted(kept)


def test_clear_and_filtered_delete_on_an_empty_store_do_nothing(backend: Backend) -> None:
    store = backend.vector_store
    store.clear()
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="category", value="a")]))
    store.delete_nodes(node_ids=[])
    store.delete("absent")
    backend.delete_chunks([])
    assert backend.count() == 0
    nodes = two_documents(np.random.default_rng(6))
    store.add(nodes)
    store.clear()
    assert query_ids(backend, nodes[0].embedding, 10) == []
    store.clear()


def _filters(*filters: MetadataFilter | MetadataFilters, condition: str = "and") -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=FilterCondition(condition))


def _f(key: str, operator: FilterOperator, value: Any) -> MetadataFilter:
    return MetadataFilter(key=key, operator=operator, value=value)


FILTER_CASES: dict[str, tuple[MetadataFilters, Callable[[dict[str, Any]], bool]]] = {
    "eq": (_filters(_f("category", FilterOperator.EQ, "a")), lambda m: m["category"] == "a"),
    "eq-korean": (
        _filters(_f("label", FilterOperator.EQ, "한국어")),
        lambda m: m["label"] == "한국어",
    ),
    "ne": (_filters(_f("category", FilterOperator.NE, "a")), lambda m: m["category"] != "a"),
    "gt": (_filters(_f("year", FilterOperator.GT, 2020)), lambda m: m["year"] > 2020),
    "gte": (_filters(_f("year", FilterOperator.GTE, 2020)), lambda m: m["year"] >= 2020),
    "lt": (_filters(_f("year", FilterOperator.LT, 2005)), lambda m: m["year"] < 2005),
    "lte": (_filters(_f("year", FilterOperator.LTE, 2005)), lambda m: m["year"] <= 2005),
    "in": (
        _filters(_f("category", FilterOperator.IN, ["a", "b"])),
        lambda m: m["category"] in ("a", "b"),
    ),
    "nin": (
        _filters(_f("category", FilterOperator.NIN, ["a", "b"])),
        lambda m: m["category"] not in ("a", "b"),
    ),
    "and": (
        _filters(_f("category", FilterOperator.EQ, "b"), _f("year", FilterOperator.GT, 2010)),
        lambda m: m["category"] == "b" and m["year"] > 2010,
    ),
    "or": (
        _filters(
            _f("category", FilterOperator.EQ, "c"),
            _f("year", FilterOperator.LT, 2003),
            condition="or",
        ),
        lambda m: m["category"] == "c" or m["year"] < 2003,
    ),
    "and-of-or": (
        _filters(
            _f("label", FilterOperator.EQ, "english"),
            _filters(
                _f("year", FilterOperator.LTE, 2004),
                _f("year", FilterOperator.GTE, 2025),
                condition="or",
            ),
        ),
        lambda m: m["label"] == "english" and (m["year"] <= 2004 or m["year"] >= 2025),
    ),
}


def test_every_filter_operator_selects_the_same_ids(backend: Backend) -> None:
    nodes, vectors, query = corpus()
    backend.vector_store.add(nodes)
    ranked = [nodes[i] for i in np.argsort(-(vectors @ query))]
    expected = {
        name: [n.node_id for n in ranked if keep(n.metadata)]
        for name, (_, keep) in FILTER_CASES.items()
    }
    got = {
        name: query_ids(backend, query, 30, filters) for name, (filters, _) in FILTER_CASES.items()
    }
    assert got == expected


def test_a_write_larger_than_chromas_batch_limit_is_counted_exactly(backend: Backend) -> None:
    vectors = unit_vectors(np.random.default_rng(7), CHROMA_MAX_BATCH + 539)
    backend.upsert([make_node(f"big-{i}", v, text=f"t{i}") for i, v in enumerate(vectors)])
    backend.flush()
    assert backend.count() == len(vectors)
    assert len(backend.fetch_nodes([f"big-{i}" for i in (0, 3000, len(vectors) - 1)])) == 3


def fast_embedder(dimension: int) -> Embedder:
    """A model-free embedder (constant vectors): for counting chunks, not for ranking them."""
    model: BaseEmbedding = MockEmbedding(embed_dim=dimension)
    return Embedder(model, f"mock:{dimension}", 256, str.split)


def test_an_ingest_larger_than_chromas_batch_limit_is_counted_exactly(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app(
        app_embedder=fast_embedder(DIM), retriever="dense", chunk_size=32, chunk_overlap=0
    )
    words = " ".join(f"w{i}" for i in range(32 * 10))
    documents = [Document(id_=f"d{i}", text=f"doc {i} {words}") for i in range(600)]
    report = app.ingest(documents)
    assert report.ok and len(report.added) == 600
    total = sum(r.n_chunks for r in app.documents())
    assert total > CHROMA_MAX_BATCH
    assert app.backend.count() == total


KOREAN_METADATA: dict[str, Any] = {
    "title": "벡터 데이터베이스 입문",
    "missing": None,
    "tags": ["검색", 3, None],
    "empty": [],
    "nested": {"author": {"name": "김철수", "alias": None}, "year": 2024},
    "draft": False,
    "ratio": 0.25,
}


def test_metadata_comes_back_in_one_documented_shape(app: RagApp) -> None:
    text = "HNSW는 계층적 그래프로 근사 최근접 이웃을 찾습니다."
    app.ingest([Document(id_="meta", text=text, metadata=KOREAN_METADATA)])
    expected = {**flatten_metadata(KOREAN_METADATA), "doc_id": "meta", "chunk_index": 0}
    assert expected == {
        "title": "벡터 데이터베이스 입문",
        "tags": ["검색", "3"],
        "empty": [],
        "nested.author.name": "김철수",
        "nested.year": 2024,
        "draft": False,
        "ratio": 0.25,
        "doc_id": "meta",
        "chunk_index": 0,
    }
    hit = app.backend.query(app.embedder.embed_query(text), 1)[0]
    assert hit.node.metadata == expected
    assert hit.node.get_content() == text
    (fetched,) = app.backend.fetch_nodes([hit.node.node_id]).values()
    assert fetched.metadata == expected


def test_metadata_over_the_record_limit_is_refused_with_the_reason(app: RagApp) -> None:
    report = app.ingest(
        [
            Document(
                id_="big", text="A document with huge metadata.", metadata={"b": "x" * 50_000}
            ),
            Document(id_="ok", text="Small metadata.", metadata={"b": "x"}),
        ]
    )
    assert [(p.path, "40960-byte per-record limit" in p.reason) for p in report.skipped] == [
        ("big", True)
    ]
    assert report.added == ["ok"]
    assert [r.doc_id for r in app.documents()] == ["ok"]
    assert app.backend.count() == app.documents()[0].n_chunks


def test_another_embedding_dimension_is_refused_before_anything_is_written(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app(retriever="dense")
    app.ingest([Document(id_="first", text="Built with the 384-dimension model.")])
    count = app.backend.count()
    small = fast_embedder(64)
    with pytest.raises(EmbeddingMismatchError, match="dimension"):
        make_app(app_embedder=small, retriever="dense").ingest(
            [Document(id_="second", text="Written with a 64-dimension model.")]
        )
    assert small.texts_embedded == 0
    assert app.backend.count() == count
    assert [r.doc_id for r in app.documents()] == ["first"]


def test_collections_do_not_see_each_other(make_app: Callable[..., RagApp]) -> None:
    first = make_app()
    other = make_app(collection=f"{first.settings.collection}x")
    try:
        first.ingest(
            [
                Document(id_="shared", text="Paris is the capital of France."),
                Document(id_="only-first", text="Seoul is the capital of Korea."),
            ]
        )
        other.ingest([Document(id_="shared", text="Bananas are yellow fruit.")])
        assert [r.doc_id for r in other.documents()] == ["shared"]
        assert other.backend.count() == 1
        assert [s.text for s in other.retrieve("capital city Seoul Paris", top_k=5)] == [
            "Bananas are yellow fruit."
        ]
        other.delete(["shared"])
        assert [r.doc_id for r in first.documents()] == ["only-first", "shared"]
        assert {s.doc_id for s in first.retrieve("capital", top_k=5)} == {"shared", "only-first"}
        assert other.retrieve("capital", top_k=5) == []
    finally:
        first.backend.drop()  # make_app drops the last app's collection, `other`


class RecordingIndex:
    """A Pinecone index that records the namespace of every call before making it."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.namespaces: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.index, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if "namespace" in kwargs:
                self.namespaces.append((name, kwargs["namespace"]))
            return method(*args, **kwargs)

        return call


@pytest.mark.parametrize("backend_name", ["pinecone"])
def test_pinecone_default_namespace_is_sent_as_a_string(backend: Backend) -> None:
    index = RecordingIndex(backend.index)
    store = FixedPineconeVectorStore(pinecone_index=index, namespace=None)
    nodes = two_documents(np.random.default_rng(8))
    try:
        store.add(nodes)
        store.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=2))
        store.delete_nodes(node_ids=["a"])
        store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="x", value="y")]))
        store.delete("doc1")
    finally:
        store.clear()
    assert {name for name, _ in index.namespaces} >= {"upsert", "query", "delete"}
    assert [call for call in index.namespaces if call[1] != ""] == []


class FilterDeleteRejectingIndex:
    """A Pinecone index that refuses deletes by metadata, as serverless indexes long did."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    def delete(self, **kwargs: Any) -> Any:
        if "filter" in kwargs:
            raise RuntimeError("Serverless indexes do not support deleting with metadata filtering")
        return self.index.delete(**kwargs)


@pytest.mark.parametrize("backend_name", ["pinecone"])
def test_pinecone_document_delete_never_touches_a_prefix_sibling(backend: Backend) -> None:
    store = FixedPineconeVectorStore(
        pinecone_index=FilterDeleteRejectingIndex(backend.index), namespace=backend.namespace
    )
    nodes = two_documents(np.random.default_rng(9))
    store.add(nodes)
    refusal: RuntimeError | None = None
    try:
        store.delete("doc1")
    except RuntimeError as exc:
        refusal = exc
    assert sorted(query_ids(backend, nodes[0].embedding, 10)) == ["a", "b", "c", "d"]
    assert "metadata filtering" in str(refusal)


# --- LlamaIndex-native: the factory, the engines, LlamaIndex writes, MMR and filters -----------

LLAMA_DOCS = [
    Document(id_="hnsw", text="HNSW parameter ef_search sets the candidate list while searching."),
    Document(id_="paris", text="Paris is the capital of France and home of the Eiffel Tower."),
    Document(id_="seoul", text="서울은 대한민국의 수도이며 한강이 도시를 가로지른다."),
]


LONG_DOC = Document(
    id_="long",
    text=" ".join(f"Sentence {i} is about topic{i} of the vector chapter." for i in range(30)),
)


@pytest.fixture
def factory_overrides(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Settings for the module-level factory functions, the test's own collection."""
    overrides = {
        **backend_overrides(backend_name, request),
        "data_dir": tmp_path / "data",
        "collection": f"f{abs(hash(request.node.nodeid)) % 10**10}",
    }
    yield overrides
    rag_app.shared_app(**overrides).backend.drop()
    close_shared()


def test_factory_functions_give_one_catalogued_store_for_llamaindex_code(
    factory_overrides: dict[str, Any], backend_name: str
) -> None:
    store = rag_app.vector_store(**factory_overrides)
    model = rag_app.embed_model(**factory_overrides)
    context = rag_app.storage_context(**factory_overrides)
    app = rag_app.shared_app(**factory_overrides)
    assert isinstance(store, BasePydanticVectorStore) and isinstance(model, BaseEmbedding)
    assert context.vector_store is store is app.vector_store and model is app.embed_model
    fixed = {"memory": "MemoryVectorStore", "pinecone": "FixedPineconeVectorStore"}
    assert type(store.backend.vector_store).__name__ == fixed.get(
        backend_name, "FixedChromaVectorStore"
    )
    assert model.model_name == app.embedder.model_id
    VectorStoreIndex.from_documents(LLAMA_DOCS, storage_context=context, embed_model=model)
    assert isinstance(app.index, VectorStoreIndex)
    script = (
        "from rag_app.cli.entry import main; main(['docs', 'list', '--json']); "
        "main(['retrieve', 'Eiffel Tower capital', '--json'])"
    )
    env = {**cli_env(app.settings), "RAG_RETRIEVER": "keyword"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    listed, retrieved = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert [(d["doc_id"], d["complete"]) for d in listed] == [
        ("hnsw", True),
        ("paris", True),
        ("seoul", True),
    ]
    assert retrieved[0]["doc_id"] == "paris"


def doc_texts(app: RagApp) -> dict[str, list[str]]:
    """Each catalogued document's chunk texts, in order, as the store holds them."""
    ids = {r.doc_id: r.chunk_ids() for r in app.documents()}
    nodes = app.backend.fetch_nodes([i for chunk_ids in ids.values() for i in chunk_ids])
    return {d: [nodes[i].get_content() for i in chunk_ids] for d, chunk_ids in ids.items()}


def test_llamaindex_writes_keep_the_catalog_and_keyword_index(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app()
    index = VectorStoreIndex.from_documents(
        [LONG_DOC, LLAMA_DOCS[1]],
        storage_context=app.storage_context,
        embed_model=app.embed_model,
        transformations=[SentenceSplitter(chunk_size=60, chunk_overlap=0)],
        insert_batch_size=2,
    )
    before = doc_texts(app)
    assert len(before["long"]) > 2, "the document must straddle insert batches"
    assert " ".join(before["long"]).split() == LONG_DOC.text.split()
    index.insert(Document(id_="paris", text="Paris has the Louvre, a large art museum."))
    assert doc_texts(app)["paris"] == ["Paris has the Louvre, a large art museum."]
    node = TextNode(id_="note-1", text="A lone note about the Louvre pyramid entrance.")
    index.insert_nodes([node])
    index.delete_ref_doc("long")
    app.vector_store.add([TextNode(id_="raw", text="A raw node the store embeds itself.")])
    after = doc_texts(app)
    assert sorted(after) == ["note-1", "paris", "raw"]
    assert app.backend.count() == 3
    assert app.check().differences == []
    assert [s.doc_id for s in app.retrieve("Louvre pyramid", top_k=1)] == ["note-1"]
    other = make_app(retriever="keyword")
    assert "long" not in {s.doc_id for s in other.retrieve("topic7 vector chapter", top_k=5)}
    assert {s.doc_id for s in other.retrieve("Louvre museum", top_k=5)} == {"paris", "note-1"}


def test_catalog_breaking_llamaindex_calls_are_refused(app: RagApp) -> None:
    index = app.index
    index.insert(LLAMA_DOCS[0])
    (chunk_id,) = app.documents()[0].chunk_ids()
    with pytest.raises(CatalogWriteError, match="delete_ref_doc"):
        app.vector_store.delete_nodes(node_ids=[chunk_id])
    with pytest.raises(EmbeddingMismatchError, match="rag_app.embed_model"):
        app.vector_store.add([make_node("short", [1.0, 0.0])])
    assert [r.doc_id for r in app.documents()] == ["hnsw"] and app.backend.count() == 1


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    with running_openai_server(dim=32) as url:
        yield url


@pytest.mark.parametrize("llm", ["extractive", "openai"])
def test_query_engine_is_llamaindex_and_cites_what_retrieve_returns(
    make_app: Callable[..., RagApp], llm: str, request: pytest.FixtureRequest
) -> None:
    options: dict[str, Any] = {"llm": "extractive"}
    if llm == "openai":
        url = request.getfixturevalue("openai_url")
        options = {"llm": "openai:gpt-4o-mini", "openai_api_key": "sk-t", "openai_base_url": url}
    app = make_app(**options)
    app.ingest(LLAMA_DOCS)
    question = "What is the capital of France?"
    engine = app.as_query_engine()
    assert isinstance(engine, RetrieverQueryEngine)
    response = engine.query(question)
    expected = [s.doc_id for s in app.retrieve(question)]
    assert [n.node.metadata["doc_id"] for n in response.source_nodes] == expected
    answer = app.query(question)
    assert [s.doc_id for s in answer.sources] == expected
    if llm == "openai":
        assert answer.mode == "openai:gpt-4o-mini"
        assert str(response).startswith("ECHO: Sources:\n[1] Paris is the capital")
    else:
        assert answer.mode == "extractive"
        assert (
            str(response)
            == answer.text
            == ("Paris is the capital of France and home of the Eiffel Tower. [1]")
        )
    streamed = app.as_query_engine(streaming=True).query(question)
    pieces = list(streamed.response_gen)
    assert "".join(pieces) == str(response)
    assert [n.node.node_id for n in streamed.source_nodes] == [
        n.node.node_id for n in response.source_nodes
    ]
    if llm == "openai":
        assert len(pieces) > 1
        simple = app.as_query_engine(
            response_mode="simple_summarize", text_qa_template=PromptTemplate("Q: {query_str}")
        )
        assert isinstance(simple._response_synthesizer.inner, SimpleSummarize)
        assert str(simple.query(question)) == f"ECHO: Q: {question}"
    chat = app.as_chat_engine()
    assert isinstance(chat, CondensePlusContextChatEngine)
    first = chat.chat(question)
    assert first.source_nodes[0].node.metadata["doc_id"] == "paris"
    second = chat.stream_chat("And where is the Eiffel Tower?")
    assert "".join(second.response_gen) and second.source_nodes


def stored_text_ids(app: RagApp, nodes: list[TextNode]) -> dict[str, str]:
    """The catalog's chunk id of each corpus node (found by its text)."""
    texts = {n.get_content(): n.node_id for n in nodes}
    ids = [i for r in app.documents() for i in r.chunk_ids()]
    return {i: texts[n.get_content()] for i, n in app.backend.fetch_nodes(ids).items()}


def catalogued_corpus(app: RagApp) -> tuple[list[TextNode], np.ndarray, np.ndarray, dict]:
    nodes, vectors, query = corpus()
    app.vector_store.add([n.model_copy(deep=True) for n in nodes])
    return nodes, vectors, query, stored_text_ids(app, nodes)


def vector_query(app: RagApp, query: np.ndarray, top_k: int, **options: Any) -> list[str]:
    kwargs = options.pop("kwargs", {})
    result = app.vector_store.query(
        VectorStoreQuery(query_embedding=query.tolist(), similarity_top_k=top_k, **options),
        **kwargs,
    )
    return [n.node_id for n in result.nodes]


EXTRA_FILTER_CASES: dict[str, tuple[MetadataFilters, Callable[[dict[str, Any]], bool]]] = {
    "text_match": (
        _filters(_f("label", FilterOperator.TEXT_MATCH, "engl")),
        lambda m: "engl" in m["label"],
    ),
    "contains": (
        _filters(_f("tags", FilterOperator.CONTAINS, "t1")),
        lambda m: "t1" in m["tags"],
    ),
}


def test_filters_through_the_factory_store_agree_or_are_refused(
    app: RagApp, backend_name: str
) -> None:
    nodes, vectors, query = corpus()
    for i, node in enumerate(nodes):
        node.metadata["tags"] = [f"t{i % 3}", "all"]
    app.vector_store.add([n.model_copy(deep=True) for n in nodes])
    names = stored_text_ids(app, nodes)
    ranked = [nodes[i] for i in np.argsort(-(vectors @ query))]
    for name, (filters, keep) in {**FILTER_CASES, **EXTRA_FILTER_CASES}.items():
        expected = [n.node_id for n in ranked if keep(n.metadata)]
        if name in EXTRA_FILTER_CASES and backend_name != "memory":
            with pytest.raises(
                QueryOptionError, match=f"The {app.backend.name} store .* filter op"
            ):
                vector_query(app, query, 30, filters=filters)
            continue
        got = [names[i] for i in vector_query(app, query, 30, filters=filters)]
        assert got == expected, name
    on_numbers = _filters(_f("year", FilterOperator.TEXT_MATCH, "20"))
    with pytest.raises(TypeError if backend_name == "memory" else QueryOptionError):
        vector_query(app, query, 30, filters=on_numbers)  # as LlamaIndex's own filters do
    by_doc = [names[i] for i in vector_query(app, query, 30, doc_ids=["doc1"])]
    assert by_doc == [n.node_id for n in ranked if n.ref_doc_id == "doc1"]
    some = list(names)[:3]
    if backend_name == "memory":
        assert sorted(vector_query(app, query, 30, node_ids=some)) == sorted(some)
    else:
        with pytest.raises(QueryOptionError, match=f"The {app.backend.name} store .* node_ids"):
            vector_query(app, query, 30, node_ids=some)
    with pytest.raises(QueryOptionError, match="GT on 'year' with '2020'"):
        vector_query(app, query, 5, filters=_filters(_f("year", FilterOperator.GT, "2020")))
    engine = app.as_query_engine(
        similarity_top_k=30, filters=_filters(_f("category", FilterOperator.EQ, "b"))
    )
    found = [names[n.node.node_id] for n in engine.query("text").source_nodes]
    assert sorted(found) == sorted(n.node_id for n in nodes if n.metadata["category"] == "b")


def greedy_mmr(query: np.ndarray, vectors: np.ndarray, k: int, threshold: float) -> list[int]:
    """Maximal marginal relevance, written out (LlamaIndex's formula)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    relevance = unit @ (query / np.linalg.norm(query))
    picked = [int(np.argmax(relevance))]
    while len(picked) < min(k, len(vectors)):
        redundancy = unit @ unit[picked[-1]]
        scores = threshold * relevance - (1 - threshold) * redundancy
        scores[picked] = -np.inf
        picked.append(int(np.argmax(scores)))
    return picked


def test_mmr_gives_the_same_diverse_ids_on_every_store(app: RagApp) -> None:
    nodes, vectors, query = corpus()
    app.vector_store.add([n.model_copy(deep=True) for n in nodes])
    names = stored_text_ids(app, nodes)
    candidates = [nodes[i] for i in np.argsort(-(vectors @ query))[:20]]
    embedded = app.embedder.embed_texts([searched_text(n) for n in candidates])
    expected = [candidates[i].node_id for i in greedy_mmr(query, embedded, 5, 0.3)]
    options = {"mode": VectorStoreQueryMode.MMR}
    got = vector_query(app, query, 5, **options, kwargs={"mmr_threshold": 0.3})
    assert [names[i] for i in got] == expected
    with pytest.raises(QueryOptionError, match="vector_store_query_mode='hybrid'"):
        vector_query(app, query, 5, mode=VectorStoreQueryMode.HYBRID)
