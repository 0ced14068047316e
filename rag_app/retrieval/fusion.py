"""Query-adaptive fusion of a dense and a keyword (BM25) ranking, weighted by their confidence.

Why hand-written: LlamaIndex's QueryFusionRetriever and the usual libraries offer reciprocal-rank
fusion or a fixed-weight score blend. Both trust each list equally on every query, and a dense
model that does not know the language (MiniLM on Korean) returns confident-looking neighbours
that are noise. No library weights the two lists per query by evidence found in the lists
themselves, which is what zero configuration across languages and embedding models needs.

How: each list's scores are mapped to [0, 1] (top score to 1; an unlisted chunk's score to 0,
which for BM25 is 0 unless the list was cut at its depth) and blended with per-query weights:

* keyword confidence: the z-score of the top BM25 score within the list (padded with the zeros
  of chunks that matched no query term, so one lone match counts as confident), times the
  relative spread (top - floor) / top, so a flat list of weak matches counts for little.
* dense confidence: the z-score of the top similarity, times trust = a + (1 - a) * 0.8 with
  a = the overlap of the two top-10 sets. Dense models fail silently (they always return
  neighbours), BM25 fails visibly (nothing or everything weakly matches); a good dense model
  shares much of its top 10 with BM25 (0.41 on average per query with multilingual-e5-small
  on Korean KLUE, Chinese and English XQuAD) and a wrong-language one does not (0.1 for
  MiniLM on Korean and Chinese).
* both confidences are squared before they are compared, so the list that is clearly more
  confident on a query takes most of the weight.

The two kinds of question pull apart: written while reading the passage (XQuAD: keyword search
is strong, dense weak in Chinese) or without it (TyDi QA, Belebele: the passage says it in
other words, and one chunk sharing a rare question word often tops BM25 by far while the gold
chunk is dense's first and BM25's second). The trust prior (DENSE_PRIOR) and the power
(CONFIDENCE_POWER) were fitted on fitting questions only (`benchmarks/fusion_bench.py --fit`):
TyDi QA GoldP ko train (1,625 questions) and a fixed half of the XQuAD en / zh and KLUE
articles (540, 727 and 58 questions; XQuAD and KLUE have no train split); TyDi dev and Belebele
are not in the score. Score: the mean over the four sets of MRR@10; "keeps": hybrid minus the
better single retriever has a paired-bootstrap 95% upper bound >= 0 on every fitting set (hit@1
and MRR) and a lower bound > 0 on TyDi train. Hybrid hit@1 / MRR@10 on the fitting questions
(e5, the app's own chunks, 40 candidates per list, top 10; rule: fixed dense / keyword weights,
or trust prior, power):

=================  ======  =====  ===========  ===========  ===========  ===========
rule               score   keeps  KLUE ko      TyDi train   XQuAD en     XQuAD zh
=================  ======  =====  ===========  ===========  ===========  ===========
keyword (BM25)                    0.828 0.894  0.662 0.757  0.961 0.978  0.948 0.969
dense (e5)                        0.862 0.914  0.737 0.824  0.898 0.934  0.799 0.872
RRF (k=60)         0.9067  no     0.862 0.923  0.737 0.823  0.928 0.959  0.862 0.922
fixed 0.5 / 0.5    0.9286  yes    0.879 0.930  0.765 0.845  0.957 0.977  0.933 0.963
fixed 0.4 / 0.6    0.9259  no     0.862 0.922  0.745 0.829  0.967 0.981  0.949 0.972
0.5, 3 (earlier)   0.9312  yes    0.862 0.922  0.771 0.851  0.963 0.980  0.952 0.971
0.5, 1             0.9315  yes    0.862 0.922  0.779 0.854  0.967 0.982  0.944 0.969
0.7, 3             0.9327  yes    0.879 0.931  0.774 0.853  0.967 0.982  0.940 0.965
0.8, 2 (chosen)    0.9333  yes    0.879 0.931  0.774 0.854  0.969 0.982  0.942 0.967
0.9, 2             0.9322  yes    0.879 0.931  0.773 0.853  0.969 0.982  0.935 0.963
1.0, 2             0.9303  yes    0.879 0.931  0.770 0.851  0.967 0.981  0.928 0.959
=================  ======  =====  ===========  ===========  ===========  ===========

Mixing the weights toward equal (mix * adaptive + (1 - mix) * 0.5, mix 0.5 or 0.75) scored
within 0.0002 of the chosen rule and was left out. Reported on every full set
(docs/benchmarks.md, "Fusion on every shared QA set"): hybrid minus the better part, hit@1 [95%
interval], TyDi dev +0.033 [+0.007, +0.062], TyDi train +0.038 [+0.024, +0.051], Belebele
+0.048 [+0.028, +0.068], KLUE +0.018 [-0.027, +0.064], XQuAD en +0.006 [-0.003, +0.016], XQuAD
zh -0.002 [-0.013, +0.009]. The price: XQuAD zh hybrid hit@1 0.957 -> 0.949 (keyword alone
0.950), for TyDi dev 0.938 -> 0.957 and Belebele 0.907 -> 0.906; and a dense list of noise
(MiniLM on Korean, not the default) keeps more weight than with the earlier prior (under 0.4
against a peaked BM25 list, tests/test_fusion.py); RAG_RETRIEVER=keyword or a multilingual
model avoids it.

Earlier tuning (when the default model became multilingual-e5-small, on KLUE and 400 XQuAD
questions): a trust floor of 0.05 and no power left a good dense list ~0.34 of the weight
where it was right and BM25 wrong, and hybrid fell below dense alone on Korean.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Ranking = list[tuple[str, float]]

AGREEMENT_DEPTH = 10
AGREEMENT_POWER = 1.0
DENSE_PRIOR = 0.8
#: Each list's confidence is raised to this power before the two are compared, so the list
#: that is clearly more confident on a query takes most of the weight (fitted: module docstring).
CONFIDENCE_POWER = 2.0
#: Candidates per list that set the weights and the score scale: the depth the rule was tuned
#: at. Measured through `rag-app eval` (top_k 10, so 40 candidates per retriever), the rule
#: computed over all 40 gave KLUE hybrid recall@1 0.900, over the top 20 0.918.
FUSION_DEPTH = 20
RRF_K = 60


def fuse(
    dense: Iterable[tuple[str, float]], keyword: Iterable[tuple[str, float]], top_k: int
) -> Ranking:
    """Blend a dense ranking (similarity, higher is better) and a BM25 ranking (scores >= 0).

    Pass each retriever's full candidate list (e.g. its top 20). Returns up to ``top_k`` ids with
    fused scores in [0, 1], best first. Weights and scaling come from the top FUSION_DEPTH of
    each list, so asking for more candidates does not change the fused head; candidates below
    that depth score 0 and follow in rank order.
    """
    dense_list, keyword_list = _best_first(dense), _best_first(keyword)
    dense_head, keyword_head = dense_list[:FUSION_DEPTH], keyword_list[:FUSION_DEPTH]
    depth = min(max(len(dense_list), top_k), FUSION_DEPTH)
    w_dense, w_keyword = fusion_weights(dense_head, keyword_head, depth)
    dense_norm = _scaled(dense_list, dense_head[-1][1] if dense_head else 0.0)
    keyword_norm = _scaled(keyword_list, _keyword_floor(keyword_head, depth))
    scores = {
        chunk_id: w_dense * dense_norm.get(chunk_id, 0.0)
        + w_keyword * keyword_norm.get(chunk_id, 0.0)
        for chunk_id in _union_in_rank_order(dense_list, keyword_list)
    }
    return _top(scores, top_k)


def fusion_weights(dense: Ranking, keyword: Ranking, depth: int = 0) -> tuple[float, float]:
    """Per-query weights (dense, keyword), summing to 1, for best-first lists.

    ``depth`` is how many results each retriever was asked for: a shorter keyword list means
    every other chunk scored 0.
    """
    if not keyword:
        return (1.0, 0.0) if dense else (0.5, 0.5)
    if not dense:
        return 0.0, 1.0
    depth = max(depth, len(dense), len(keyword))
    keyword_scores = [s for _, s in keyword] + [0.0] * (depth - len(keyword))
    floor = _keyword_floor(keyword, depth)
    spread = (keyword[0][1] - floor) / keyword[0][1] if keyword[0][1] > 0 else 0.0
    keyword_conf = (_top_z(keyword_scores) * spread) ** CONFIDENCE_POWER
    agreement = _agreement(dense, keyword) ** AGREEMENT_POWER
    trust = agreement + (1.0 - agreement) * DENSE_PRIOR
    dense_conf = (_top_z([s for _, s in dense]) * trust) ** CONFIDENCE_POWER
    total = dense_conf + keyword_conf
    if total <= 0:
        return 0.5, 0.5
    return dense_conf / total, keyword_conf / total


def rrf(
    dense: Iterable[tuple[str, float]],
    keyword: Iterable[tuple[str, float]],
    top_k: int,
    k: int = RRF_K,
) -> Ranking:
    """Reciprocal-rank fusion, the usual baseline: sum of 1 / (k + rank) over the lists."""
    scores: dict[str, float] = {}
    for ranking in (_best_first(dense), _best_first(keyword)):
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return _top(scores, top_k)


def _best_first(ranking: Iterable[tuple[str, float]]) -> Ranking:
    """Sort by score, keeping each id once (its best score); ties keep input order."""
    best: dict[str, float] = {}
    for chunk_id, score in ranking:
        if chunk_id not in best or score > best[chunk_id]:
            best[chunk_id] = float(score)
    return sorted(best.items(), key=lambda item: -item[1])


def _top_z(scores: list[float]) -> float:
    """How far the best score stands above the list, in standard deviations (0 if flat)."""
    values = np.asarray(scores, dtype=np.float64)
    if len(values) < 2 or values.std() == 0:
        return 0.0
    return max(float((values.max() - values.mean()) / values.std()), 0.0)


def _agreement(dense: Ranking, keyword: Ranking, depth: int = AGREEMENT_DEPTH) -> float:
    top_dense = {chunk_id for chunk_id, _ in dense[:depth]}
    top_keyword = {chunk_id for chunk_id, _ in keyword[:depth]}
    return len(top_dense & top_keyword) / min(len(top_dense), len(top_keyword))


def _keyword_floor(keyword: Ranking, depth: int) -> float:
    """The BM25 score of the best chunk not in the list: 0 unless the list was cut at ``depth``."""
    return keyword[-1][1] if keyword and len(keyword) >= depth else 0.0


def _scaled(ranking: Ranking, floor: float) -> dict[str, float]:
    """Map scores to [0, 1]: the top score to 1, ``floor`` (an unlisted chunk's score) to 0."""
    if not ranking:
        return {}
    span = ranking[0][1] - floor
    return {
        chunk_id: max(score - floor, 0.0) / span if span > 0 else 1.0 for chunk_id, score in ranking
    }


def _union_in_rank_order(first: Ranking, second: Ranking) -> list[str]:
    """Ids of both lists interleaved by rank, so equal fused scores keep a fair order."""
    order: dict[str, None] = {}
    for rank in range(max(len(first), len(second))):
        for ranking in (first, second):
            if rank < len(ranking):
                order.setdefault(ranking[rank][0], None)
    return list(order)


def _top(scores: dict[str, float], top_k: int) -> Ranking:
    return sorted(scores.items(), key=lambda item: -item[1])[: max(top_k, 0)]
