"""Retrieval modes, the keyword index kept in sync on every backend, and reranking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import Document

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder

ZEBRA = Document(id_="animals", text="The zebra grazes on the savanna near the river.")
GIRAFFE = Document(id_="animals", text="The giraffe eats acacia leaves in the savanna.")
OTHER = Document(id_="tools", text="A hammer drives nails into wooden boards.")


def keyword_ids(app: RagApp, query: str) -> list[str]:
    return [s.doc_id for s in app.retrieve(query, top_k=5)]


def test_keyword_index_follows_add_replace_and_delete(make_app: Callable[..., RagApp]) -> None:
    app = make_app(retriever="keyword")
    app.ingest([ZEBRA, OTHER])
    assert keyword_ids(app, "zebra") == ["animals"]
    app.ingest([GIRAFFE])
    assert keyword_ids(app, "zebra") == []
    assert keyword_ids(app, "giraffe") == ["animals"]
    app.delete(["animals"])
    assert keyword_ids(app, "giraffe") == []
    assert keyword_ids(app, "hammer") == ["tools"]


def test_keyword_index_persists_for_the_next_process(make_app: Callable[..., RagApp]) -> None:
    make_app(retriever="keyword").ingest([ZEBRA, OTHER])
    reopened = make_app(retriever="keyword")
    assert keyword_ids(reopened, "zebra") == ["animals"]


def test_keyword_index_rebuilds_when_the_store_changed_behind_it(
    make_app: Callable[..., RagApp],
) -> None:
    make_app(retriever="keyword").ingest([ZEBRA])
    make_app(retriever="dense").ingest([OTHER, GIRAFFE])
    reopened = make_app(retriever="keyword")
    assert keyword_ids(reopened, "hammer") == ["tools"]
    assert keyword_ids(reopened, "zebra") == []


@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_hybrid_keeps_korean_when_dense_is_noise(make_app: Callable[..., RagApp]) -> None:
    docs = [
        Document(id_="hnsw", text="HNSW는 그래프 기반의 근사 최근접 이웃 검색 알고리즘이다."),
        Document(id_="pinecone", text="파인콘은 관리형 벡터 데이터베이스 서비스이다."),
        Document(id_="chroma", text="크로마는 파이썬 프로세스 안에서 실행되는 벡터 저장소이다."),
        Document(id_="bm25", text="BM25는 단어 빈도에 기반한 키워드 검색 점수이다."),
    ]
    app = make_app()
    app.ingest(docs)
    for doc in docs:
        assert keyword_ids(app, doc.text.split("는")[0] + "는 무엇인가?")[0] == doc.doc_id


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A small cross-encoder built from the bundled MiniLM weights (its head is untrained)."""
    from sentence_transformers import CrossEncoder

    from rag_app.embeddings.models import _local_model_path

    path = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(_local_model_path(), num_labels=1).save(str(path))
    return path


@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_reranker_orders_candidates_by_the_cross_encoder(
    make_app: Callable[..., RagApp], cross_encoder_dir: Path
) -> None:
    from sentence_transformers import CrossEncoder

    docs = [
        Document(id_=f"d{i}", text=f"Note {i}: savanna animals number {i * 7}.") for i in range(8)
    ]
    plain = make_app()
    plain.ingest(docs)
    candidates = plain.retrieve("savanna animals", top_k=8)
    reranked = make_app(reranker=f"hf:{cross_encoder_dir}").retrieve("savanna animals", top_k=3)
    scores = CrossEncoder(str(cross_encoder_dir)).predict(
        [("savanna animals", c.text) for c in candidates]
    )
    expected = [
        c.doc_id for _, c in sorted(zip(scores, candidates, strict=True), key=lambda p: -p[0])
    ][:3]
    assert [s.doc_id for s in reranked] == expected
