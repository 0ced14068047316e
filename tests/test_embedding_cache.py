"""The embedding cache never embeds the same text twice, and never reuses another model's vectors.

A counting stand-in for the embedding model records every text it is asked to embed, so the
tests can say exactly which texts reached the model: re-ingest, replace, a second collection
in a second process (what an eval rerun does) and a different model id on the same cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Document
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, EmbeddingCache
from rag_app.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DIMENSION = 8
MODEL_ID = "test:counting"


class CountingEmbedding(BaseEmbedding):
    """Deterministic vectors from a text's hash; remembers every text it embedded."""

    _seen: list[str] = PrivateAttr(default_factory=list)

    @property
    def seen(self) -> list[str]:
        return self._seen

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return [b / 255.0 + 0.01 for b in digest[:DIMENSION]]

    def _get_text_embedding(self, text: str) -> list[float]:
        self._seen.append(text)
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def counting_embedder(cache_path: Path, model_id: str = MODEL_ID) -> Embedder:
    return Embedder(
        CountingEmbedding(embed_batch_size=4), model_id, 40, str.split, EmbeddingCache(cache_path)
    )


def documents(version: int = 1) -> list[Document]:
    """Two articles of several chunks; version 2 changes one paragraph of the first."""
    first = [f"Paragraph {i} about vector databases and nearest neighbours." for i in range(12)]
    if version == 2:
        first[5] = "A rewritten paragraph about HNSW graphs and their ef_search parameter."
    second = [f"Paragraph {i} about retrieval augmented generation." for i in range(12)]
    return [
        Document(id_="doc-a", text="\n\n".join(first), metadata={"title": "A"}),
        Document(id_="doc-b", text="\n\n".join(second), metadata={"title": "B"}),
    ]


def make_app(data_dir: Path, embedder: Embedder, collection: str = "main") -> RagApp:
    settings = load_settings(
        data_dir=data_dir, vector_store="memory", chunk_size=40, chunk_overlap=0
    )
    return RagApp(settings, collection=collection, embedder=embedder)


def seen(embedder: Embedder) -> list[str]:
    model = embedder.model
    assert isinstance(model, CountingEmbedding)
    return model.seen


def test_reingest_and_replace_never_embed_a_text_twice(tmp_path: Path) -> None:
    embedder = counting_embedder(tmp_path / "cache.sqlite")
    with make_app(tmp_path / "data", embedder) as app:
        first = app.ingest_documents(documents())
        embedded_first = len(seen(embedder))
        again = app.ingest_documents(documents())
        replaced = app.ingest_documents(documents(version=2))
    assert first.texts_embedded == embedded_first == first.chunks_written > 4
    assert again.texts_embedded == 0
    assert replaced.replaced == ["doc-a"]
    assert 0 < replaced.texts_embedded < first.chunks_written
    repeats = {text: n for text, n in Counter(seen(embedder)).items() if n > 1}
    assert repeats == {}


def test_duplicate_texts_in_one_call_are_embedded_once(tmp_path: Path) -> None:
    embedder = counting_embedder(tmp_path / "cache.sqlite")
    vectors = embedder.embed_texts(["same", "other", "same"])
    assert sorted(seen(embedder)) == ["other", "same"]
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_a_second_process_reuses_the_cache(tmp_path: Path) -> None:
    """Like an eval rerun: a fresh collection in a new process embeds nothing already seen."""
    cache_path = tmp_path / "cache.sqlite"
    embedder = counting_embedder(cache_path)
    with make_app(tmp_path / "data", embedder) as app:
        first = app.ingest_documents(documents())
    result = _run_in_subprocess(cache_path, tmp_path / "data", collection="eval-rerun")
    assert result["chunks_written"] == first.chunks_written
    assert result["texts_embedded"] == 0
    assert result["seen"] == []


def test_vectors_are_keyed_by_model(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    texts = ["alpha beta", "gamma delta"]
    counting_embedder(cache_path).embed_texts(texts)
    other = counting_embedder(cache_path, model_id="test:another-model")
    other.embed_texts(texts)
    assert sorted(seen(other)) == sorted(texts)
    assert other.texts_embedded == 2


def _run_in_subprocess(cache_path: Path, data_dir: Path, collection: str) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tests.test_embedding_cache import counting_embedder, documents, make_app, seen\n"
        "embedder = counting_embedder(Path(sys.argv[1]))\n"
        "with make_app(Path(sys.argv[2]), embedder, sys.argv[3]) as app:\n"
        "    report = app.ingest_documents(documents())\n"
        "print(json.dumps({'chunks_written': report.chunks_written,\n"
        "                  'texts_embedded': report.texts_embedded, 'seen': seen(embedder)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", code, str(cache_path), str(data_dir), collection],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])
