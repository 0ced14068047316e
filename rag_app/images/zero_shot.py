"""Zero-shot image classification with CLIP: the image against a text per label.

Each label fills a prompt template ("a photo of a {label}"); the image's CLIP vector is compared
with the label texts by cosine, scaled by CLIP's learned logit scale and turned into
probabilities with a softmax, as CLIP's own zero-shot recipe does. Vectors go through the
`ClipEmbedder` cache, so labels and images already seen are not embedded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag_app.errors import RagAppError

if TYPE_CHECKING:
    from rag_app.images.clip import ClipEmbedder

DEFAULT_TEMPLATE = "a photo of a {label}"


def classify_image(
    embedder: ClipEmbedder,
    image: Path,
    labels: Sequence[str],
    template: str = DEFAULT_TEMPLATE,
) -> list[tuple[str, float]]:
    """`(label, probability)` for every label, most probable first; probabilities sum to 1."""
    # lazy: `rag-app` reads DEFAULT_TEMPLATE at start-up; numpy and the loaders (LlamaIndex)
    # would add 0.2 s and 1 s to every command
    import numpy as np

    from rag_app.ingestion.loaders import LoadError, load_image

    texts = label_texts(labels, template)
    try:
        load_image(image)
    except LoadError as exc:
        raise RagAppError(f"{image}: {exc}") from None
    image_vector = embedder.embed_image_files([image])[0]
    logits = embedder.clip.logit_scale * (embedder.embed_texts(texts) @ image_vector)
    exp = np.exp(logits - logits.max())
    probabilities = exp / exp.sum()
    ranked = sorted(zip(labels, probabilities.tolist(), strict=True), key=lambda p: -p[1])
    return [(label, float(p)) for label, p in ranked]


def label_texts(labels: Sequence[str], template: str) -> list[str]:
    """The texts CLIP reads for `labels`; refuses what would make the softmax meaningless."""
    cleaned = [label.strip() for label in labels]
    if len(cleaned) < 2:
        raise RagAppError(
            "Zero-shot classification needs at least two labels (--label A --label B)."
        )
    if "" in cleaned or len(set(cleaned)) != len(cleaned):
        raise RagAppError(f"The labels must be distinct and non-empty, got {list(labels)!r}.")
    if "{label}" not in template:
        raise RagAppError(
            f"The prompt template {template!r} has no {{label}}: write e.g. {DEFAULT_TEMPLATE!r}."
        )
    return [template.replace("{label}", label) for label in cleaned]
