"""Reference metrics equal the official rules and libraries on crafted and documented cases."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from rag_app.evaluation import metrics as am
from rag_app.evaluation.answers import aggregate, score_references

# sacrebleu's README example: three system sentences, two reference streams.
SYSTEM = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
STREAMS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
PER_SENTENCE = [list(refs) for refs in zip(*STREAMS, strict=True)]


def test_corpus_bleu_and_chrf_equal_sacrebleus_documented_scores() -> None:
    assert am.corpus_bleu(SYSTEM, PER_SENTENCE) == pytest.approx(48.53, abs=0.005)
    assert am.corpus_chrf(SYSTEM, PER_SENTENCE) == pytest.approx(59.73, abs=0.005)
    assert am.corpus_bleu(SYSTEM, PER_SENTENCE) == sacrebleu.corpus_bleu(SYSTEM, STREAMS).score


def test_sentence_scores_equal_sacrebleu_and_tolerate_uneven_reference_counts() -> None:
    refs = PER_SENTENCE[2]
    assert am.sentence_bleu(SYSTEM[2], refs) == sacrebleu.sentence_bleu(SYSTEM[2], refs).score
    assert am.sentence_chrf(SYSTEM[2], refs) == sacrebleu.sentence_chrf(SYSTEM[2], refs).score
    uneven = [PER_SENTENCE[0], PER_SENTENCE[1][:1], PER_SENTENCE[2]]
    padded = [PER_SENTENCE[0], PER_SENTENCE[1][:1] * 2, PER_SENTENCE[2]]
    assert am.corpus_bleu(SYSTEM, uneven) == am.corpus_bleu(SYSTEM, padded)


def test_bleu_tokenizes_korean_and_chinese_so_partial_matches_score() -> None:
    # Without pre-tokenization 13a sees one "word" per Chinese sentence: 0 unless identical.
    zh = am.sentence_bleu("我爱北京天安门", ["我爱北京故宫"])
    assert zh > 0
    assert sacrebleu.sentence_bleu("我爱北京天安门", ["我爱北京故宫"], tokenize="13a").score == 0
    same = "서울은 한국의 수도이다"
    assert am.sentence_bleu(same, [same]) == pytest.approx(100)
    assert am.tokens("서울은 北京, Seoul!") == ["서울은", "北", "京", "seoul"]


def test_rouge_on_korean_equals_the_hand_computed_value() -> None:
    scores = am.rouge("서울은 한국의 수도입니다", ["서울은 한국의 수도이다"])
    # unigrams: 2 of 3 shared -> P = R = F = 2/3; bigrams: 1 of 2; LCS: 2 of 3.
    assert scores["rouge1"] == pytest.approx(2 / 3)
    assert scores["rouge2"] == pytest.approx(1 / 2)
    assert scores["rougeL"] == pytest.approx(2 / 3)
    assert am.rouge("我爱北京", ["我爱上海"])["rouge1"] == pytest.approx(0.5)


def test_squad_v11_rules() -> None:
    assert am.squad_exact("The Dog!", "dog") == 1.0
    # pred [cat, sat, on, mat] vs gold [cat, on, mat]: P 3/4, R 1 -> F1 6/7.
    assert am.squad_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert am.f1("Paris", ["London", "paris."]) == 1.0
    assert am.exact_match("no", ["yes"]) == 0.0


def test_korquad_v10_rules_apply_to_korean_references() -> None:
    # 《》 become spaces, spaces are not counted: chars 서울특별시 vs 서울 -> P 2/5, R 1.
    assert am.korquad_f1("《서울》특별시", "서울") == pytest.approx(2 * 0.4 / 1.4)
    assert am.korquad_exact("'1995년'", "1995년") == 1.0
    assert am.f1("서울특별시", ["서울"]) == pytest.approx(2 * 0.4 / 1.4)
    assert am.squad_f1("서울특별시", "서울") == 0.0
    # KorQuAD keeps English articles, SQuAD drops them.
    assert am.korquad_exact("the answer", "answer") == 0.0
    assert am.squad_exact("the answer", "answer") == 1.0


def test_perplexity_from_logprobs_or_the_reason_it_is_absent() -> None:
    assert am.perplexity([-0.5, -0.5], "").value == pytest.approx(math.exp(0.5))
    absent = am.perplexity(None, "the LLM returned no logprobs")
    assert absent.value is None and absent.reason == "the LLM returned no logprobs"


def test_score_references_and_aggregate(embedder) -> None:
    rows = [
        {"id": "a", "answer": "The dog bit the man. [1]", "references": ["The dog bit the man."]},
        {"id": "b", "answer": "서울은 한국의 수도입니다", "references": ["서울은 한국의 수도이다"]},
        {"id": "c", "answer": "x", "references": [], "perplexity_reason": "given"},
    ]
    score_references(rows, embedder)
    assert rows[0]["metrics"]["exact_match"] == 1.0  # the citation marker is not scored
    assert rows[0]["metrics"]["semantic_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert rows[1]["metrics"]["rouge1"] == pytest.approx(0.6667, abs=1e-4)
    assert "metrics" not in rows[2]
    metrics = aggregate(rows)
    assert metrics["n_with_reference"] == 2
    assert metrics["exact_match"] == 0.5
    assert metrics["perplexity"] is None
    assert metrics["perplexity_absent"] == "given (1)"
