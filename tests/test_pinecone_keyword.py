"""BM25 run by a Pinecone sparse index (PINECONE_SPARSE_INDEX), through pinecone-local."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core import Document
from pinecone import Pinecone, ServerlessSpec

from rag_app.app import RagApp
from rag_app.errors import ConfigError
from rag_app.evaluation.retrieval import first_hit_rank
from rag_app.ingestion.loaders import read_squad
from rag_app.retrieval.keyword_index import KeywordIndex
from rag_app.retrieval.pinecone_sparse import STATS_SUFFIX, PineconeKeyword
from tests.conftest import require_shared
from tests.support.pinecone_server import index_client
from tests.test_retrieval import GIRAFFE, OTHER, ZEBRA, keyword_ids

ON_PINECONE = pytest.mark.parametrize("backend_name", ["pinecone"], indirect=True)

CORPUS = {
    "c1": "The zebra grazes on the savanna near the river with other zebra herds.",
    "c2": "A giraffe eats acacia leaves; the giraffe is the tallest animal of the savanna.",
    "c3": "Rivers carry water to the sea, and many animals drink from a river at dawn.",
    "c4": "Hammers drive nails into wooden boards in the workshop.",
    "c5": "The savanna is a grassland with scattered trees, home to zebra, giraffe and lion.",
    "c6": "벡터 데이터베이스는 임베딩을 저장하고 근사 최근접 이웃 검색을 제공한다.",
    "c7": "파인콘은 관리형 벡터 데이터베이스 서비스이다.",
}
QUALITY_ARTICLES = 8
QUALITY_QUESTIONS = 100
QUERIES = ["zebra river", "giraffe savanna", "tallest animal", "벡터 데이터베이스", "nails"]


@pytest.fixture
def sparse_app(make_app: Callable[..., RagApp]) -> Callable[..., RagApp]:
    index = f"kw-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> RagApp:
        return make_app(pinecone_sparse_index=index, **overrides)

    return make


@ON_PINECONE
def test_keyword_search_runs_in_pinecone_and_follows_changes(
    sparse_app: Callable[..., RagApp],
) -> None:
    app = sparse_app(retriever="keyword")
    app.ingest([ZEBRA, OTHER])
    assert keyword_ids(app, "zebra") == ["animals"]
    app.ingest([GIRAFFE])
    assert keyword_ids(app, "zebra") == []
    assert keyword_ids(app, "giraffe") == ["animals"]
    reopened = sparse_app(retriever="keyword")  # another process: nothing local to rebuild
    assert keyword_ids(reopened, "giraffe") == ["animals"]
    app.delete(["animals"])
    assert keyword_ids(app, "giraffe") == []
    assert keyword_ids(app, "hammer") == ["tools"]
    assert not (app.settings.data_dir / "keyword").exists()


@ON_PINECONE
def test_hybrid_with_pinecone_bm25_keeps_korean(sparse_app: Callable[..., RagApp]) -> None:
    docs = [
        Document(id_="hnsw", text="HNSW는 그래프 기반의 근사 최근접 이웃 검색 알고리즘이다."),
        Document(id_="pinecone", text="파인콘은 관리형 벡터 데이터베이스 서비스이다."),
        Document(id_="chroma", text="크로마는 파이썬 프로세스 안에서 실행되는 벡터 저장소이다."),
        Document(id_="bm25", text="BM25는 단어 빈도에 기반한 키워드 검색 점수이다."),
    ]
    app = sparse_app()
    app.ingest(docs)
    for doc in docs:
        assert keyword_ids(app, doc.text.split("는")[0] + "는 무엇인가?")[0] == doc.doc_id
    # No local index to measure coverage: relevance is the cosine (rag_app/retrieval/relevance.py).
    sources = app.retrieve("HNSW는 무엇인가?")
    assert app.retriever.signal == "dense" and sources[0].doc_id == "hnsw"
    assert all(s.relevance is not None and 0 < s.relevance <= 1 for s in sources)


@pytest.fixture
def sparse_index(pinecone_local: str) -> Iterator[Any]:
    pc = Pinecone(api_key="test", host=pinecone_local)
    name = f"bm25-{uuid.uuid4().hex[:8]}"
    pc.create_index(
        name=name,
        metric="dotproduct",
        vector_type="sparse",
        spec=ServerlessSpec(cloud="aws", region="us-east-1"),
    )
    index = index_client(pc, name, "rest")
    yield index
    index.close()
    pc.delete_index(name)
    pc.close()


def test_pinecone_scores_are_the_local_bm25_scores(sparse_index: Any) -> None:
    local = KeywordIndex()
    local.add(list(CORPUS), list(CORPUS.values()))
    remote = PineconeKeyword(sparse_index, "ns")
    remote.chunks_written(list(CORPUS), list(CORPUS.values()))
    for query in QUERIES:
        expected = local.search(query, 5)
        found = remote.search(query, 5)
        assert [i for i, _ in found] == [i for i, _ in expected], query
        assert [s for _, s in found] == pytest.approx([s for _, s in expected], rel=1e-4)


def test_replacing_and_deleting_chunks_gives_their_statistics_back(sparse_index: Any) -> None:
    remote = PineconeKeyword(sparse_index, "ns")
    remote.chunks_written(["a", "b"], [CORPUS["c1"], CORPUS["c2"]])
    remote.chunks_written(["a"], [CORPUS["c4"]])  # replaced: zebra's counts go back
    assert [i for i, _ in remote.search("zebra", 5)] == []
    assert [i for i, _ in remote.search("nails", 5)] == ["a"]
    remote.chunks_deleted(["a", "b", "never-written"])
    stats = sparse_index.describe_index_stats().namespaces
    assert "ns" not in stats
    assert stats["ns" + STATS_SUFFIX].vector_count == 1  # only the corpus record is left
    assert remote.search("giraffe", 5) == []


@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_sparse_index_needs_the_pinecone_store(make_app: Callable[..., RagApp]) -> None:
    with pytest.raises(ConfigError, match="RAG_VECTOR_STORE=pinecone"):
        make_app(pinecone_sparse_index="kw")


@ON_PINECONE
def test_hybrid_quality_with_the_sparse_index_matches_client_bm25(
    sparse_app: Callable[..., RagApp], make_app: Callable[..., RagApp]
) -> None:
    """XQuAD en, 100 questions over 8 articles: both hybrids share one dense index, and BM25
    scored by Pinecone must rank like the local index (issue 14: within 0.01 hit@1)."""
    documents, questions = read_squad(require_shared("data/xquad/xquad.en.json"))
    documents = documents[:QUALITY_ARTICLES]
    kept = {d.doc_id for d in documents}
    asked = random.Random(0).sample([q for q in questions if q.doc_id in kept], QUALITY_QUESTIONS)
    in_pinecone = sparse_app()
    in_pinecone.ingest_documents(documents)
    on_client = make_app()  # same collection, same dense index; BM25 synced to RAG_DATA_DIR
    hits = {
        name: [first_hit_rank(app.retrieve(q.question, 5), q) == 1 for q in asked]
        for name, app in (("pinecone", in_pinecone), ("client", on_client))
    }
    client_rate = sum(hits["client"]) / len(asked)
    assert client_rate > 0.6  # the comparison means something: hybrid finds most answers
    assert abs(sum(hits["pinecone"]) / len(asked) - client_rate) <= 0.01, hits
