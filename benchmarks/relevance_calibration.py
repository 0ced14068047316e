"""Calibrate the "nothing relevant found" threshold of an embedding model (one command).

Half of each corpus's articles are removed (seeded): questions about a removed article are
unanswerable, the others answerable. The kept half is ingested with the configured embedder
(RAG_EMBED_MODEL) and every sampled question is retrieved; a question's relevance is its best
source's. The questions of several seeds (splits, --seeds) are pooled: a threshold at the 2%
tail of one split's answerable questions refused 4-5.5% of another split's (e5, seed 0 to 1).
Per language, the threshold is fitted on one corpus (FIT: XQuAD en and zh, TyDi QA ko train)
as the highest at which at most MAX_FALSE_REFUSAL of its answerable questions are refused, and
every corpus of that language is reported at it (TyDi dev, KLUE-STS: held out). The report
gives the share of unanswerable questions refused (target >= 0.9) and of answerable ones
(<= 0.02), and the curve (thresholds fitted at each CURVE share instead), for each signal of
rag_app/retrieval/relevance.py: hybrid (coverage and cosine, weighted by the model's
DENSE_WEIGHT or --dense-weight), keyword (coverage) and dense (the cosine, RAG_RETRIEVER=dense).

    .venv/bin/python -m benchmarks.relevance_calibration --dump raw.json  # RAG_EMBED_MODEL's
    .venv/bin/python -m benchmarks.relevance_calibration --corpora ko-tydi-train,ko-tydi-dev
    .venv/bin/python -m benchmarks.relevance_calibration --load raw.json --dense-weight ko=8

Put the printed thresholds into rag_app/retrieval/relevance.py's MIN_RELEVANCE under the printed
model id (thresholds per signal and language), and the weights into DENSE_WEIGHT.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from llama_index.core import Document

from rag_app.embeddings.models import Embedder
from rag_app.evaluation.retrieval import scratch_app
from rag_app.ingestion.loaders import read_squad
from rag_app.retrieval.relevance import Relevance, Signal, dense_weight
from rag_app.settings import load_settings
from rag_lab.data import shared_dir

SHARED = shared_dir() / "data"
#: Corpus name -> (file, question language). TyDi's regrouped files have one article per title,
#: so removing an article removes every passage of it.
DATASETS = {
    "en": (SHARED / "xquad" / "xquad.en.json", "en"),
    "zh": (SHARED / "xquad" / "xquad.zh.json", "zh"),
    "ko-tydi-train": (SHARED / "tydiqa-ko" / "tydiqa-goldp-ko-train.json", "ko"),
    "ko-tydi-dev": (SHARED / "tydiqa-ko" / "tydiqa-goldp-ko-dev.json", "ko"),
    "ko-klue": (SHARED / "klue" / "klue-sts-v1.1_dev.json", "ko"),
}
#: Per language, the corpus its threshold is fitted on; the others are only reported.
FIT = {"en": "en", "zh": "zh", "ko": "ko-tydi-train"}
#: Questions sampled per kind and split where not all are used (XQuAD, as in earlier runs).
SAMPLED = {"en": 200, "zh": 200}
MAX_FALSE_REFUSAL = 0.02
#: Shares of answerable questions refused at which the curve of a signal is reported.
CURVE = (0.01, 0.02, 0.05)
TOP_K = 5


def squad_split(path: Path, seed: int) -> tuple[list[Document], list[str], list[str]]:
    """(kept articles, answerable questions, unanswerable questions)."""
    documents, questions = read_squad(path)
    removed = set(random.Random(seed).sample([d.doc_id for d in documents], len(documents) // 2))
    kept = [d for d in documents if d.doc_id not in removed]
    answerable = [q.question for q in questions if q.doc_id not in removed]
    unanswerable = [q.question for q in questions if q.doc_id in removed]
    return kept, answerable, unanswerable


def pairs_split(path: Path, seed: int) -> tuple[list[Document], list[str], list[str]]:
    """KLUE-STS: a sentence1 (label >= 4) asks for its sentence2; half of those are removed."""
    pairs = [p for p in json.loads(path.read_text(encoding="utf-8")) if p["labels"]["label"] >= 4]
    partners = sorted({p["sentence2"] for p in json.loads(path.read_text(encoding="utf-8"))})
    targets = sorted({p["sentence2"] for p in pairs})
    removed = set(random.Random(seed).sample(targets, len(targets) // 2))
    kept = [Document(id_=f"s2-{i:05d}", text=t) for i, t in enumerate(partners) if t not in removed]
    answerable = [p["sentence1"] for p in pairs if p["sentence2"] not in removed]
    unanswerable = [p["sentence1"] for p in pairs if p["sentence2"] in removed]
    return kept, answerable, unanswerable


def split(corpus: str, seed: int) -> tuple[list[Document], list[str], list[str]]:
    path, _ = DATASETS[corpus]
    return pairs_split(path, seed) if corpus == "ko-klue" else squad_split(path, seed)


def signals(
    corpus: str, questions: int, seed: int, workdir: Path, embedder: Embedder | None = None
) -> dict[str, Any]:
    """Per sampled question, the (dense, keyword) relevance signals of its top TOP_K sources.

    `workdir` keeps the embedding cache, so the splits of one corpus embed each text once."""
    kept, answerable, unanswerable = split(corpus, seed)
    rng = random.Random(seed)
    sample = {
        "answerable": rng.sample(answerable, min(questions, len(answerable))),
        "unanswerable": rng.sample(unanswerable, min(questions, len(unanswerable))),
    }
    settings = load_settings(data_dir=workdir, vector_store="memory")
    with scratch_app(settings, embedder) as app:
        app.ingest_documents(kept)
        found = {
            kind: [
                [(r.dense, r.keyword) for _, r in app.retriever.search_with_relevance(q, TOP_K)]
                for q in asked
            ]
            for kind, asked in sample.items()
        }
        return {"model": app.embedder.model_id, **found}


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The questions of several splits' `signals` together."""
    return {
        "model": runs[0]["model"],
        **{kind: [q for run in runs for q in run[kind]] for kind in ("answerable", "unanswerable")},
    }


def best(found: list[list[list[float | None]]], signal: Signal, weight: float) -> list[float]:
    """Per question, its best source's relevance under `signal` (rag_app.retrieval.relevance)."""
    return [
        max((Relevance(*s).score(signal, weight) for s in sources), default=0.0)
        for sources in found
    ]


def refusal_rates(
    raw: dict[str, Any], threshold: float, signal: Signal = "hybrid", weight: float = 0.0
) -> dict[str, float]:
    """Share of answerable and of unanswerable questions refused at `threshold`."""
    return {
        kind: round(sum(v < threshold for v in best(raw[kind], signal, weight)) / len(raw[kind]), 3)
        for kind in ("answerable", "unanswerable")
    }


def fit_threshold(
    data: dict[str, Any], signal: Signal, weight: float, max_refusal: float = MAX_FALSE_REFUSAL
) -> float:
    """The highest threshold refusing at most `max_refusal` of the answerable questions
    (refused: relevance under the threshold, rounded down to 3 decimals)."""
    values = sorted(best(data["answerable"], signal, weight))
    allowed = int(max_refusal * len(values) + 1e-9)  # questions that may be refused
    if allowed >= len(values):
        return round(values[-1], 3) if values else 0.0
    return max(math.floor(values[allowed] * 1000) / 1000, 0.0)


def calibrate(
    raw: dict[str, dict[str, Any]], signal: Signal, weights: dict[str, float]
) -> dict[str, Any]:
    """Per language, the threshold fitted on its FIT corpus; per corpus, the refusal rates at its
    language's threshold, and the curve: fitted at each CURVE share instead of 2%."""
    fitted = {
        language: {
            share: fit_threshold(raw[corpus], signal, weights[language], share) for share in CURVE
        }
        for language, corpus in FIT.items()
        if corpus in raw
    }
    found: dict[str, Any] = {
        "thresholds": {lang: t[MAX_FALSE_REFUSAL] for lang, t in fitted.items()}
    }
    for corpus, data in raw.items():
        language = DATASETS[corpus][1]
        if language not in fitted:
            continue
        weight = weights[language]
        found[corpus] = {
            "threshold": fitted[language][MAX_FALSE_REFUSAL],
            **refusal_rates(data, fitted[language][MAX_FALSE_REFUSAL], signal, weight),
            "curve": {
                str(share): refusal_rates(data, threshold, signal, weight)
                for share, threshold in fitted[language].items()
            },
        }
    return found


def _weights(text: str) -> dict[str, float]:
    """A number for every language (key "") or per language: "ko=12,en=4"."""
    pairs = [part.partition("=") for part in text.split(",") if part]
    return {key if sep else "": float(value if sep else key) for key, sep, value in pairs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000, help="per kind and split")
    parser.add_argument("--corpora", default=",".join(DATASETS), help=f"of {', '.join(DATASETS)}")
    parser.add_argument("--seeds", default="0,1,2", help="splits whose questions are pooled")
    parser.add_argument("--workdir", type=Path, default=Path(".rag_data/relevance-calibration"))
    parser.add_argument("--dump", type=Path, help="write the raw signals here (JSON)")
    parser.add_argument("--load", type=Path, help="calibrate the raw signals of a --dump")
    parser.add_argument(
        "--dense-weight",
        type=_weights,
        default={},
        help="hybrid weight: a number for every language or per language, ko=12,en=4 "
        "(default: the model's DENSE_WEIGHT)",
    )
    args = parser.parse_args(argv)
    if args.load:
        raw = json.loads(args.load.read_text())
    else:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        raw = {
            corpus: pooled(
                [
                    signals(corpus, SAMPLED.get(corpus, args.questions), s, args.workdir)
                    for s in seeds
                ]
            )
            for corpus in args.corpora.split(",")
        }
    if args.dump:
        args.dump.write_text(json.dumps(raw))
    model = next(iter(raw.values()))["model"]
    weights = {
        language: args.dense_weight.get(language, args.dense_weight.get("", None))
        for language in FIT
    }
    weights = {
        language: dense_weight(model, language) if weight is None else weight
        for language, weight in weights.items()
    }
    result = {
        "model": model,
        "questions_per_kind": {corpus: len(data["answerable"]) for corpus, data in raw.items()},
        "dense_weight": weights,
        **{signal: calibrate(raw, signal, weights) for signal in ("hybrid", "keyword", "dense")},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
