"""One embeddings request to OpenAI (or an `openai:` compatible server), decoded with numpy.

Why: ingestion sends thousands of these requests, several at once, while the same process
chunks and writes. LlamaIndex's `OpenAIEmbedding` wraps each in tenacity and the `openai`
client builds a pydantic object per returned vector; measured with py-spy on 10k chunks, that
was 14 ms of interpreter time per request, on the thread pool that competes with the writer
for the GIL. This sends the same request through the official `openai` client (its
authentication, base URL and error types; the shared `httpx` client's retries and adaptive
limit) but reads the raw response: the vectors arrive as base64 float32 (what the `openai`
client asks for by default) and become one numpy array each, with no object per vector.

Texts are sent as LlamaIndex's `OpenAIEmbedding` sends them (newlines replaced by spaces), so
vectors embedded here and there are the same vectors (the embedding cache holds both).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np


class OpenAIEmbeddingRequests:
    """`call(texts)` embeds one request's texts: what `Embedder` sends for a remote model."""

    def __init__(self, client: Any, model: str) -> None:
        """`client` is an `openai.OpenAI` client (its http_client carries retries and timeouts)."""
        self.client = client
        self.model = model

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        raw = self.client.embeddings.with_raw_response.create(
            input=[text.replace("\n", " ") for text in texts],
            model=self.model,
            encoding_format="base64",
        )
        rows = sorted(raw.http_response.json()["data"], key=lambda row: row["index"])
        if len(rows) != len(texts):
            raise ValueError(
                f"the embeddings server answered {len(rows)} vectors for {len(texts)} texts"
            )
        return [decode(row["embedding"]) for row in rows]


def decode(embedding: str | list[float]) -> np.ndarray:
    """A base64 little-endian float32 vector (or a JSON list from a server that ignores
    `encoding_format`) as a float32 array."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)
