"""Query-adaptive fusion of a dense and a keyword (BM25) ranking that is not fooled by a noise list.

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
* dense confidence: the z-score of the top similarity, times trust = a + (1 - a) * 0.05 with
  a = the overlap of the two top-10 sets. Dense models fail silently (they always return
  neighbours), BM25 fails visibly (nothing or everything weakly matches); a good dense model
  shares much of its top 10 with BM25 (median 0.4 per query on English XQuAD) and a
  wrong-language one does not (0.1 on Korean KLUE and Chinese XQuAD). The 5% floor lets a
  peaked dense list win when BM25 is flat noise.

Trust was a**2 until the keyword side improved (``rag_app/keyword.py``): squaring held a good
dense list at a median 0.16 of the weight on English, where a fixed blend is best at ~0.4;
linear trust gives agreeing lists more weight and still little to noise (a chance overlap of
one chunk in ten gives a noise list ~0.15 trust). Measured through the app's own chunks (the data of
``benchmarks/retrieval_quality.py``: XQuAD all 1190 questions, KLUE-STS dev 110 queries, 20
candidates per retriever; hit@1 / hit@5, KLUE recall@1 / @5; "good dense" = MiniLM reading the
English originals of the Chinese questions and paragraphs, a multilingual model stand-in):

=========================  ===========  ===========  ===========  ==============
method                     KLUE ko      XQuAD en     XQuAD zh     zh, good dense
=========================  ===========  ===========  ===========  ==============
keyword (BM25)             0.827 0.973  0.938 0.990  0.926 0.987  0.926 0.987
dense (MiniLM)             0.318 0.473  0.844 0.976  0.135 0.306  0.760 0.973
RRF (k=60)                 0.536 0.855  0.898 0.994  0.340 0.871  0.866 0.989
min-max, equal weights     0.564 0.909  0.940 0.996  0.441 0.967  0.940 0.994
``fuse``, trust a**2       0.809 0.973  0.950 0.992  0.923 0.987  0.939 0.989
``fuse`` (this module)     0.809 0.973  0.951 0.993  0.918 0.987  0.940 0.991
=========================  ===========  ===========  ===========  ==============

``fuse`` stays within 0.02 of the better single retriever everywhere (RRF loses up to 0.6) and
lets a useful dense list add to BM25. During design, confidence weights without the agreement
term lost 0.07-0.14 hit@1 on Korean and Chinese; the 5% floor and the spread factor (robustness
to keyword noise) together cost 0.02 hit@1 on Chinese with noise dense. A fixed 50/50 blend is
0.003-0.023 better where both lists are good but collapses where dense is noise, which zero
configuration cannot rule out. Tried and dropped: square-root trust (+0.001 on English, -0.022
on Chinese), a 0.15-0.2 floor (+0.002 on English, but noise lists get ~0.2 of the weight),
top-5, top-20 or rank-biased overlap as the agreement (all within 0.005), z-score instead of
min-max scaling (no gain on English), adding each chunk's document's best scores (no gain: the
"wrong article" misses are questions that name no article-specific term).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Ranking = list[tuple[str, float]]

AGREEMENT_DEPTH = 10
AGREEMENT_POWER = 1.0
DENSE_PRIOR = 0.05
RRF_K = 60


def fuse(
    dense: Iterable[tuple[str, float]], keyword: Iterable[tuple[str, float]], top_k: int
) -> Ranking:
    """Blend a dense ranking (similarity, higher is better) and a BM25 ranking (scores >= 0).

    Pass each retriever's full candidate list (e.g. its top 20). Returns up to ``top_k`` ids with
    fused scores in [0, 1], best first.
    """
    dense_list, keyword_list = _best_first(dense), _best_first(keyword)
    depth = max(len(dense_list), top_k)
    w_dense, w_keyword = fusion_weights(dense_list, keyword_list, depth)
    dense_norm = _scaled(dense_list, dense_list[-1][1] if dense_list else 0.0)
    keyword_norm = _scaled(keyword_list, _keyword_floor(keyword_list, depth))
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
    keyword_conf = _top_z(keyword_scores) * spread
    agreement = _agreement(dense, keyword) ** AGREEMENT_POWER
    trust = agreement + (1.0 - agreement) * DENSE_PRIOR
    dense_conf = _top_z([s for _, s in dense]) * trust
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
