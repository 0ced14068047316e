"""Tokenization per language and the BM25 KeywordIndex: replace, delete, filters, persistence."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import bm25s
import pytest
from llama_index.core import Document

from rag_app.app import RagApp
from rag_app.retrieval.keyword_index import (
    BM25_B,
    BM25_K1,
    KOREAN_MODES,
    KeywordIndex,
    tokenize,
    tokenize_many,
)


@pytest.mark.parametrize("mode", ["kiwi", "kiwi+bigram"])
def test_korean_particles_are_stripped(mode: str) -> None:
    base = set(tokenize("벡터", korean=mode))
    assert base <= set(tokenize("벡터를", korean=mode))
    assert base <= set(tokenize("벡터는", korean=mode))
    assert not {"를", "는"} & set(tokenize("벡터를 벡터는", korean=mode))


def test_korean_verb_endings_share_the_stem() -> None:
    assert set(tokenize("저장", korean="kiwi")) <= set(tokenize("저장했습니다", korean="kiwi"))
    assert set(tokenize("저장", korean="kiwi")) <= set(tokenize("저장하는", korean="kiwi"))


def test_korean_bigrams_cover_hangul_runs() -> None:
    bigrams = {"데이", "이터", "터베", "베이", "이스"}
    assert set(tokenize("데이터베이스", korean="bigram")) == bigrams
    assert tokenize("책", korean="bigram") == ["책"]
    assert set(tokenize("데이터베이스", korean="kiwi")) <= set(tokenize("데이터베이스"))


def test_english_is_stemmed_lowercased_and_stopwords_go() -> None:
    assert tokenize("databases") == tokenize("database")
    assert tokenize("Vectors") == tokenize("vector")
    assert tokenize("the of and") == []


def test_chinese_gets_unigrams_and_bigrams() -> None:
    tokens = tokenize("数据库")
    assert {"数", "据", "库", "数据", "据库"} == set(tokens)


def test_japanese_kana_and_kanji_are_one_run() -> None:
    assert {"ベ", "ベク", "東京"} <= set(tokenize("東京のベクトル"))


def test_mixed_language_text_keeps_every_part() -> None:
    tokens = set(tokenize("GPT-4 모델은 向量 databases를 2024년에 씁니다"))
    assert set(tokenize("gpt")) <= tokens
    assert {"4", "2024", "向量"} <= tokens
    assert set(tokenize("database")) <= tokens
    assert set(tokenize("모델", korean="kiwi")) <= tokens


def test_batch_tokenization_matches_single() -> None:
    texts = ["벡터를 저장한다", "Databases store vectors", "向量数据库", "", "혼합 mixed 文本"]
    for mode in KOREAN_MODES:
        for query in (False, True):
            expected = [tokenize(t, korean=mode, query=query) for t in texts]
            assert tokenize_many(texts, korean=mode, query=query) == expected


def test_english_question_words_are_stopwords() -> None:
    assert tokenize("What, which, who, when, where, why and how did it?") == []


def test_adjacent_english_words_form_a_phrase_term() -> None:
    phrase = set(tokenize("Josh Norman")) - set(tokenize("Josh")) - set(tokenize("Norman"))
    assert len(phrase) == 1
    assert phrase <= set(tokenize("the interception by Josh Norman"))
    assert not phrase & set(tokenize("Norman said Josh"))


def test_a_chunk_with_the_query_phrase_ranks_first() -> None:
    index = KeywordIndex()
    index.add(
        ["scattered", "phrase"],
        ["Norman Rockwell painted it; Josh Groban sang.", "Josh Norman intercepted a pass."],
    )
    assert index.search("Who is Josh Norman?", 2)[0][0] == "phrase"


def test_chinese_query_question_words_are_dropped() -> None:
    question = set(tokenize("哪个城市是首都？", query=True))
    assert {"城", "市", "城市", "首都"} <= question
    assert not {"哪", "个", "哪个", "个城"} & question
    assert {"哪", "哪个"} <= set(tokenize("哪个城市是首都？"))


@pytest.mark.parametrize("mode", ["kiwi", "kiwi+bigram"])
def test_korean_query_question_words_are_dropped(mode: str) -> None:
    question = set(tokenize("세종대왕은 언제 어떻게 태어났나요?", korean=mode, query=True))
    assert set(tokenize("세종대왕", korean=mode)) <= question
    assert not {"언제", "어떻"} & question
    assert "언제" in set(tokenize("세종대왕은 언제 태어났나요?"))


def test_korean_question_word_inside_another_word_stays() -> None:
    """Kiwi decides what is a question word: 어느덧 ("before one knows") keeps its 어느 bigram."""
    assert "어느" in tokenize("어느덧 봄이다", query=True)
    assert "어느" not in tokenize("어느 봄이다", query=True)


@pytest.fixture
def index() -> KeywordIndex:
    idx = KeywordIndex()
    idx.add(
        ["ko", "en", "zh", "other"],
        [
            "벡터를 저장하는 데이터베이스는 검색을 빠르게 합니다.",
            "Vector databases store embeddings for similarity search.",
            "向量数据库存储嵌入。",
            "고양이는 창가에서 낮잠을 잔다.",
        ],
    )
    return idx


def test_search_finds_the_matching_chunk_first(index: KeywordIndex) -> None:
    assert index.search("벡터는", 3)[0][0] == "ko"
    assert index.search("database", 3)[0][0] == "en"
    assert index.search("数据库", 3)[0][0] == "zh"
    assert index.search("고양이가", 3)[0][0] == "other"


def test_search_returns_best_first_and_no_zero_scores(index: KeywordIndex) -> None:
    results = index.search("벡터 데이터베이스 database", 10)
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    assert "other" not in {chunk_id for chunk_id, _ in results}
    assert index.search("완전히 무관한 단어 zebra", 10) == []
    assert len(index.search("벡터 database 数据库 고양이", 2)) == 2


def test_add_replaces_an_existing_id(index: KeywordIndex) -> None:
    index.search("고양이", 1)
    index.add(["other"], ["강아지가 공원에서 뛰어논다."])
    assert len(index) == 4
    assert index.search("고양이", 5) == []
    assert index.search("강아지", 5)[0][0] == "other"


def test_delete_removes_ids_and_ignores_unknown(index: KeywordIndex) -> None:
    index.delete(["en", "missing"])
    assert len(index) == 3
    assert "en" not in index.ids()
    assert "en" not in {chunk_id for chunk_id, _ in index.search("vector database", 5)}


def test_filtered_search_by_ids_and_predicate(index: KeywordIndex) -> None:
    query = "벡터 vector 向量"
    assert {c for c, _ in index.search(query, 5, allowed_ids={"en", "zh"})} == {"en", "zh"}
    assert [c for c, _ in index.search(query, 5, allowed_ids=lambda c: c == "zh")] == ["zh"]
    assert index.search(query, 5, allowed_ids=set()) == []


def test_empty_index_and_length_mismatch() -> None:
    empty = KeywordIndex()
    assert empty.search("anything", 5) == []
    assert len(empty) == 0
    with pytest.raises(ValueError):
        empty.add(["a", "b"], ["only one text"])


def test_save_and_load_round_trip(index: KeywordIndex, tmp_path: Path) -> None:
    queries = ["벡터는", "database", "数据库", "고양이"]
    index.save(tmp_path)
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    assert loaded.ids() == index.ids()
    for query in queries:
        assert loaded.search(query, 4) == index.search(query, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["keyword_index.npz"]
    loaded.add(["new"], ["새 문서는 벡터를 설명한다"])
    assert "new" in {c for c, _ in loaded.search("벡터", 5)}


def test_load_without_an_index_raises(tmp_path: Path) -> None:
    assert not KeywordIndex.exists(tmp_path)
    with pytest.raises(FileNotFoundError):
        KeywordIndex.load(tmp_path)


def test_add_tokenized_matches_add() -> None:
    texts = ["벡터를 저장한다", "Databases store vectors"]
    by_text, by_tokens = KeywordIndex(), KeywordIndex()
    by_text.add(["a", "b"], texts)
    by_tokens.add_tokenized(["a", "b"], tokenize_many(texts))
    assert by_text.search("벡터 database", 2) == by_tokens.search("벡터 database", 2)


def test_a_missing_two_syllable_korean_word_lowers_coverage(index: KeywordIndex) -> None:
    """태조 (in no chunk) weighs as a missing word, as a missing three-syllable one does."""
    assert index.coverage("벡터", ["ko"])["ko"] == 1.0
    two, three = (index.coverage(q, ["ko"])["ko"] for q in ("태조의 벡터", "한니발의 벡터"))
    assert 0 < two < 0.5
    assert two == pytest.approx(three, abs=0.1)


def test_missing_chinese_bigrams_and_bigram_mode_hangul_bigrams_are_no_words() -> None:
    kiwi, bigram = KeywordIndex(), KeywordIndex(korean="bigram")
    assert kiwi._words("태조 数据库") == {"태조", "数", "据", "库"}
    assert bigram._words("태조는 왕") == {"왕"}


def test_scores_equal_the_bm25s_reference() -> None:
    rng = random.Random(0)
    words = [f"term{i}" for i in range(50)]
    docs = [
        [rng.choice(words[: rng.randint(3, 50)]) for _ in range(rng.randint(0, 30))]
        for _ in range(40)
    ]
    index = KeywordIndex()
    index.add_tokenized([str(i) for i in range(len(docs))], docs)
    reference = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    reference.index(docs, show_progress=False)
    for query in (["term1"], ["term2", "term30", "term2"], ["term49"]):
        expected = reference.get_scores(query)
        got = dict(index.search(" ".join(query), len(docs)))
        for i, score in enumerate(expected):
            assert got.get(str(i), 0.0) == pytest.approx(float(score), abs=1e-5)


@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_index_from_another_tokenizer_version_is_rebuilt(
    make_app: Callable[..., RagApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_app(retriever="keyword").ingest([Document(id_="zebra", text="The zebra grazes.")])
    monkeypatch.setattr("rag_app.retrieval.keyword_index.TOKENIZER_VERSION", 99)
    reopened = make_app(retriever="keyword")
    assert [s.doc_id for s in reopened.retrieve("zebra", top_k=1)] == ["zebra"]
