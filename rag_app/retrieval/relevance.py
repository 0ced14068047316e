"""Absolute relevance: is anything retrieved about the question at all?

Fused scores are ranks in disguise: each retriever's list is min-max scaled per query
(rag_app/retrieval/fusion.py), so the best chunk scores 1.0 even for "xyzzy plugh frobnicate".
Whether a chunk is relevant needs signals that do not depend on the other candidates:

* keyword coverage: the share of the question's IDF weight found in the chunk
  (`KeywordIndex.coverage`); a question term that no chunk contains weighs the most;
* dense similarity: the cosine between question and chunk (for chunks the dense list had).

A source's relevance depends on the retriever (its *signal*): hybrid, the weighted mean
(coverage + w * cosine) / (1 + w) with the weight w of the model and question language
(DENSE_WEIGHT; a chunk the dense list did not have gets the lowest cosine of that list, an upper
bound of its own); keyword, the coverage; dense (or a keyword index without coverage, Pinecone's
sparse index), the cosine. A question whose best source is under the threshold gets "nothing
relevant found". Thresholds are calibrated per embedding model (model id as
`Embedder.model_id`), signal and question language by `benchmarks/relevance_calibration.py` and
kept in MIN_RELEVANCE; RAG_MIN_RELEVANCE overrides them. No signal uses the fused scores.

The retriever returns `RelevantNode`s (rag_app/retrieval/retriever.py): LlamaIndex
`NodeWithScore`s that also carry the relevance and the verdict, so they reach the synthesizers
and `response.source_nodes` through any LlamaIndex query or chat engine unchanged.

Measured (docs/benchmarks.md, "Relevance"; docs/korean.md, "Nothing relevant"): half of the
articles removed, questions about a removed article are unanswerable, three such splits pooled,
thresholds refusing at most 2% of the answerable questions. en and zh are fitted on XQuAD (600
answerable and 600 unanswerable questions each), ko on TyDi QA ko train (2,499 / 2,376) and
reported on TyDi dev (407 / 421), which no threshold or weight saw. With e5 (answerable /
unanswerable refused): en 0.020 / 0.927, zh 0.020 / 0.857 (w = 4), TyDi dev 0.007 / 0.689
(w = 12; train 0.018 / 0.381). The goal of 90% is reached for English only.

Why w = 12 for Korean (TyDi train, unanswerable refused at 1% / 2% / 5% answerable refused;
the weight with the best mean of the three was taken; the last column is dev at train's 2%
threshold, answerable / unanswerable refused; run of 2026-12-07 on branch korean, after
two-syllable Korean words counted as missing in `KeywordIndex.coverage`):

=========  =================  ===============
w          train              dev
=========  =================  ===============
0          0.137 0.216 0.331  0.010 / 0.254
2          0.228 0.303 0.449  0.010 / 0.473
4          0.277 0.369 0.494  0.007 / 0.599
8          0.280 0.392 0.556  0.007 / 0.677
12         0.301 0.381 0.570  0.007 / 0.689
16         0.274 0.375 0.565  0.010 / 0.705
24         0.265 0.398 0.564  0.012 / 0.739
cosine     0.227 0.338 0.487  0.025 / 0.727
=========  =================  ===============

Before that fix a missing "태조" or "계급" weighed nothing (most Korean nouns have two
syllables, and every two-character Hangul term was taken for a bigram): w = 12 gave train
0.316 0.392 0.569 and dev 0.007 / 0.656. A logistic regression on (coverage, cosine) fitted on
train lands on the same rule (cosine coefficient / coverage coefficient = 14.4; train 0.406 at
2%, before the fix). Tried on TyDi and not adopted (exploration runs over the same splits,
not kept): the cosine's margin over the 2nd, 5th or 20th dense candidate added with weight
-0.5 to 1 (train mean of the three at most 0.430 against 0.417, within the spread between
splits; dev 0.61-0.79 at 2% with up to 2.7% of answerable refused); the cosine of the chunk's
best sentence (each top-5 chunk cut into sentences, embedded as passages; run of 2026-12-08):
alone train 0.233 at 2%, in place of the chunk's cosine 0.276-0.339, beside it with weight 2
to 24 0.327-0.391 against 0.382 (dev 0.68-0.74 with 1.0-1.5% of answerable refused), since a
neighbouring article's sentence matches the question's topic as well as its chunk does;
coverage of Kiwi content morphemes only, of nouns only (NNG/NNP/NR/SH/XR), of nouns plus the
bigrams inside content morphemes, or without the bigrams that span a particle or ending
(train 0.31-0.39 at 2% with w = 12, against 0.381). Before the fix, also: the margin as a
third logistic feature, coverage of the question's one or two rarest morphemes only, or with
a morpheme counted present when all its Hangul bigrams are (alone 0.00-0.27 at 2%, with the
cosine 0.55-0.63, in-sample on dev). The unanswerable TyDi questions that pass are about a
neighbouring article:
"월드컵이 처음 개최된 나라는?" (FIFA 월드컵 removed) finds the 2022 World Cup passage at
cosine 0.90, "고려 태조는 언제 죽었나요?" finds 조선 태종 at 0.86. Coverage and a small
bi-encoder's cosine cannot tell "the first World Cup" from "the 2022 one"; a cross-encoder
(`RAG_RERANKER`, none ships offline) is the candidate signal.
KLUE-STS (sentence pairs, no articles; 165 / 165) is reported at the TyDi thresholds: 0.000 /
0.097 (its own fit was 0.018 / 0.364 with w = 4): its paraphrase pairs are no QA set.
MiniLM reads neither Chinese nor Korean, so its cosine adds nothing there (its thresholds are
from an older, single-split run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Signal = Literal["hybrid", "keyword", "dense"]

#: Weight of the cosine beside keyword coverage in the hybrid signal, per embedding model and
#: question language (none: 0, coverage alone, for models whose cosine separates nothing).
DENSE_WEIGHT: dict[str, dict[str, float]] = {
    "e5:multilingual-e5-small-q4": {"en": 4.0, "zh": 4.0, "ko": 12.0},
}
#: Per embedding model, per signal and question language: the minimum relevance.
MIN_RELEVANCE: dict[str, dict[Signal, dict[str, float]]] = {
    "e5:multilingual-e5-small-q4": {
        "hybrid": {"en": 0.726, "zh": 0.786, "ko": 0.795},
        "keyword": {"en": 0.357, "zh": 0.455, "ko": 0.238},
        "dense": {"en": 0.795, "zh": 0.845, "ko": 0.839},
    },
    "local:all-MiniLM-L6-v2": {
        "hybrid": {"en": 0.387, "zh": 0.405, "ko": 0.328},
        "keyword": {"en": 0.387, "zh": 0.405, "ko": 0.328},
        "dense": {"en": 0.301, "zh": 0.0, "ko": 0.0},
    },
}
#: For a model that was never calibrated (its DENSE_WEIGHT is 0): coverage barely depends on
#: the model (it is the keyword index's; the lowest calibrated value is used), and a cosine
#: threshold of 0 only refuses chunks pointing away from the question.
FALLBACK: dict[Signal, dict[str, float]] = {
    "hybrid": {"en": 0.238, "zh": 0.238, "ko": 0.238},
    "keyword": {"en": 0.238, "zh": 0.238, "ko": 0.238},
    "dense": {"en": 0.0, "zh": 0.0, "ko": 0.0},
}

NOTHING_RELEVANT = {
    "en": "Nothing relevant to this question was found in the documents.",
    "ko": "문서에서 이 질문과 관련된 내용을 찾지 못했습니다.",
    "zh": "文档中没有找到与这个问题相关的内容。",
}
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Relevance:
    """The absolute signals of one retrieved chunk (None: that retriever did not see it)."""

    dense: float | None
    keyword: float | None

    def score(self, signal: Signal, dense_weight: float) -> float:
        """The relevance under `signal` (see the module docstring); a missing value is 0."""
        dense, keyword = self.dense or 0.0, self.keyword or 0.0
        if signal == "dense":
            return dense
        if signal == "keyword" or self.dense is None:
            return keyword
        return (keyword + dense_weight * dense) / (1 + dense_weight)


def min_relevance(
    model_id: str, signal: Signal, override: float | None, question: str = ""
) -> float:
    """The threshold for this model, signal and question; `override` is RAG_MIN_RELEVANCE."""
    if override is not None:
        return override
    return MIN_RELEVANCE.get(model_id, FALLBACK)[signal][language(question)]


def dense_weight(model_id: str, question_language: str = "en") -> float:
    """The cosine's weight in the hybrid signal for this model and language (`language`)."""
    return DENSE_WEIGHT.get(model_id, {}).get(question_language, 0.0)


def language(text: str) -> str:
    """ko, zh or en: which NOTHING_RELEVANT message fits a question."""
    if _HANGUL.search(text):
        return "ko"
    return "zh" if _HAN.search(text) else "en"


def nothing_relevant_message(question: str) -> str:
    return NOTHING_RELEVANT[language(question)]
