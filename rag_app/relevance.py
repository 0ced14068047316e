"""Absolute relevance: is anything retrieved about the question at all?

Fused scores are ranks in disguise: each retriever's list is min-max scaled per query
(rag_app/fusion.py), so the best chunk scores 1.0 even for "xyzzy plugh frobnicate". Whether a
chunk is relevant needs signals that do not depend on the other candidates:

* keyword coverage: the share of the question's IDF weight found in the chunk
  (`KeywordIndex.coverage`); a question term that no chunk contains weighs the most;
* dense similarity: the cosine between question and chunk (for chunks the dense list had).

A source's relevance is its keyword coverage, or its cosine similarity when there is no
keyword index (RAG_RETRIEVER=dense). A question whose best source is under the threshold gets
"nothing relevant found". Thresholds are calibrated per embedding model (model id as
`Embedder.model_id`) and question language by `benchmarks/relevance_calibration.py` and kept in
MIN_RELEVANCE; RAG_MIN_RELEVANCE overrides them.

The retriever returns `RelevantNode`s: LlamaIndex `NodeWithScore`s that also carry the relevance
and the verdict, so they reach the synthesizers and `response.source_nodes` through any
LlamaIndex query or chat engine unchanged.

Measured for MiniLM (XQuAD en/zh and KLUE-STS, half of the documents removed, 60 answerable and
60 unanswerable questions per language): at thresholds refusing at most 2% of the answerable
questions, coverage refuses 78% (en), 67% (zh) and 60% (ko) of the unanswerable ones - short of
the 90% goal: removed XQuAD articles share many terms with the kept ones. The cosine is useful
for English only (78%; MiniLM does not read Chinese or Korean), so dense mode refuses only
English questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llama_index.core.schema import NodeWithScore

#: Per embedding model, per signal and question language: the minimum relevance.
MIN_RELEVANCE: dict[str, dict[str, dict[str, float]]] = {
    "local:all-MiniLM-L6-v2": {
        "keyword": {"en": 0.387, "zh": 0.405, "ko": 0.328},
        "dense": {"en": 0.301, "zh": 0.0, "ko": 0.0},
    },
}
#: For a model that was never calibrated: coverage barely depends on the model (it is the
#: keyword index's; the lowest calibrated value is used), and a cosine threshold of 0 only
#: refuses chunks pointing away from the question.
FALLBACK: dict[str, dict[str, float]] = {
    "keyword": {"en": 0.328, "zh": 0.328, "ko": 0.328},
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

    def score(self, keyword_index: bool) -> float:
        """Keyword coverage when there is a keyword index, else the cosine similarity."""
        value = self.keyword if keyword_index else self.dense
        return 0.0 if value is None else value


class RelevantNode(NodeWithScore):
    """A retrieved node with its absolute relevance and whether it reaches the threshold."""

    relevance: float
    relevant: bool


def is_relevant(hit: NodeWithScore) -> bool:
    """False only for a node the retriever judged irrelevant (other retrievers judge nothing)."""
    return not isinstance(hit, RelevantNode) or hit.relevant


def min_relevance(
    model_id: str, keyword_index: bool, override: float | None, question: str = ""
) -> float:
    """The threshold for this model, signal and question; `override` is RAG_MIN_RELEVANCE."""
    if override is not None:
        return override
    table = MIN_RELEVANCE.get(model_id, FALLBACK)
    return table["keyword" if keyword_index else "dense"][language(question)]


def language(text: str) -> str:
    """ko, zh or en: which NOTHING_RELEVANT message fits a question."""
    if _HANGUL.search(text):
        return "ko"
    return "zh" if _HAN.search(text) else "en"


def nothing_relevant_message(question: str) -> str:
    return NOTHING_RELEVANT[language(question)]
