"""Absolute relevance: an irrelevant question gets "nothing relevant", never a padded answer.

Over the bundled samples (English and Korean), then a floor on the shared data: questions
whose article was removed from the corpus must mostly be refused, answerable ones almost never.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.schema import NodeWithScore, TextNode

from rag_app.answers.answerers import NOTHING_RELEVANT_PROMPT, numbered, prompt
from rag_app.answers.extractive import extract_answer
from rag_app.answers.types import Source
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder
from rag_app.retrieval.relevance import (
    NOTHING_RELEVANT,
    Relevance,
    dense_weight,
    min_relevance,
)
from rag_app.retrieval.retriever import RelevantNode
from rag_app.settings import load_settings
from tests.conftest import require_shared

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"


@pytest.fixture(scope="module")
def samples_app(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RagApp]:
    data_dir = tmp_path_factory.mktemp("relevance")
    settings = load_settings(data_dir=data_dir, vector_store="memory", llm="extractive")
    with RagApp(settings, embedder=embedder) as app:
        app.ingest([SAMPLES])
        yield app


@pytest.mark.parametrize(
    ("question", "language"),
    [("xyzzy plugh frobnicate", "en"), ("김치찌개는 어떻게 끓이나요?", "ko")],
)
def test_an_irrelevant_question_gets_nothing_relevant_in_its_language(
    samples_app: RagApp, question: str, language: str
) -> None:
    answer = samples_app.query(question)
    assert answer.text == NOTHING_RELEVANT[language]
    assert answer.sources and not any(s.relevant for s in answer.sources)
    threshold = min_relevance(samples_app.embedder.model_id, "hybrid", None, question)
    assert all(s.relevance is not None and s.relevance < threshold for s in answer.sources)


#: Korean questions on subjects the samples never mention, and one per Korean sample document.
KOREAN_OFF_TOPIC = [
    "김치찌개는 어떻게 끓이나요?",
    "조선의 첫 번째 왕은 누구인가?",
    "제주도에서 가장 높은 산은 무엇인가요?",
    "2002년 월드컵은 어느 나라에서 열렸나요?",
]
KOREAN_ON_TOPIC = [
    ("HNSW 그래프에서 ef_search 값은 무엇을 조절하나요?", "HNSW_알고리즘.md"),
    ("검색 증강 생성은 어떤 두 단계로 질문에 답하나요?", "검색_증강_생성.md"),
    ("KNN 검색과 ANN 검색은 어떻게 다른가요?", "벡터_데이터베이스.md"),
]


def test_korean_questions_off_the_samples_are_refused_in_korean_on_topic_ones_answered(
    samples_app: RagApp,
) -> None:
    for question in KOREAN_OFF_TOPIC:
        assert samples_app.query(question).text == NOTHING_RELEVANT["ko"], question
    for question, expected in KOREAN_ON_TOPIC:
        answer = samples_app.query(question)
        assert answer.text not in NOTHING_RELEVANT.values(), question
        assert answer.sources[0].relevant and answer.sources[0].doc_id.endswith(expected)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What does ef_search control in HNSW?", "hnsw.md"),
        ("HNSW 알고리즘의 계층 구조는 어떻게 동작하나요?", "HNSW_알고리즘.md"),
    ],
)
def test_a_relevant_question_still_gets_an_answer(
    samples_app: RagApp, question: str, expected: str
) -> None:
    answer = samples_app.query(question)
    assert answer.text not in NOTHING_RELEVANT.values()
    assert answer.sources[0].relevant and answer.sources[0].doc_id.endswith(expected)


def test_relevance_flows_through_the_llamaindex_query_and_chat_engines(samples_app: RagApp) -> None:
    question = "xyzzy plugh frobnicate"
    response = samples_app.as_query_engine().query(question)
    assert str(response) == NOTHING_RELEVANT["en"]
    assert all(isinstance(n, RelevantNode) and not n.relevant for n in response.source_nodes)
    answer, pieces = samples_app.chat().ask("김치찌개는 어떻게 끓이나요?")
    assert "".join(pieces) == NOTHING_RELEVANT["ko"] == answer.text
    assert answer.sources and not any(s.relevant for s in answer.sources)


def test_retrieve_gives_each_source_its_relevance(samples_app: RagApp) -> None:
    sources = samples_app.retrieve("What does ef_search control in HNSW?")
    assert sources[0].relevant and sources[0].relevance is not None
    assert sources[0].relevance >= 0.3


def node(text: str, relevant: bool) -> RelevantNode:
    return RelevantNode(
        node=TextNode(text=text), score=1.0, relevance=0.9 if relevant else 0.1, relevant=relevant
    )


def test_the_llm_synthesizer_sees_only_relevant_sources_under_their_numbers() -> None:
    shown = numbered([node("Bananas are yellow.", False), node("Apples are red.", True)])
    assert [n.node.get_content() for n in shown] == ["[2] Apples are red."]
    told = numbered([node("Bananas are yellow.", False)])
    assert [n.node.get_content() for n in told] == [NOTHING_RELEVANT_PROMPT]
    plain = NodeWithScore(node=TextNode(text="Pears."), score=0.5)  # no relevance: shown
    assert [n.node.get_content() for n in numbered([plain])] == ["[1] Pears."]


def source(number: int, text: str, relevant: bool) -> Source:
    return Source(
        number, f"d{number}", 1.0, text, 0, len(text), "", 0.9 if relevant else 0.1, relevant
    )


def test_extractive_answers_quote_no_source_below_the_threshold() -> None:
    sources = [
        source(1, "HNSW builds a layered graph of vectors.", relevant=True),
        source(2, "The HNSW graph has layers. Layers speed up search.", relevant=False),
    ]
    answer = extract_answer("How are HNSW layers built?", sources)
    assert "[1]" in answer and "[2]" not in answer


def test_the_llm_is_told_when_nothing_is_relevant() -> None:
    irrelevant = source(1, "Bananas are yellow.", relevant=False)
    told = prompt("xyzzy?", [irrelevant])
    assert NOTHING_RELEVANT_PROMPT in told and "Bananas" not in told
    assert "[1] Bananas are yellow." in prompt("bananas?", [source(1, "Bananas are yellow.", True)])


def test_rag_min_relevance_overrides_the_model_table() -> None:
    assert min_relevance("local:all-MiniLM-L6-v2", "hybrid", 0.05) == 0.05
    assert min_relevance("never-calibrated", "hybrid", None) == min_relevance(
        "never-seen", "keyword", None
    )
    assert dense_weight("never-calibrated", "ko") == 0.0


def test_hybrid_relevance_weighs_coverage_and_cosine() -> None:
    assert Relevance(0.8, 0.3).score("hybrid", 4.0) == pytest.approx((0.3 + 4 * 0.8) / 5)
    assert Relevance(0.8, 0.3).score("hybrid", 0.0) == 0.3
    assert Relevance(None, 0.3).score("hybrid", 4.0) == 0.3
    assert Relevance(0.8, 0.3).score("dense", 4.0) == 0.8
    assert Relevance(0.8, 0.3).score("keyword", 4.0) == 0.3


def test_a_keyword_only_hit_gets_the_lowest_cosine_of_the_dense_list(samples_app: RagApp) -> None:
    found = samples_app.retriever.search_with_relevance("HNSW ef_search", 5)
    assert all(r.dense is not None and r.keyword is not None for _, r in found)


#: Measured floors (docs/benchmarks.md) on a split no threshold was fitted on: with e5 the
#: issue's 0.9 is reached for English only.
UNANSWERABLE_REFUSED = {"en": 0.85, "ko-tydi-dev": 0.5}
MAX_ANSWERABLE_REFUSED = 0.05
#: Questions per kind: all of TyDi dev's split (about 140 each), since 5% of 50 is 2 questions.
QUESTIONS = {"en": 50, "ko-tydi-dev": 1000}
QUESTION = {"en": "What?", "zh": "什么?", "ko": "무엇?"}


@pytest.mark.parametrize("corpus", sorted(UNANSWERABLE_REFUSED))
def test_unanswerable_questions_are_refused_and_answerable_ones_are_not(
    tmp_path: Path, embedder: Embedder, corpus: str
) -> None:
    from benchmarks.relevance_calibration import DATASETS, refusal_rates, signals

    path, language = DATASETS[corpus]
    require_shared(str(path.relative_to(path.parents[2])))
    found = signals(
        corpus, QUESTIONS[corpus], 3, tmp_path, embedder
    )  # seed 3: not a calibration split
    model = embedder.model_id
    threshold = min_relevance(model, "hybrid", None, QUESTION[language])
    rates = refusal_rates(found, threshold, "hybrid", dense_weight(model, language))
    assert rates["unanswerable"] >= UNANSWERABLE_REFUSED[corpus], rates
    assert rates["answerable"] <= MAX_ANSWERABLE_REFUSED, rates
