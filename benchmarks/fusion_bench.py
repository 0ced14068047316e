"""Hybrid against its two halves on every shared QA set, with paired-bootstrap intervals.

Why: the fusion rule (rag_app/retrieval/fusion.py) must be right for questions written while
reading the passage (XQuAD, high word overlap: keyword search is strong) and for questions
written without it (TyDi QA, Belebele: dense retrieval matters more). So candidate rules are
fitted on fitting questions only (TyDi train and a fixed half of the XQuAD and KLUE articles,
`fusion_lists.in_fit_half`) and reported on every set, with a paired-bootstrap 95% interval
of hybrid minus the better single retriever (seeded, RESAMPLES resamples of the questions).

The candidate lists come from `benchmarks.fusion_lists` (the app's own chunks and retrievers),
so a rule's figures equal what `rag-app eval squad` reports with it. Also: passage-aligned
chunks against the token windows on TyDi, and characters per chunk per language.

    .venv/bin/python -m benchmarks.fusion_bench          # prints the tables, writes --out
    .venv/bin/python -m benchmarks.run --sections fusion # the docs/benchmarks.md section
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fusion_lists import LANGUAGE, SETS, Question, available, collect
from rag_app.embeddings.models import build_embedder
from rag_app.retrieval import fusion
from rag_app.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache" / "fusion"
TOP_K = 10
RESAMPLES = 2000
SEED = 0
#: The sets whose articles have several paragraphs (a KLUE sentence or a Belebele passage is one
#: chunk either way).
FIT_SETS = ("xquad-en", "xquad-zh", "klue", "tydi-train")
PARAGRAPH_SETS = ("xquad-en", "xquad-zh", "tydi-dev", "tydi-train")
Ranking = list[tuple[str, float]]
Rule = Callable[[Ranking, Ranking, int], Ranking]


def ranks(questions: Sequence[Question], rule: Rule | str) -> np.ndarray:
    """Rank (1-based, 0 = not in the top TOP_K) of the first relevant chunk per question."""
    found = np.zeros(len(questions), dtype=np.int64)
    for n, q in enumerate(questions):
        if rule == "dense":
            ranked = q.dense[:TOP_K]
        elif rule == "keyword":
            ranked = q.keyword[:TOP_K]
        else:
            ranked = rule(q.dense, q.keyword, TOP_K)  # type: ignore[operator]
        found[n] = next((r for r, (i, _) in enumerate(ranked, 1) if i in q.relevant), 0)
    return found


def per_question(found: np.ndarray, metric: str) -> np.ndarray:
    """hit@1, hit@5 or mrr@10 of each question, from its rank."""
    if metric == "mrr":
        return np.where(found > 0, 1.0 / np.maximum(found, 1), 0.0)
    k = int(metric.removeprefix("hit@"))
    return ((found > 0) & (found <= k)).astype(np.float64)


def bootstrap(diff: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, ...]:
    """The mean of a per-question difference and its paired-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def compare(questions: Sequence[Question], rule: Rule) -> dict[str, Any]:
    """hit@1 / hit@5 / MRR of keyword, dense and hybrid, and hybrid minus the better single
    retriever (the better by each metric's mean) with its interval."""
    found = {"keyword": ranks(questions, "keyword"), "dense": ranks(questions, "dense")}
    found["hybrid"] = ranks(questions, rule)
    row: dict[str, Any] = {"n": len(questions)}
    for metric in ("hit@1", "hit@5", "mrr"):
        values = {name: per_question(r, metric) for name, r in found.items()}
        for name, v in values.items():
            row[f"{name} {metric}"] = round(float(v.mean()), 4)
        best = max(("keyword", "dense"), key=lambda name: values[name].mean())
        mean, low, high = bootstrap(values["hybrid"] - values[best])
        row[f"vs best {metric}"] = {"best": best, "mean": mean, "low": low, "high": high}
        other = "dense" if best == "keyword" else "keyword"
        row[f"vs other {metric}"] = bootstrap(values["hybrid"] - values[other])[1]
    return row


def adaptive(prior: float, power: float, mix: float = 1.0) -> Rule:
    """`fusion.fuse`'s scaling with its per-query weights from other DENSE_PRIOR and
    CONFIDENCE_POWER, mixed with equal weights: mix * adaptive + (1 - mix) * (0.5, 0.5)."""

    def rule(dense: Ranking, keyword: Ranking, top_k: int) -> Ranking:
        d, k = dense[: fusion.FUSION_DEPTH], keyword[: fusion.FUSION_DEPTH]
        saved = fusion.DENSE_PRIOR, fusion.CONFIDENCE_POWER
        fusion.DENSE_PRIOR, fusion.CONFIDENCE_POWER = prior, power
        try:
            w_dense, _ = fusion.fusion_weights(d, k, min(max(len(dense), top_k), len(d)))
        finally:
            fusion.DENSE_PRIOR, fusion.CONFIDENCE_POWER = saved
        return convex(mix * w_dense + (1 - mix) * 0.5)(dense, keyword, top_k)

    return rule


def weighted_rrf(w_dense: float, k: int) -> Rule:
    def rule(dense: Ranking, keyword: Ranking, top_k: int) -> Ranking:
        scores: dict[str, float] = {}
        for weight, ranking in ((w_dense, dense), (1 - w_dense, keyword)):
            for rank, (chunk_id, _) in enumerate(ranking[: fusion.FUSION_DEPTH], 1):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
        return sorted(scores.items(), key=lambda item: -item[1])[:top_k]

    return rule


def convex(w_dense: float) -> Rule:
    """A fixed blend of the two lists scaled as `fuse` scales them."""

    def rule(dense: Ranking, keyword: Ranking, top_k: int) -> Ranking:
        d, k = dense[: fusion.FUSION_DEPTH], keyword[: fusion.FUSION_DEPTH]
        dn = fusion._scaled(d, d[-1][1] if d else 0.0)
        kn = fusion._scaled(k, fusion._keyword_floor(k, fusion.FUSION_DEPTH))
        scores = {i: w_dense * dn.get(i, 0.0) + (1 - w_dense) * kn.get(i, 0.0) for i in dn | kn}
        return sorted(scores.items(), key=lambda item: -item[1])[:top_k]

    return rule


def candidates() -> dict[str, Rule]:
    """Every rule tried, by name."""
    rules: dict[str, Rule] = {"fuse (current)": fusion.fuse, "rrf k=60": fusion.rrf}
    for prior in (0.5, 0.7, 0.8, 0.9, 1.0):
        for power in (1.0, 2.0, 3.0, 4.0):
            for mix in (1.0, 0.75, 0.5):
                rules[f"adaptive prior={prior} power={power:g} mix={mix}"] = adaptive(
                    prior, power, mix
                )
    for w in (0.4, 0.5, 0.6):
        rules[f"convex w_dense={w}"] = convex(w)
    for w in (0.4, 0.5, 0.6):
        for k in (10, 60):
            rules[f"weighted rrf w_dense={w} k={k}"] = weighted_rrf(w, k)
    return rules


def load_all(names: Sequence[str], chunking: str = "window") -> dict[str, Any]:
    settings = load_settings(data_dir=CACHE / "data", vector_store="memory")
    embedder = build_embedder(settings)
    loaded = {}
    for name in names:
        print(f"[fusion] collecting {name} ({chunking})", flush=True)
        loaded[name] = collect(name, chunking, CACHE, embedder)
    return loaded


def fit_score(sets: dict[str, list[Question]], rule: Rule) -> float:
    """Mean MRR over the fitting questions of each set (sets weigh alike): TyDi train, and the
    fitting half of XQuAD en, zh and KLUE (no train split); TyDi dev and Belebele only report."""
    scores = []
    for name, questions in sets.items():
        fitting = [q for q in questions if q.fit or name == "tydi-train"]
        if fitting and name in FIT_SETS:
            scores.append(per_question(ranks(fitting, rule), "mrr").mean())
    return float(np.mean(scores)) if scores else float("nan")


def bench_fusion(names: Sequence[str] = tuple(SETS), chunking: bool = True) -> dict[str, Any]:
    """The figures of the docs/benchmarks.md section: every set through `fusion.fuse`, and the
    paragraph chunks of the multi-paragraph sets."""
    names = available(names)
    if not names:
        print("[fusion] skip: none of the shared QA sets is here", flush=True)
        return {}
    loaded = load_all(names)
    result: dict[str, Any] = {"resamples": RESAMPLES, "sets": {}, "chunks": {}}
    for name, (questions, stats) in loaded.items():
        result["sets"][name] = compare(questions, fusion.fuse)
        result["chunks"][name] = {"language": LANGUAGE[name], "window": stats}
    if chunking:
        multi = [n for n in names if n in PARAGRAPH_SETS]
        for name, (questions, stats) in load_all(multi, "paragraph").items():
            result["chunks"][name]["paragraph"] = stats
            result["sets"][name]["paragraph"] = compare(questions, fusion.fuse)
    return result


def _figures(row: dict[str, Any], metric: str) -> str:
    return " / ".join(f"{row[f'{name} {metric}']:.3f}" for name in ("keyword", "dense", "hybrid"))


def _interval(row: dict[str, Any], metric: str) -> str:
    vs = row[f"vs best {metric}"]
    return f"{vs['mean']:+.3f} [{vs['low']:+.3f}, {vs['high']:+.3f}] ({vs['best']})"


def fusion_section(results: dict[str, Any], table: Callable[..., list[str]]) -> list[str]:
    """The docs/benchmarks.md section (rendered by benchmarks/report.py)."""
    bench = results.get("fusion")
    if not bench:
        return []
    header = [
        "set",
        "questions",
        "hit@1 keyword / dense / hybrid",
        "hit@5",
        "MRR@10",
        "hybrid - better, hit@1 [95%]",
        "hybrid - better, MRR [95%]",
    ]
    rows = [
        (
            name,
            row["n"],
            _figures(row, "hit@1"),
            _figures(row, "hit@5"),
            _figures(row, "mrr"),
            _interval(row, "hit@1"),
            _interval(row, "mrr"),
        )
        for name, row in bench["sets"].items()
    ]
    chunk_header = ["set", "language", "chunks", "chars / chunk (mean, median)", "tokens / chunk"]
    chunk_header += ["hit@1 keyword / dense / hybrid", "MRR@10"]
    chunk_rows = []
    for name, chunks in bench["chunks"].items():
        for mode in ("window", "paragraph"):
            stats = chunks.get(mode)
            if stats is None:
                continue
            row = bench["sets"][name] if mode == "window" else bench["sets"][name][mode]
            chunk_rows.append(
                (
                    f"{name} ({mode})",
                    chunks["language"],
                    stats["n_chunks"],
                    f"{stats['chars_mean']:.0f}, {stats['chars_median']:.0f}",
                    f"{stats['tokens_mean']:.0f}",
                    _figures(row, "hit@1"),
                    _figures(row, "mrr"),
                )
            )
    return [
        "## Fusion on every shared QA set (`benchmarks.fusion_bench`, memory store, e5)",
        "",
        "The hybrid retriever (`rag_app/retrieval/fusion.py`) against its two halves, through",
        "the app's own chunks and retrievers (the figures `rag-app eval squad` reports; top 10,",
        "40 candidates per list). The difference is hybrid minus the better single retriever",
        f"of the set, with a paired-bootstrap 95% interval ({bench['resamples']} resamples of",
        "the questions, seed 0). xquad-en / -zh: all 1190 questions; klue: KLUE-STS dev pairs",
        "labelled >= 4; tydi: TyDi QA GoldP Korean (regrouped files); belebele: kor_Hang as",
        "passage retrieval.",
        "",
        *table(header, rows),
        "Chunking: `window` is the default chunker (sentence-packed token windows up to 512",
        "tokens, 32 overlapping); `paragraph` keeps paragraph boundaries (each paragraph",
        "starts a chunk, none crosses a paragraph end; `fusion_lists.ParagraphChunker`).",
        "",
        *table(chunk_header, chunk_rows),
    ]


def fit_line(sets: dict[str, list[Question]], label: str, rule: Rule) -> str:
    """One candidate on the fitting questions: the fit score, whether it keeps the target
    (interval upper bound >= 0 on every fitting set, lower bound > 0 on TyDi train, for hit@1
    and MRR) and each set's hybrid hit@1 and MRR."""
    keeps = True
    cells = []
    for name, questions in sets.items():
        if name not in FIT_SETS:
            continue
        row = compare([q for q in questions if q.fit or name == "tydi-train"], rule)
        for metric in ("hit@1", "mrr"):
            vs = row[f"vs best {metric}"]
            keeps &= vs["high"] >= 0 and (name != "tydi-train" or vs["low"] > 0)
        cells.append(f"{name} {row['hybrid hit@1']:.3f} {row['hybrid mrr']:.3f}")
    verdict = "keeps" if keeps else "-----"
    return f"{fit_score(sets, rule):.4f} {verdict} {label:<40} " + "  ".join(cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--fit", action="store_true", help="score every candidate rule")
    parser.add_argument("--no-chunking", action="store_true", help="skip the paragraph chunks")
    parser.add_argument("--out", type=Path, default=CACHE / "fusion_bench.json")
    args = parser.parse_args(argv)
    if not available(args.sets):
        print("SKIP: none of the shared QA sets is here.")
        return 0
    if args.fit:
        sets = {name: questions for name, (questions, _) in load_all(available(args.sets)).items()}
        for label, rule in candidates().items():
            print(fit_line(sets, label, rule), flush=True)
    result = bench_fusion(args.sets, not args.no_chunking)
    for name, row in result["sets"].items():
        print(name, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
