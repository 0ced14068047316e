"""`make bench` section `serve`: what the HTTP layer of `rag-app serve` adds to a query.

The same questions on the memory store with the bundled samples, at 1, 8 and 32 concurrent
clients: through HTTP (`POST /v1/query` on a real uvicorn server, one `httpx` client per
thread) and through `RagApp.query` called directly in one process by as many threads, in
alternating rounds so that the shared machine's drifting load hits both alike. The
server runs in this process, so both share the GIL and the two cores; the added p50 at one
client is the figure the target is on (HTTP adds at most 5 ms).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from rag_app.app import RagApp
from rag_app.embeddings.models import build_embedder
from rag_app.server import Service
from rag_app.settings import load_settings
from tests.support.serve_server import running_server

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
QUESTIONS = [
    "What does ef_search control in HNSW?",
    "벡터 데이터베이스는 무엇을 저장하나요?",
    "What is retrieval-augmented generation?",
    "HNSW 알고리즘은 어떻게 동작하나요?",
]
CLIENTS = (1, 8, 32)
#: Queries per run, whatever the concurrency, so every run does the same work.
QUERIES = 192
#: Alternations of the two ways per concurrency.
ROUNDS = 4


def _timed(clients: int, asks: dict[str, Callable[[int], Any]]) -> dict[str, dict[str, float]]:
    """Each way of asking in turn, `ROUNDS` times, so drifting load hits both alike."""
    latencies: dict[str, list[float]] = {name: [] for name in asks}
    walls = dict.fromkeys(asks, 0.0)
    for _ in range(ROUNDS):
        for name, ask in asks.items():

            def one_client(number: int, ask=ask, name=name) -> None:
                for i in range(QUERIES // clients // ROUNDS):
                    began = time.perf_counter()
                    ask(number + i)
                    latencies[name].append(time.perf_counter() - began)

            began = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(one_client, range(clients)))
            walls[name] += time.perf_counter() - began
    return {
        name: {
            "qps": round(len(values) / walls[name], 1),
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p95_ms": round(statistics.quantiles(values, n=20)[18] * 1000, 2),
        }
        for name, values in latencies.items()
    }


def bench_serve(workdir: Path) -> dict[str, Any]:
    settings = load_settings(data_dir=workdir / "serve", collection="serve")
    app = RagApp(settings, embedder=build_embedder(settings, cache=False))
    app.ingest([SAMPLES])
    service = Service(app)
    rows = []
    with running_server(service) as url:
        clients = {n: httpx.Client(base_url=url, timeout=60) for n in range(max(CLIENTS))}

        def over_http(i: int) -> None:
            question = QUESTIONS[i % len(QUESTIONS)]
            response = clients[i % len(clients)].post("/v1/query", json={"question": question})
            response.raise_for_status()

        def direct(i: int) -> None:
            app.query(QUESTIONS[i % len(QUESTIONS)])

        _timed(8, {"ragapp": direct, "http": over_http})  # warm both paths
        for n in CLIENTS:
            timed = _timed(n, {"ragapp": direct, "http": over_http})
            baseline, http = timed["ragapp"], timed["http"]
            rows.append(
                {
                    "clients": n,
                    "ragapp": baseline,
                    "http": http,
                    "qps_ratio": round(http["qps"] / baseline["qps"], 3),
                    "added_p50_ms": round(http["p50_ms"] - baseline["p50_ms"], 2),
                }
            )
        for client in clients.values():
            client.close()
    return {"queries": QUERIES, "rows": rows}
