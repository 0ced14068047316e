"""Extractive answers without kiwi on the sentences, against kiwi on every sentence.

`rag_app.answers.extractive` analyses only the question with kiwi and finds its Korean terms in
each sentence as spelled (`shared_terms`). This compares that with the reference it replaced:
every candidate sentence tokenised by kiwi in one batch (`tokenize_many`). Each TyDi QA Korean
question gets its own passage among 5 (4 others drawn with a fixed seed, all relevant); reported:
the share of identical answers, the share quoting a gold answer for each, and the time of each
with kiwi already loaded. Run: `python -m benchmarks.extractive_kiwi [--limit N]`; skips
without ../shared.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rag_app.answers.extractive import EXTRACTIVE_SENTENCES, extract_answer, sentences
from rag_app.answers.types import Source
from rag_app.retrieval.keyword_index import tokenize, tokenize_many
from rag_lab.data import shared_dir

TYDI = shared_dir() / "data" / "tydiqa-ko"
SETS = {"train": "tydiqa-goldp-ko-train.json", "dev": "tydiqa-goldp-ko-dev.json"}


def kiwi_answer(question: str, sources: Sequence[Source]) -> str:
    """The reference: `extract_answer` as it was, every sentence analysed by kiwi."""
    candidates = [(s.number, r, t) for r, s in enumerate(sources) for t in sentences(s.text)]
    tokens = [set(t) for t in tokenize_many([c[2] for c in candidates], korean="kiwi+bigram")]
    frequency = Counter(t for terms in tokens for t in terms)
    query = set(tokenize(question))

    def score(i: int) -> float:
        shared = query & tokens[i]
        return (
            sum(math.log(1 + len(candidates) / frequency[t]) for t in shared)
            - 0.01 * (candidates[i][1])
        )

    ranked = sorted(range(len(candidates)), key=score, reverse=True)
    best = [i for i in ranked[:EXTRACTIVE_SENTENCES] if score(i) > 0] or ranked[:1]
    return " ".join(f"{candidates[i][2].strip()} [{candidates[i][0]}]" for i in best)


def compare(path: Path, limit: int | None) -> dict[str, float]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items = [
        (qa["question"], p["context"], [a["text"] for a in qa["answers"]])
        for article in data
        for p in article["paragraphs"]
        for qa in p["qas"]
    ][:limit]
    contexts = sorted({context for _, context, _ in items})
    rng = random.Random(0)
    same = kiwi_hits = plain_hits = 0
    kiwi_s = plain_s = 0.0
    for question, context, answers in items:
        texts = [context, *rng.sample([c for c in contexts if c != context], 4)]
        rng.shuffle(texts)
        sources = [Source(n, "d", 0.5, t, None, None) for n, t in enumerate(texts, start=1)]
        start = time.perf_counter()
        reference = kiwi_answer(question, sources)
        middle = time.perf_counter()
        answer = extract_answer(question, sources)
        kiwi_s += middle - start
        plain_s += time.perf_counter() - middle
        same += answer == reference
        kiwi_hits += any(a in reference for a in answers)
        plain_hits += any(a in answer for a in answers)
    n = len(items)
    return {
        "questions": n,
        "identical": round(same / n, 3),
        "gold_quoted_kiwi": round(kiwi_hits / n, 3),
        "gold_quoted_spelled": round(plain_hits / n, 3),
        "kiwi_s": round(kiwi_s, 2),
        "spelled_s": round(plain_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="questions per set")
    args = parser.parse_args()
    if not TYDI.exists():
        print(f"skipped: {TYDI} is absent (TyDi QA Korean, see ../shared/README.md)")
        return
    tokenize("한국어")  # kiwi loaded before either side is timed
    for name, file in SETS.items():
        print(name, json.dumps(compare(TYDI / file, args.limit)))


if __name__ == "__main__":
    main()
