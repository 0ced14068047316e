"""Image ingest against raw CLIP encoding of the same images, and re-ingest of unchanged images.

Why: as for text, the model dominates image ingestion, so the question is what the app adds
around CLIP's vision tower (reading and hashing files, the cache, the catalog, store writes).
No CLIP weights exist offline, so the model is a randomly initialised CLIP with the ViT-B/32
shape of the default `openai/clip-vit-base-patch32` (224x224 input, 32x32 patches, 12 layers):
the cost of a forward pass does not depend on the weights. The baseline is the raw encode
(PIL load, image processor, `get_image_features`) of the very same files, measured before and
after the ingest (their mean). The unchanged folder is then ingested again: it must embed
nothing.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ratio, timed
from rag_app.embeddings.models import EmbeddingCache
from rag_app.images.clip import ClipEmbedder, ClipModel
from rag_app.images.search import ImageSearch
from rag_app.ingestion.loaders import load_image, load_paths
from rag_app.ingestion.pipeline import IngestReport
from rag_app.settings import load_settings
from rag_lab.shapes import classes, draw
from tests.support.tiny_clip import save_tokenizer, vocabulary

IMAGE_SIZE = 224


def base_sized_clip(path: Path) -> Path:
    """A random CLIP of ViT-B/32's shape, saved with a tokenizer and a 224 image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    save_tokenizer(path)
    CLIPImageProcessor().save_pretrained(path)  # CLIP's defaults: 224 crop, CLIP's mean/std
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocabulary()),
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 3,
        },
        vision_config={"image_size": IMAGE_SIZE, "patch_size": 32},
    )
    CLIPModel(config).save_pretrained(path)
    return path


def pictures(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    items = classes()
    paths = []
    for number in range(count):
        path = folder / f"picture-{number:04d}.png"
        draw(items[number % len(items)], rng, size=IMAGE_SIZE).save(path)
        paths.append(path)
    return paths


def bench_images(count: int, workdir: Path) -> dict[str, Any]:
    model = base_sized_clip(workdir / "clip-b32")
    paths = pictures(workdir / "pictures", count)
    clip = ClipModel(str(model))
    clip.embed_images([load_image(paths[0])])  # load and warm up outside every figure

    def raw() -> float:
        return timed(lambda: clip.embed_images([load_image(p) for p in paths]))

    settings = load_settings(data_dir=workdir / "image-data", image_embed_model=str(model))
    cache = EmbeddingCache(settings.data_dir / "embedding_cache.sqlite")
    search = ImageSearch(settings, ClipEmbedder(clip, cache))  # the loaded model, as a process

    def ingest() -> tuple[IngestReport, float]:
        began = time.perf_counter()
        documents, _ = load_paths([workdir / "pictures"], settings.doc_root)
        report = search.ingest_images(documents)
        return report, time.perf_counter() - began

    before = raw()
    first, first_s = ingest()
    after = raw()
    again, again_s = ingest()
    search.close()
    raw_s = (before + after) / 2
    return {
        "images": count,
        "raw_encode_s": round(raw_s, 2),
        "ingest_s": round(first_s, 2),
        "ingest_over_raw": ratio(first_s, raw_s),
        "images_embedded": first.images_embedded,
        "reingest_s": round(again_s, 3),
        "reingest_over_first": ratio(again_s, first_s),
        "reingest_images_embedded": again.images_embedded,
    }
