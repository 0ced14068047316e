"""Absolute relevance: is anything retrieved about the question at all?

Fused scores are ranks in disguise: each retriever's list is min-max scaled per query
(rag_app/retrieval/fusion.py), so the best chunk scores 1.0 even for "xyzzy plugh frobnicate".
Whether a chunk is relevant needs signals that do not depend on the other candidates:

* keyword coverage: the share of the question's IDF weight found in the chunk
  (`KeywordIndex.coverage`); a question term that no chunk contains weighs the most;
* dense similarity: the cosine between question and chunk (for chunks the dense list had).

A source's relevance depends on the retriever (its *signal*): hybrid, the weighted mean
(coverage + w * cosine) / (1 + w) with the model's DENSE_WEIGHT w (a chunk the dense list did
not have gets the lowest cosine of that list, an upper bound of its own); keyword, the coverage;
dense (or a keyword index without coverage, Pinecone's sparse index), the cosine. A question
whose best source is under the threshold gets "nothing relevant found". Thresholds are
calibrated per embedding model (model id as `Embedder.model_id`), signal and question language
by `benchmarks/relevance_calibration.py` and kept in MIN_RELEVANCE; RAG_MIN_RELEVANCE overrides
them.

The retriever returns `RelevantNode`s: LlamaIndex `NodeWithScore`s that also carry the relevance
and the verdict, so they reach the synthesizers and `response.source_nodes` through any
LlamaIndex query or chat engine unchanged.

Measured (docs/benchmarks.md, "Relevance"): half of the documents removed, the questions of
three such splits pooled (600 answerable and 600 unanswerable questions per language, 165 each
for KLUE ko), thresholds refusing at most 2% of the answerable questions. With e5, coverage
alone refuses 76% (en), 69% (zh) and 30% (ko) of the unanswerable questions; adding the cosine
(w = 4) 93%, 86% and 36%: the goal of 90% is reached for English only. On KLUE the signals do
not separate: an answerable question's partner is often a paraphrase in other words (coverage
low, cosine about 0.85), while an "unanswerable" review sentence has others on the same subject
left ("the host was very kind"), which score as high. One split's 2% tail is a single KLUE
question: fitted on one split, the thresholds refused 4-5.5% of another split's answerable
questions, hence the pooling. MiniLM reads neither Chinese nor Korean, so its cosine adds
nothing there (its thresholds are from an older, single-split run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from llama_index.core.schema import NodeWithScore

Signal = Literal["hybrid", "keyword", "dense"]

#: Weight of the cosine beside keyword coverage in the hybrid signal, per embedding model and
#: question language (none: 0, coverage alone, for models whose cosine separates nothing).
DENSE_WEIGHT: dict[str, dict[str, float]] = {
    "e5:multilingual-e5-small-q4": {"en": 4.0, "zh": 4.0, "ko": 12.0},
}
#: Per embedding model, per signal and question language: the minimum relevance.
MIN_RELEVANCE: dict[str, dict[Signal, dict[str, float]]] = {
    "e5:multilingual-e5-small-q4": {
        "hybrid": {"en": 0.726, "zh": 0.786, "ko": 0.796},
        "keyword": {"en": 0.357, "zh": 0.455, "ko": 0.25},
        "dense": {"en": 0.791, "zh": 0.845, "ko": 0.835},
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
    "hybrid": {"en": 0.25, "zh": 0.25, "ko": 0.25},
    "keyword": {"en": 0.25, "zh": 0.25, "ko": 0.25},
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


class RelevantNode(NodeWithScore):
    """A retrieved node with its absolute relevance and whether it reaches the threshold."""

    relevance: float
    relevant: bool


def is_relevant(hit: NodeWithScore) -> bool:
    """False only for a node the retriever judged irrelevant (other retrievers judge nothing)."""
    return not isinstance(hit, RelevantNode) or hit.relevant


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
