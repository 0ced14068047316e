"""Benchmark MemoryVectorStore (exact and HNSW) against LlamaIndex's SimpleVectorStore.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/memory_store_bench.py
    .venv/bin/python benchmarks/memory_store_bench.py --sizes 10000 --rss-size 0 --json out.json

`python -m benchmarks.run` (`make bench`) uses its RSS worker for the memory figures of
docs/benchmarks.md. Measures, on synthetic L2-normalised vectors: top-10 query p50/p95 per
store and size (with speed-up ratios against SimpleVectorStore in the same run), HNSW build
time and recall@10 against exact search at ef_search 64 (the default) and 256, persist size
and load time per size, and peak RSS, on-disk size and load time of a subprocess holding
``--rss-size`` chunks (short text, 2 metadata keys) compared with the raw float32 matrix.
Random Gaussian vectors are the worst case for HNSW recall (real embeddings cluster); the
load average is printed because the timings are
only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import BasePydanticVectorStore, VectorStoreQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_app.stores.memory.vector_store import MemoryVectorStore  # noqa: E402

DIM = 384
TOP_K = 10
BATCH = 2_000
SIMPLE_QUERIES_AT_LARGE = 5
LARGE = 50_000
#: Larger stores are loaded once in the RSS worker (a load takes seconds).
LOAD_REPEAT_MAX_SIZE = 100_000


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def node_batches(count: int, seed: int) -> Iterator[list[TextNode]]:
    """Synthetic chunks: short text, 2 metadata keys, a source document of 20 chunks."""
    for start in range(0, count, BATCH):
        vectors = unit_vectors(min(BATCH, count - start), seed + start)
        yield [
            TextNode(
                id_=f"chunk-{start + i}",
                text=f"synthetic chunk number {start + i}",
                embedding=vector.tolist(),
                metadata={"source": f"file-{(start + i) // 20}.txt", "page": (start + i) % 20},
                relationships={
                    NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{(start + i) // 20}")
                },
            )
            for i, vector in enumerate(vectors)
        ]


def fill(store: BasePydanticVectorStore, count: int) -> float:
    began = time.perf_counter()
    for batch in node_batches(count, seed=1):
        store.add(batch)
    return time.perf_counter() - began


def timed_queries(
    store: BasePydanticVectorStore, probes: np.ndarray
) -> tuple[list[float], list[list[str]]]:
    latencies, results = [], []
    for probe in probes:
        query = VectorStoreQuery(query_embedding=probe.tolist(), similarity_top_k=TOP_K)
        began = time.perf_counter()
        result = store.query(query)
        latencies.append(time.perf_counter() - began)
        results.append(list(result.ids or []))
    return latencies, results


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 3),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1e3, 3),
        "queries": len(latencies),
    }


def recall_at_k(found: list[list[str]], truth: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return round(hits / (TOP_K * len(truth)), 4)


def bench_size(size: int, queries: int) -> dict[str, Any]:
    probes = unit_vectors(queries, seed=99)
    report: dict[str, Any] = {"size": size}

    exact = MemoryVectorStore()
    report["exact_add_s"] = round(fill(exact, size), 2)
    timed_queries(exact, probes[:3])
    exact_lat, truth = timed_queries(exact, probes)
    report["exact"] = percentiles_ms(exact_lat)

    hnsw = MemoryVectorStore(index="hnsw")
    fill(hnsw, size)
    began = time.perf_counter()
    timed_queries(hnsw, probes[:1])
    report["hnsw_build_s"] = round(time.perf_counter() - began, 2)
    hnsw_lat, found = timed_queries(hnsw, probes)
    report["hnsw"] = percentiles_ms(hnsw_lat)
    report["hnsw_recall_at_10"] = recall_at_k(found, truth)
    hnsw.hnsw_ef_search = 256
    wide_lat, wide_found = timed_queries(hnsw, probes)
    report["hnsw_ef256"] = percentiles_ms(wide_lat)
    report["hnsw_ef256_recall_at_10"] = recall_at_k(wide_found, truth)
    del hnsw

    simple = SimpleVectorStore()
    report["simple_add_s"] = round(fill(simple, size), 2)
    simple_count = SIMPLE_QUERIES_AT_LARGE if size >= LARGE else min(queries, 20)
    simple_lat, simple_found = timed_queries(simple, probes[:simple_count])
    report["simple"] = percentiles_ms(simple_lat)
    report["simple_recall_vs_exact"] = recall_at_k(simple_found, truth[:simple_count])
    del simple

    report["speedup_exact_vs_simple_p50"] = round(
        report["simple"]["p50_ms"] / report["exact"]["p50_ms"], 1
    )
    report["speedup_hnsw_vs_simple_p50"] = round(
        report["simple"]["p50_ms"] / report["hnsw"]["p50_ms"], 1
    )
    report["persistence"] = bench_persistence(exact)
    return report


def bench_persistence(store: MemoryVectorStore, loads: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "store"
        began = time.perf_counter()
        store.persist(str(folder))
        persist_s = time.perf_counter() - began
        size_bytes = sum(p.stat().st_size for p in folder.iterdir())
        times = [
            timed(lambda: MemoryVectorStore.from_persist_dir(str(folder))) for _ in range(loads)
        ]
    return {
        "persist_s": round(persist_s, 3),
        "size_mb": round(size_bytes / 2**20, 1),
        "raw_matrix_mb": round(store.count * DIM * 4 / 2**20, 1),
        "load_s_median": round(statistics.median(times), 3),
    }


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_worker(size: int) -> None:
    """Fill a store in this process and print its memory and disk figures as JSON.

    Peak RSS is read before persisting, so it is the store's, not the writer's buffers.
    """
    baseline_kb = proc_status_kb("VmRSS")
    store = MemoryVectorStore()
    add_s = fill(store, size)
    timed_queries(store, unit_vectors(5, seed=7))
    report = {
        "size": size,
        "add_s": round(add_s, 1),
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
        "rss_mb": round(proc_status_kb("VmRSS") / 1024, 1),
        "peak_rss_mb": round(proc_status_kb("VmHWM") / 1024, 1),
    }
    report.update(bench_persistence(store, loads=3 if size <= LOAD_REPEAT_MAX_SIZE else 1))
    print(json.dumps(report))


def bench_rss(size: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--rss-worker", str(size)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    report = json.loads(output.strip().splitlines()[-1])
    raw_mb = size * DIM * 4 / 2**20
    report["raw_matrix_mb"] = round(raw_mb, 1)
    report["peak_rss_over_raw"] = round(report["peak_rss_mb"] / raw_mb, 2)
    report["store_peak_over_raw"] = round(
        (report["peak_rss_mb"] - report["baseline_rss_mb"]) / raw_mb, 2
    )
    report["disk_over_raw"] = round(report["size_mb"] / raw_mb, 2)
    return report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated store sizes")
    parser.add_argument("--queries", type=int, default=50, help="queries per store and size")
    parser.add_argument("--rss-size", type=int, default=1_000_000, help="0 skips the RSS run")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--rss-worker", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.rss_worker:
        rss_worker(args.rss_worker)
        return
    results: dict[str, Any] = {"dim": DIM, "top_k": TOP_K, "cpu_count": os.cpu_count()}
    results["loadavg_start"] = os.getloadavg()
    results["sizes"] = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        report = bench_size(size, args.queries)
        print(json.dumps(report), flush=True)
        results["sizes"].append(report)
    if args.rss_size:
        results["rss"] = bench_rss(args.rss_size)
        print(json.dumps(results["rss"]), flush=True)
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps({"loadavg": [results["loadavg_start"], results["loadavg_end"]]}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
