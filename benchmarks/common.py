"""Shared pieces of `make bench`: timing, data, servers and synthetic stores.

Why one module: every figure in docs/benchmarks.md is a ratio against a baseline measured in
the same run on the same data, so the sections must agree on how they time (perf_counter,
warm-up, percentiles), which text they use (XQuAD contexts) and how a store of N synthetic
chunks is written (through `Backend.upsert` plus catalog records, exactly what an ingest
leaves behind, minus the embedding).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from rag_app.embeddings.models import Embedder
from rag_app.stores.base import Backend, DocRecord, chunk_ids
from rag_lab.data import shared_dir

XQUAD_EN = shared_dir() / "data" / "xquad" / "xquad.en.json"
XQUAD_ZH = XQUAD_EN.with_name("xquad.zh.json")
KLUE = shared_dir() / "data" / "klue" / "klue-sts-v1.1_dev.json"
DIM = 384
TOP_K = 10
CHUNKS_PER_DOC = 20
#: Characters per synthetic chunk: a chunk's start offset encodes its index.
CHUNK_SPAN = 100
UPSERT_BATCH = 2_000
SYNTHETIC_MODEL_ID = "bench:synthetic-384"
SERVER_START_SECONDS = 60.0
#: A server that persists (a pinecone-local snapshot of 100k chunks) takes a while to stop.
STOP_SECONDS = 120.0


def percentiles_ms(latencies: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 3),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1e3, 3),
        "n": len(latencies),
    }


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def latencies(action: Callable[[np.ndarray], object], probes: np.ndarray, warmup: int = 3) -> list:
    """Seconds per call of `action(probe)`, after `warmup` untimed calls."""
    for probe in probes[:warmup]:
        action(probe)
    return [timed(lambda p=probe: action(p)) for probe in probes]


def paired_latencies(
    calls: dict[str, Callable[[Any], object]], items: Sequence[Any], warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per call of each of `calls` on every item, the calls interleaved per item.

    The order of the calls rotates from item to item, so load from other processes lands on
    every call alike: what is compared is measured seconds apart, not minutes.
    """
    names = list(calls)
    for item in items[:warmup]:
        for name in names:
            calls[name](item)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for number, item in enumerate(items):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed(lambda n=name, i=item: calls[n](i)))
    return seconds


def ratio(numerator: float, denominator: float, digits: int = 2) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


# ------------------------------------------------------------------------------ vectors


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def clustered_vectors(count: int, seed: int, clusters: int = 1_000) -> np.ndarray:
    """Unit vectors around `clusters` random centres (real embeddings cluster; uniform
    random 384-d vectors are HNSW's worst case, which is not what a RAG store holds)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.standard_normal((clusters, DIM), dtype=np.float32))
    which = rng.integers(0, clusters, size=count)
    noise = rng.standard_normal((count, DIM), dtype=np.float32) * np.float32(0.06)
    return unit_rows(centres[which] + noise)


def query_probes(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Queries near stored vectors (as real questions are near their answers)."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, vectors.shape[0], size=count)]
    noise = rng.standard_normal(picked.shape, dtype=np.float32) * np.float32(0.06)
    return unit_rows(picked + noise)


def exact_top_k(matrix: np.ndarray, probes: np.ndarray, k: int = TOP_K) -> np.ndarray:
    scores = probes @ matrix.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


# ------------------------------------------------------------------------ synthetic store


def synthetic_nodes(
    vectors: np.ndarray, first: int, texts: Sequence[str] | None = None
) -> list[TextNode]:
    """Chunks shaped like an ingest's: doc id, chunk index, title, source, offsets."""
    nodes = []
    for offset, vector in enumerate(vectors):
        number = first + offset
        doc = number // CHUNKS_PER_DOC
        doc_id = f"synthetic/doc-{doc}"
        index = number % CHUNKS_PER_DOC
        node = TextNode(
            id_=chunk_ids(doc_id, index + 1, index)[0],
            text=texts[offset] if texts else f"synthetic chunk {number} of document {doc}",
            embedding=vector.tolist(),
            start_char_idx=index * CHUNK_SPAN,
            end_char_idx=(index + 1) * CHUNK_SPAN - 1,
            metadata={
                "title": f"doc {doc}",
                "source": f"synthetic/{doc}.txt",
                "doc_id": doc_id,
                "chunk_index": index,
            },
            excluded_embed_metadata_keys=["source", "doc_id", "chunk_index"],
            excluded_llm_metadata_keys=["source", "doc_id", "chunk_index"],
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
        nodes.append(node)
    return nodes


def fill_backend(backend: Backend, vectors: np.ndarray) -> float:
    """Write `vectors` as chunks plus their catalog records; seconds taken."""
    began = time.perf_counter()
    backend.record_embedding(SYNTHETIC_MODEL_ID, DIM)
    for start in range(0, vectors.shape[0], UPSERT_BATCH):
        backend.upsert(synthetic_nodes(vectors[start : start + UPSERT_BATCH], start))
    docs = -(-vectors.shape[0] // CHUNKS_PER_DOC)
    backend.put_documents(
        DocRecord(
            f"synthetic/doc-{d}",
            f"hash-{d}",
            min(CHUNKS_PER_DOC, vectors.shape[0] - d * CHUNKS_PER_DOC),
            f"synthetic/{d}.txt",
        )
        for d in range(docs)
    )
    backend.flush()
    return time.perf_counter() - began


class FixedQueryEmbedder(Embedder):
    """An embedder whose query embedding is set by the benchmark (`next_query`).

    It times the app's retrieve path without the model: same model id and dimension as the
    synthetic store's manifest, so the app's checks pass exactly as in production.
    """

    def __init__(self) -> None:
        super().__init__(None, SYNTHETIC_MODEL_ID, 256, str.split)  # type: ignore[arg-type]
        self._dimension = DIM
        self.next_query: list[float] = [0.0] * DIM

    def embed_query(self, text: str) -> list[float]:
        return self.next_query


# -------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(
    command: list[str], health_url: str, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the `with` block ends; wait for `health_url` to answer 200."""
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(process, health_url, log_path)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited:\n{log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url}: no answer in {SERVER_START_SECONDS} s")


@contextlib.contextmanager
def chroma_server(workdir: Path) -> Iterator[dict[str, Any]]:
    """`chroma run` on a free 127.0.0.1 port; yields the settings overrides that use it."""
    with chroma_server_process(workdir) as (overrides, _):
        yield overrides


@contextlib.contextmanager
def chroma_server_process(
    workdir: Path,
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[bytes]]]:
    """`chroma_server`, with its process (for `cpu_seconds`)."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    command = [str(chroma), "run", "--path", str(workdir / "chroma-server")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    with server_process(command, url, workdir / "chroma-server.log") as process:
        overrides = {"vector_store": "chroma", "chroma_host": "127.0.0.1", "chroma_port": port}
        yield overrides, process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def pinecone_local(workdir: Path, snapshot: Path | None = None) -> Iterator[dict[str, Any]]:
    """The project's local Pinecone-compatible server on a free port (state in `snapshot`)."""
    port = free_port()
    command = [sys.executable, "-m", "pinecone_local", "--port", str(port)]
    if snapshot is not None:
        command += ["--snapshot", str(snapshot), "--snapshot-interval", "3600"]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, f"{url}/healthz", workdir / "pinecone-local.log"):
        yield {"vector_store": "pinecone", "pinecone_host": url}


@contextlib.contextmanager
def backend_settings(name: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """Settings overrides for backend `name` (servers started for the `with` block)."""
    if name == "chroma-server":
        with chroma_server(workdir) as overrides:
            yield overrides
    elif name == "pinecone":
        with pinecone_local(workdir) as overrides:
            yield overrides
    else:
        yield {"vector_store": name}
