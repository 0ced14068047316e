"""Image and prompt search over the configured store: CLIP vectors beside the text collection.

Two collections sit beside RAG_COLLECTION on the same backend: `<collection>__images` (image
files, CLIP image vectors) and `<collection>__prompts` (prompts from a JSONL or CSV file, CLIP
text vectors). On Pinecone, whose index has one dimension, they are namespaces of a second index
`<PINECONE_INDEX>-clip`. Both are written by the shared `Ingestor` (catalog, content hashes,
pending records, stable ids), so dedup, replace, delete and kill -9 safety are the text ones;
only the node building (one node per image or prompt, no chunking) and the image embedding
differ. A store built with another RAG_IMAGE_EMBED_MODEL is refused before the model loads.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llama_index.core import Document
from llama_index.core.schema import NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from rag_app.errors import EmbeddingMismatchError, RagAppError
from rag_app.images.clip import ClipEmbedder, build_clip_embedder, clip_model_id
from rag_app.ingestion.loaders import LoadError, LoadProblem, document_id, load_image
from rag_app.ingestion.pipeline import (
    Ingestor,
    IngestReport,
    PendingDocument,
    delete_documents,
)
from rag_app.ingestion.records import flatten_metadata
from rag_app.settings import Settings
from rag_app.stores.base import Backend, DocRecord, chunk_ids
from rag_app.stores.registry import open_backend

IMAGES_SUFFIX = "__images"
PROMPTS_SUFFIX = "__prompts"
PINECONE_INDEX_SUFFIX = "-clip"
PROMPT_SUFFIXES = (".jsonl", ".csv")


@dataclass
class ImageHit:
    number: int
    doc_id: str
    score: float
    path: str


@dataclass
class PromptHit:
    number: int
    prompt_id: str
    score: float
    prompt: str
    image: str


class WholeDocumentIngestor(Ingestor):
    """The shared ingestion path with one node per document (CLIP reads 77 tokens at most)."""

    def __init__(self, backend: Backend, embedder: ClipEmbedder) -> None:
        super().__init__(backend, embedder, chunker=None)

    def content_hash(self, document: Document) -> str:
        payload = json.dumps(
            [document.text, document.metadata, self.embedder.model_id],
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _nodes(self, document: Document) -> list[TextNode]:
        metadata = {**flatten_metadata(document.metadata), "doc_id": document.doc_id}
        hidden = list(metadata)
        node = TextNode(
            id_=chunk_ids(document.doc_id, 1)[0],
            text=document.text,
            metadata={**metadata, "chunk_index": 0},
            excluded_embed_metadata_keys=[*hidden, "chunk_index"],
            excluded_llm_metadata_keys=[*hidden, "chunk_index"],
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=document.doc_id)
        return [node]


class ImageIngestor(WholeDocumentIngestor):
    """Embeds each image node's file with CLIP's vision tower (not its text) before the write."""

    embedder: ClipEmbedder

    def _embed_group(self, group: list[PendingDocument]) -> None:
        nodes = [n for p in group for n in p.nodes if n.embedding is None]
        vectors = self.embedder.embed_image_files([Path(n.metadata["path"]) for n in nodes])
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector.tolist()


def side_settings(settings: Settings, suffix: str) -> Settings:
    """Settings whose collection (and Pinecone namespace and index) hold CLIP vectors."""
    update: dict[str, str] = {
        "collection": settings.collection + suffix,
        "pinecone_index": settings.pinecone_index[:40] + PINECONE_INDEX_SUFFIX,
    }
    if settings.pinecone_namespace:
        update["pinecone_namespace"] = settings.pinecone_namespace + suffix
    return settings.model_copy(update=update)


class ImageSearch:
    """The image and prompt collections of one RagApp, and the searches across them."""

    def __init__(self, settings: Settings, embedder: ClipEmbedder | None = None) -> None:
        self.settings = settings
        self._owns_embedder = embedder is None
        self.embedder = embedder or build_clip_embedder(settings)
        self.images = open_backend(side_settings(settings, IMAGES_SUFFIX), self._dimension)
        self.prompts = open_backend(side_settings(settings, PROMPTS_SUFFIX), self._dimension)

    def _dimension(self) -> int:
        """Called by a store only to create an index (this loads the model)."""
        return self.embedder.dimension

    def _check_model(self, backend: Backend) -> None:
        """Refuse a store built with another CLIP model, before this one is loaded."""
        manifest = backend.manifest()
        if manifest is None:
            return
        wanted = clip_model_id(self.settings.image_embed_model)
        if manifest["embed_model"] != wanted:
            built = manifest["embed_model"].removeprefix("clip:")
            raise EmbeddingMismatchError(
                f"The {backend.name} store at {backend.location} holds vectors of "
                f"RAG_IMAGE_EMBED_MODEL={built!r}, but RAG_IMAGE_EMBED_MODEL is "
                f"{self.settings.image_embed_model!r}; vectors of two models cannot be "
                f"compared. Set RAG_IMAGE_EMBED_MODEL={built} to keep using it, or use another "
                "RAG_COLLECTION for the new model."
            )
        backend.check_embedding(self.embedder.model_id, self.embedder.dimension)

    def ingest_images(
        self, documents: Sequence[Document], show_progress: bool = False
    ) -> IngestReport:
        """Image documents (`rag_app.ingestion.loaders.image_document`) into the image
        collection."""
        self._check_model(self.images)
        report = ImageIngestor(self.images, self.embedder).ingest(documents, (), show_progress)
        report.images_embedded, report.texts_embedded = report.texts_embedded, 0
        return report

    def ingest_prompts(self, path: Path, root: Path | None = None) -> IngestReport:
        """Prompts of a JSONL or CSV file (`id`, `prompt`, optional `image`) as CLIP texts."""
        documents, problems = load_prompts(path, root)
        self._check_model(self.prompts)
        return WholeDocumentIngestor(self.prompts, self.embedder).ingest(documents, problems)

    def search_text(self, text: str, top_k: int) -> list[ImageHit]:
        """Images for a description (CLIP's text tower against image vectors)."""
        if not text.strip():
            raise RagAppError("The image query is empty: describe what to find, e.g. 'a red car'.")
        self._check_model(self.images)
        return _image_hits(self.images.query(self.embedder.embed_query(text), top_k))

    def search_image(self, path: Path, top_k: int) -> list[ImageHit]:
        """Images like the image at `path`."""
        self._check_model(self.images)
        return _image_hits(self.images.query(self._image_vector(path), top_k))

    def search_prompts(self, path: Path, top_k: int) -> list[PromptHit]:
        """Stored prompts nearest to the image at `path` (the book's image to prompt search)."""
        self._check_model(self.prompts)
        found = self.prompts.query(self._image_vector(path), top_k)
        return [
            PromptHit(
                number,
                str(hit.node.metadata.get("prompt_id", "")),
                float(hit.score or 0.0),
                hit.node.get_content(),
                str(hit.node.metadata.get("image", "")),
            )
            for number, hit in enumerate(found, start=1)
        ]

    def _image_vector(self, path: Path) -> list[float]:
        try:
            load_image(path)
        except LoadError as exc:
            raise RagAppError(f"{path}: {exc}") from None
        return self.embedder.embed_image_files([path])[0].tolist()

    def prompt_of(self, image: Path) -> str | None:
        """The stored prompt whose `image` is this file, if any."""
        wanted = os.path.abspath(image)
        ids = [i for r in self.prompts.documents().values() for i in r.chunk_ids()]
        for node in self.prompts.fetch_nodes(ids).values():
            if node.metadata.get("image") == wanted:
                return node.get_content()
        return None

    def documents(self) -> list[DocRecord]:
        return sorted(self.images.documents().values(), key=lambda r: r.doc_id)

    def prompt_documents(self) -> list[DocRecord]:
        return sorted(self.prompts.documents().values(), key=lambda r: r.doc_id)

    def delete(self, given: Sequence[str]) -> list[str]:
        """Delete images (ids or paths) and prompts (ids); returns those found in neither."""
        images = self.images.documents()
        ids = [g if g in images else document_id(Path(g), self.settings.doc_root) for g in given]
        missing = set(delete_documents(self.images, ids))
        left = [g for g, doc_id in zip(given, ids, strict=True) if doc_id in missing]
        return delete_documents(self.prompts, left)

    def drop(self) -> None:
        self.images.drop()
        self.prompts.drop()

    def close(self) -> None:
        self.images.close()
        self.prompts.close()
        if self._owns_embedder and self.embedder.cache:
            self.embedder.cache.close()


def _image_hits(found: list[NodeWithScore]) -> list[ImageHit]:
    return [
        ImageHit(
            number,
            str(hit.node.metadata.get("doc_id", "")),
            float(hit.score or 0.0),
            str(hit.node.metadata.get("path", "")),
        )
        for number, hit in enumerate(found, start=1)
    ]


def load_prompts(path: Path, root: Path | None = None) -> tuple[list[Document], list[LoadProblem]]:
    """Prompt Documents from a JSONL or CSV file; a bad row is a problem, not a failure.

    Each row has `id` and `prompt`, and optionally `image`: the path of the picture the prompt
    made, relative to the file's folder (kept absolute, so `reimagine` finds the prompt).
    """
    if path.suffix.lower() not in PROMPT_SUFFIXES:
        raise RagAppError(
            f"{path}: prompts are read from .jsonl or .csv files (rows with id, prompt and "
            "optionally image)."
        )
    if not path.is_file():
        raise RagAppError(f"{path}: no such prompts file.")
    source = document_id(path, root)
    documents: list[Document] = []
    problems: list[LoadProblem] = []
    for number, row in _rows(path, problems):
        prompt_id, prompt = str(row.get("id") or "").strip(), str(row.get("prompt") or "")
        if not prompt_id or not prompt.strip():
            problems.append(LoadProblem(f"{path}:{number}", "a row needs an id and a prompt"))
            continue
        image = str(row.get("image") or "").strip()
        metadata = {"source": source, "prompt_id": prompt_id}
        if image:
            metadata["image"] = os.path.abspath(path.parent / image)
        documents.append(Document(id_=prompt_id, text=prompt, metadata=metadata))
    return documents, problems


def _rows(path: Path, problems: list[LoadProblem]) -> list[tuple[int, dict]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return list(enumerate(csv.DictReader(text.splitlines()), start=2))
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(LoadProblem(f"{path}:{number}", f"invalid JSON: {exc}"))
            continue
        if isinstance(row, dict):
            rows.append((number, row))
        else:
            problems.append(LoadProblem(f"{path}:{number}", "expected a JSON object"))
    return rows
