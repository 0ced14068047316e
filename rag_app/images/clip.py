"""CLIP: images and short texts embedded into one space, for image and prompt search.

RAG_IMAGE_EMBED_MODEL names a transformers `CLIPModel` by hub name or local folder (saved with
`save_pretrained`, with its tokenizer and image processor). Text goes through CLIP's text
tower as a LlamaIndex embedding inside an ordinary `Embedder`, so prompts are ingested, cached
and queried like any text; images go through the vision tower in `ClipEmbedder.embed_images`,
cached in the same SQLite cache keyed by the image's bytes, so a re-ingest embeds nothing.
Vectors are L2-normalised, as CLIP compares them by cosine.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag_app.embeddings.models import Embedder, EmbeddingCache
from rag_app.errors import ConfigError
from rag_app.ingestion.loaders import load_image
from rag_app.settings import Settings

#: Images per forward pass of the vision tower.
IMAGE_BATCH = 32


class ClipModel:
    """A transformers CLIP model with its tokenizer and image processor, loaded on first use."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @cached_property
    def _parts(self) -> tuple[Any, Any, Any]:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if Path(self.spec).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            model = CLIPModel.from_pretrained(self.spec)
            tokenizer = AutoTokenizer.from_pretrained(self.spec)
            processor = AutoImageProcessor.from_pretrained(self.spec)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"RAG_IMAGE_EMBED_MODEL={self.spec!r}: cannot load the CLIP model "
                f"({' '.join(str(exc).split())[:200]}). Give a local folder saved with "
                "save_pretrained, or a model already in the Hugging Face cache."
            ) from None
        model.eval()
        return model, tokenizer, processor

    @property
    def dimension(self) -> int:
        return int(self._parts[0].config.projection_dim)

    @property
    def max_tokens(self) -> int:
        return int(self._parts[0].config.text_config.max_position_embeddings)

    @property
    def logit_scale(self) -> float:
        """The temperature CLIP learned: cosine similarities times this are its logits."""
        return float(self._parts[0].logit_scale.detach().exp())

    def tokenize(self, text: str) -> list[str]:
        return self._parts[1].tokenize(text)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model, tokenizer, _ = self._parts
        inputs = tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        with torch.no_grad():
            return _normalised(model.get_text_features(**inputs))

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        model, _, processor = self._parts
        rows = []
        for start in range(0, len(images), IMAGE_BATCH):
            pixels = processor(list(images[start : start + IMAGE_BATCH]), return_tensors="pt")
            with torch.no_grad():
                rows.append(_normalised(model.get_image_features(**pixels)))
        return np.concatenate(rows) if rows else np.zeros((0, self.dimension), np.float32)


def _normalised(features: Any) -> np.ndarray:
    """Unit rows (transformers 5 may wrap the projected features in a model output)."""
    tensor = features if hasattr(features, "norm") else features.pooler_output
    return (tensor / tensor.norm(dim=-1, keepdim=True)).numpy().astype(np.float32)


class ClipTextEmbedding(BaseEmbedding):
    """CLIP's text tower as a LlamaIndex embedding (queries and prompts embed alike)."""

    _clip: ClipModel = PrivateAttr()

    def __init__(self, clip: ClipModel) -> None:
        super().__init__(model_name=clip.spec, embed_batch_size=64)
        self._clip = clip

    @classmethod
    def class_name(cls) -> str:
        return "RagAppClipTextEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._clip.embed_texts([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._clip.embed_texts(texts).tolist()


class ClipEmbedder(Embedder):
    """An `Embedder` over CLIP's text tower that also embeds image files (cached by bytes)."""

    def __init__(self, clip: ClipModel, cache: EmbeddingCache | None = None) -> None:
        # max_tokens 0: prompts and images are never chunked (rag_app.images.search).
        super().__init__(ClipTextEmbedding(clip), clip_model_id(clip.spec), 0, clip.tokenize, cache)
        self.clip = clip

    @property
    def dimension(self) -> int:
        return self.clip.dimension

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray:
        """Embeddings of the images at `paths` (rows), computing only what the cache lacks."""
        model = self.model_id + "#image"
        hashes = [hashlib.sha256(Path(p).read_bytes()).digest() for p in paths]
        cached = self.cache.get_many(model, hashes) if self.cache else {}
        todo = {h: p for h, p in zip(hashes, paths, strict=True) if h not in cached}
        if todo:
            vectors = self.clip.embed_images([load_image(Path(p)) for p in todo.values()])
            fresh = list(zip(todo, vectors, strict=True))
            self.texts_embedded += len(fresh)
            if self.cache:
                self.cache.put_many(model, fresh)
            cached.update(fresh)
        if not paths:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([cached[h] for h in hashes])


def clip_model_id(spec: str) -> str:
    """The id an image store records: `clip:` and RAG_IMAGE_EMBED_MODEL as given."""
    return f"clip:{spec}"


def build_clip_embedder(settings: Settings, cache: bool = True) -> ClipEmbedder:
    """The CLIP embedder named by RAG_IMAGE_EMBED_MODEL (loaded on its first use)."""
    store = EmbeddingCache(settings.data_dir / "embedding_cache.sqlite") if cache else None
    return ClipEmbedder(ClipModel(settings.image_embed_model), store)
