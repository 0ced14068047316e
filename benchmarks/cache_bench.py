"""Answer cache: the semantic threshold per embedding model, and what a hit saves.

Thresholds. A semantic hit serves the answer of another question, so a false hit (a question
that means something else) is a wrong answer. For each embedding model, question pairs are
embedded exactly as the cache embeds them (`embed_query` of the normalized text) and every
threshold of a grid is scored: the false-hit rate on pairs of different meaning and the
hit rate on true paraphrases. The pick is the lowest threshold with at most 1% false hits on
every set, which keeps the most true hits.
- Korean: KLUE-STS dev (../shared/data/klue), different = label <= 1.0, same = label >= 4.5.
- English: XQuAD has no paraphrases, so `data/en_question_paraphrases.json` holds hand-written
  paraphrases of 45 XQuAD en questions (same = original and paraphrase); different = two
  consecutive questions on the same XQuAD paragraph whose answers differ (the realistic near
  miss: same topic, same words, another question).

Latency. The loopback OpenAI-compatible server answers each chat completion in 500 ms; the
same questions are answered uncached (`cache=False`), from the exact layer, and from the
semantic layer (the question without its question mark: another exact key, the same
meaning, within every shipped threshold; lower-cased "M" or "HNSW" fall below e5's),
interleaved question by question.

One command measures a new model (prints the table and the line for `THRESHOLDS` in
rag_app/answers/cache.py):

    python -m benchmarks.cache_bench --models local,e5
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import XQUAD_EN, paired_latencies, percentiles_ms, ratio
from rag_app.answers.cache import normalize
from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.settings import load_settings
from rag_lab.data import shared_dir

KLUE_STS = shared_dir() / "data" / "klue" / "klue-sts-v1.1_dev.json"
PARAPHRASES = Path(__file__).with_name("data") / "en_question_paraphrases.json"
SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
GRID = [round(0.80 + 0.01 * i, 2) for i in range(20)]
#: The pick is searched in steps of 0.005: where e5's cosines crowd (0.97-0.99), a step of
#: 0.01 moves a third of the true hits.
PICK_GRID = [round(0.80 + 0.005 * i, 3) for i in range(40)]
MAX_FALSE_HITS = 0.01
DIFFERENT_LABEL, SAME_LABEL = 1.0, 4.5
EN_DIFFERENT_PAIRS = 400
LLM_DELAY_MS = 500
LATENCY_QUESTIONS = [
    "What does ef_search control in HNSW?",
    "What is retrieval-augmented generation?",
    "What does a vector database store?",
    "Why are documents split into chunks before embedding?",
    "How does exact nearest-neighbour search scale?",
    "What does the parameter M control?",
    "Which similarity is the usual choice for text embeddings?",
    "How does a search in HNSW proceed through the layers?",
    "What metadata does a vector database keep beside each vector?",
    "What does dense retrieval compare?",
    "Why can RAG answer about documents the model was never trained on?",
    "What does ef_construction control?",
]

Pairs = list[tuple[str, str]]


def klue_pairs(path: Path = KLUE_STS) -> tuple[Pairs, Pairs]:
    """(same meaning, different meaning) sentence pairs by KLUE-STS label."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    same = [(r["sentence1"], r["sentence2"]) for r in rows if r["labels"]["label"] >= SAME_LABEL]
    different = [
        (r["sentence1"], r["sentence2"]) for r in rows if r["labels"]["label"] <= DIFFERENT_LABEL
    ]
    return same, different


def english_pairs(xquad: Path = XQUAD_EN, paraphrases: Path = PARAPHRASES) -> tuple[Pairs, Pairs]:
    """(hand-written paraphrases, consecutive same-paragraph questions with other answers)."""
    questions: dict[str, str] = {}
    different: Pairs = []
    for article in json.loads(xquad.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"]
            questions.update((qa["id"], qa["question"].strip()) for qa in qas)
            different += [
                (a["question"].strip(), b["question"].strip())
                for a, b in zip(qas, qas[1:], strict=False)
                if _answer(a) != _answer(b)
            ]
    step = max(1, len(different) // EN_DIFFERENT_PAIRS)
    rewritten = json.loads(paraphrases.read_text(encoding="utf-8"))["pairs"]
    same = [(questions[p["id"]], p["paraphrase"]) for p in rewritten]
    return same, different[::step][:EN_DIFFERENT_PAIRS]


def _answer(qa: dict[str, Any]) -> str:
    return unicodedata.normalize("NFC", qa["answers"][0]["text"]).casefold().strip()


def pair_cosines(embedder: Embedder, pairs: Pairs) -> np.ndarray:
    """Cosine of each pair, embedded as the cache embeds a question."""
    texts = sorted({normalize(t) for pair in pairs for t in pair})
    vectors = np.array([embedder.embed_query(t) for t in texts], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    row = {t: i for i, t in enumerate(texts)}
    return np.array(
        [float(vectors[row[normalize(a)]] @ vectors[row[normalize(b)]]) for a, b in pairs]
    )


def sweep(
    same: dict[str, np.ndarray],
    different: dict[str, np.ndarray],
    grid: Sequence[float] = GRID,
    pick_grid: Sequence[float] = PICK_GRID,
) -> dict[str, Any]:
    """False-hit and hit rates per threshold and set; the pick (<= 1% false hits on all)."""

    def row(t: float) -> dict[str, float]:
        return {
            "threshold": t,
            **{f"{name}_false_hits": float(np.mean(c >= t)) for name, c in different.items()},
            **{f"{name}_hits": float(np.mean(c >= t)) for name, c in same.items()},
        }

    allowed = [
        t for t in pick_grid if all(np.mean(c >= t) <= MAX_FALSE_HITS for c in different.values())
    ]
    pick = row(allowed[0]) if allowed else None
    shown = sorted({*grid, *([pick["threshold"]] if pick else [])})
    return {
        "rows": [row(t) for t in shown],
        "pairs": {
            **{f"{n}_same": len(c) for n, c in same.items()},
            **{f"{n}_different": len(c) for n, c in different.items()},
        },
        "pick": pick,
    }


def bench_thresholds(model_specs: Sequence[str], workdir: Path) -> dict[str, Any]:
    """The sweep for each RAG_EMBED_MODEL value, keyed by the embedder's model_id."""
    sets: dict[str, tuple[Pairs, Pairs]] = {"ko": klue_pairs()}
    if XQUAD_EN.exists():
        sets["en"] = english_pairs()
    found = {}
    for spec in model_specs:
        settings = load_settings(embed_model=spec, data_dir=workdir / "thresholds")
        embedder = build_embedder(settings, cache=False)
        same = {n: pair_cosines(embedder, s) for n, (s, _) in sets.items()}
        different = {n: pair_cosines(embedder, d) for n, (_, d) in sets.items()}
        found[embedder.model_id] = {"spec": spec, **sweep(same, different)}
    return found


def bench_latency(
    embedder: Embedder, backends: Sequence[str], workdir: Path, url: str
) -> dict[str, Any]:
    """p50 of uncached vs exact-hit vs semantic-hit answers, per backend."""
    found = {}
    for name in backends:
        settings = load_settings(
            vector_store=name,
            data_dir=workdir / f"cache-latency-{name}",
            llm="openai:gpt-4o-mini",
            openai_api_key="sk-bench",
            openai_base_url=url,
            cache="semantic",
        )
        with RagApp(settings, embedder=embedder) as app:
            found[name] = _latency(app)
    return found


def _latency(app: RagApp) -> dict[str, Any]:
    app.ingest([SAMPLES])
    for question in LATENCY_QUESTIONS:
        app.query(question)  # fills the cache
    modes: dict[str, set[str]] = {"exact": set(), "semantic": set()}

    def hit(question: str, layer: str) -> None:
        modes[layer].add(app.query(question).mode.split(" ")[0])

    seconds = paired_latencies(
        {
            "uncached": lambda q: app.query(q, cache=False),
            "exact": lambda q: hit(q, "exact"),
            "semantic": lambda q: hit(q.removesuffix("?"), "semantic"),
        },
        LATENCY_QUESTIONS,
    )
    timing = {k: percentiles_ms(v) for k, v in seconds.items()}
    uncached = timing["uncached"]["p50_ms"]
    return {
        **timing,
        "exact_over_uncached_p50": ratio(timing["exact"]["p50_ms"], uncached, 4),
        "semantic_over_uncached_p50": ratio(timing["semantic"]["p50_ms"], uncached, 4),
        "modes": {k: sorted(v) for k, v in modes.items()},
    }


def render_table(model_id: str, result: dict[str, Any]) -> list[str]:
    """Markdown rows of one model's sweep (used by benchmarks/report.py and the command)."""
    sets = [k.removesuffix("_different") for k in result["pairs"] if k.endswith("_different")]
    header = ["threshold"]
    for n in sets:
        header += [f"{n} false hits", f"{n} true hits"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    pick = (result["pick"] or {}).get("threshold")
    for row in result["rows"]:
        shown = threshold_text(row["threshold"])
        cells = [f"**{shown}**" if row["threshold"] == pick else shown]
        for n in sets:
            cells += [f"{row[f'{n}_false_hits']:.1%}", f"{row[f'{n}_hits']:.1%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def threshold_text(threshold: float) -> str:
    """0.98, or 0.975 for a pick between the shown rows."""
    return f"{threshold:.2f}" if round(threshold, 2) == threshold else f"{threshold:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure the semantic-cache threshold.")
    parser.add_argument("--models", default="local", help="RAG_EMBED_MODEL values, comma-separated")
    parser.add_argument("--workdir", type=Path, default=Path(".rag_data") / "bench-cache")
    args = parser.parse_args(argv)
    results = bench_thresholds([m for m in args.models.split(",") if m], args.workdir)
    for model_id, result in results.items():
        print(f"\n{model_id} ({result['spec']}): pairs {result['pairs']}")
        print("\n".join(render_table(model_id, result)))
        pick = result["pick"]
        line = f'    "{model_id}": {pick["threshold"]},' if pick else "no threshold qualifies"
        print(f"THRESHOLDS in rag_app/answers/cache.py:\n{line}")


if __name__ == "__main__":
    main()
