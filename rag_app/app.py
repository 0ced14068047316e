"""`RagApp`: the Python API that notebooks, scripts, the CLI and the eval all go through.

One object wires settings -> embedder -> backend (from the store factory) -> ingestion and
query paths, so switching RAG_VECTOR_STORE changes nothing else. Its LlamaIndex side
(`vector_store`, `embed_model`, `storage_context`, `index`, `as_query_engine`,
`as_chat_engine`) is built from the same parts, and `query` is `as_query_engine().query`, so
LlamaIndex code and the CLI see the same documents and get the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore

from rag_app.answers.answerers import Answerer, build_answerer, filling, source_of
from rag_app.answers.cache import AnswerCache, prompt_fingerprint
from rag_app.answers.chat import ChatSession
from rag_app.answers.types import Answer
from rag_app.collection import Collection
from rag_app.embeddings.llama_embedding import CachedEmbedding
from rag_app.embeddings.models import Embedder
from rag_app.images.clip import ClipEmbedder, build_clip_embedder
from rag_app.images.search import ImageHit, ImageSearch, PromptHit
from rag_app.images.zero_shot import DEFAULT_TEMPLATE, classify_image
from rag_app.ingestion.catalog_store import CatalogVectorStore
from rag_app.ingestion.chunking import Chunker, default_chunk_size
from rag_app.ingestion.consistency import CheckReport, check
from rag_app.ingestion.loaders import (
    document_id,
    documents_from_python,
    gone_documents,
    is_image_document,
    legacy_ids,
    load_paths,
)
from rag_app.ingestion.pipeline import Ingestor, IngestReport, delete_documents
from rag_app.retrieval.keyword_sync import KeywordSearch, KeywordSync
from rag_app.retrieval.retriever import HybridRetriever
from rag_app.settings import (
    RetrieverName,
    Settings,
    check_question,
    check_top_k,
    load_settings,
)
from rag_app.stores.base import DocRecord

if TYPE_CHECKING:
    from rag_app.images.vision import Reimagined

#: `as_query_engine` options that only a vector-store retriever can apply.
VECTOR_STORE_OPTIONS = ("filters", "vector_store_query_mode", "vector_store_kwargs", "doc_ids")


class RagApp(Collection):
    """Ingest documents and answer questions over the configured vector store."""

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(settings, collection, embedder)
        self._answerer: Answerer | None = None

    @cached_property
    def chunker(self) -> Chunker:
        return Chunker(
            self.settings.chunk_size or default_chunk_size(self.embedder.max_tokens),
            self.settings.chunk_overlap,
            self.embedder.tokenize,
        )

    @cached_property
    def clip(self) -> ClipEmbedder:
        """CLIP (RAG_IMAGE_EMBED_MODEL), shared by image search and zero-shot classification."""
        return build_clip_embedder(self.settings)

    @cached_property
    def images(self) -> ImageSearch:
        """The image and prompt collections beside this one (CLIP, RAG_IMAGE_EMBED_MODEL)."""
        return ImageSearch(self.settings, self.clip)

    @cached_property
    def retriever(self) -> HybridRetriever:
        return self._retriever(self.settings.top_k)

    @cached_property
    def answer_cache(self) -> AnswerCache:
        return AnswerCache(
            self.settings,
            self._model_id(),
            lambda: self.embedder,
            self.backend,
            self._collection,
            self._prompts,
        )

    @classmethod
    def from_env(cls, collection: str | None = None, **overrides: Any) -> RagApp:
        """Settings from arguments > environment > .env > defaults (see `Settings`)."""
        return cls(load_settings(**overrides), collection=collection)

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = build_answerer(self.settings)
        return self._answerer

    def _retriever(self, top_k: int, mode: RetrieverName | None = None) -> HybridRetriever:
        mode = mode or self.settings.retriever
        self._check_mode(mode)
        return HybridRetriever(
            self.backend,
            self.embedder,
            self.keyword,
            mode,
            top_k,
            self.reranker,
            self.settings.min_relevance,
        )

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.backend, self.embedder, self.chunker, self._listeners())

    def _listeners(self) -> list[KeywordSearch]:
        return [self.keyword] if self.keyword else []

    def ingest(
        self,
        items: Iterable[str | Path | Document],
        show_progress: bool = False,
        prune: bool = False,
    ) -> IngestReport:
        """Ingest file and folder paths and/or Documents; unchanged documents cost nothing.

        Image files go to the image collection (`images`), embedded with CLIP. Documents
        under the given paths whose files are gone are removed with `prune`, else listed in
        `report.gone`. Documents ingested under the id rule before 0.2 are renamed.
        """
        items = list(items)
        paths = [Path(i) for i in items if isinstance(i, str | Path)]
        documents, problems = load_paths(paths, self.settings.doc_root)
        documents += [i for i in items if isinstance(i, Document)]
        texts = [d for d in documents if not is_image_document(d)]
        pictures = [d for d in documents if is_image_document(d)]
        skipped = [p for p in problems if not p.ignored]
        report = (
            self.ingest_documents(texts, skipped, show_progress)
            if texts or not pictures
            else IngestReport(skipped=skipped)
        )
        if pictures:
            report.add(self.images.ingest_images(pictures, show_progress))
        report.ignored = [p for p in problems if p.ignored]
        if not paths:
            return report
        catalog = self.backend.documents()
        ingested = {d.doc_id for d in documents}
        doc_root = self.settings.doc_root
        renamed = [old for old in legacy_ids(paths, doc_root, ingested) if old in catalog]
        gone = gone_documents(paths, doc_root, catalog)
        if prune or pictures:
            gone_images = gone_documents(paths, doc_root, self.images.images.documents())
            if prune:
                self.images.delete(gone_images)
            gone += gone_images
        self.delete(renamed + gone if prune else renamed)
        report.pruned, report.gone = (gone, []) if prune else ([], gone)
        return report

    def ingest_texts(self, texts: Iterable[str]) -> IngestReport:
        """Ingest plain strings (ids from their content)."""
        return self.ingest_documents(documents_from_python(texts))

    def ingest_documents(
        self, documents: Sequence[Document], problems: Sequence[Any] = (), show_progress=False
    ) -> IngestReport:
        self._check_model_id()
        report = self._ingestor().ingest(documents, problems, show_progress)
        # Only after success: a failed ingest leaves the saved keyword index stale, and the
        # next run rebuilds it from the store (committing now would hide the first error).
        self._commit_keyword()
        return report

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Delete documents (ids, or paths of ingested files); returns those not in the store."""
        if not doc_ids:
            return []
        catalog = self.backend.documents()
        ids = [self._catalog_id(d, catalog) for d in doc_ids]
        missing = set(delete_documents(self.backend, ids, self._listeners()))
        self._commit_keyword()
        left = [given for given, doc_id in zip(doc_ids, ids, strict=True) if doc_id in missing]
        return self.images.delete(left) if left else []

    def _catalog_id(self, given: str, catalog: dict[str, DocRecord]) -> str:
        """`given` if it is an id, else the id of the file at that path (any spelling)."""
        if given in catalog:
            return given
        return document_id(Path(given), self.settings.doc_root)

    def _commit_keyword(self) -> None:
        keyword = self.__dict__.get("keyword")
        if keyword is not None:
            keyword.commit()

    def documents(self) -> list[DocRecord]:
        return sorted(self.backend.documents().values(), key=lambda r: r.doc_id)

    def check(self, repair: bool = False) -> CheckReport:
        """Compare catalog, store and keyword index; `repair` fixes what it can (see
        `rag_app.ingestion.consistency`). Run it while no ingest is running. BM25 in a Pinecone
        sparse index (PINECONE_SPARSE_INDEX) is not compared (the report says "not used")."""
        local = self.keyword if isinstance(self.keyword, KeywordSync) else None
        return check(self.backend, local, repair)

    def query(
        self, question: str, top_k: int | None = None, cache: bool = True, **options: Any
    ) -> Answer:
        """An answer with its numbered sources (`as_query_engine(**options).query`, as an
        `Answer`), from the answer cache when RAG_CACHE allows and no `options` are given."""
        self._check_question(question, top_k)
        engine = self.as_query_engine(similarity_top_k=top_k, **options)
        cache = cache and not options
        prompts = self._prompts(engine)
        if cache and (hit := self.answer_cache.lookup(question, top_k, prompts=prompts)):
            return hit
        with self.answerer.errors():
            response = engine.query(question)
        answer = self._answer(question, str(response), response.source_nodes)
        if cache:
            self.answer_cache.store(answer, top_k, prompts=prompts)
        return answer

    def stream_query(
        self, question: str, top_k: int | None = None, cache: bool = True, **options: Any
    ) -> tuple[Answer, Iterator[str]]:
        """The sources now and the answer text as it streams (`answer.text` fills in)."""
        self._check_question(question, top_k)
        engine = self.as_query_engine(similarity_top_k=top_k, streaming=True, **options)
        cache = cache and not options
        prompts = self._prompts(engine)
        if cache and (hit := self.answer_cache.lookup(question, top_k, prompts=prompts)):
            return hit, iter([hit.text])
        with self.answerer.errors():
            response = engine.query(question)
        answer = self._answer(question, "", response.source_nodes)
        pieces = filling(answer, response.response_gen, self.answerer)
        if cache:
            pieces = self.answer_cache.stream_through(answer, pieces, top_k, prompts=prompts)
        return answer, pieces

    def _check_question(self, question: str, top_k: int | None) -> None:
        """Bad input and an LLM misconfiguration are reported before the model loads."""
        _ = self.answerer
        check_question(question)
        check_top_k(top_k)

    def _prompts(self, engine: RetrieverQueryEngine | None = None) -> str:
        """The answer cache's fingerprint of the prompts `engine` (default: `query`'s) uses."""
        engine = engine or self.as_query_engine()
        return prompt_fingerprint(engine.get_prompts(), self.answerer.llm)

    def _answer(self, question: str, text: str, nodes: Sequence[NodeWithScore]) -> Answer:
        sources = [source_of(number, hit) for number, hit in enumerate(nodes, start=1)]
        return Answer(question, text, self.answerer.mode, sources)

    def chat(self, cache: bool = True) -> ChatSession:
        """A multi-turn session over `as_chat_engine()`, through the answer cache unless `cache`
        is False."""
        store = self.answer_cache if cache else None
        return ChatSession(self.as_chat_engine(), self.answerer, self._answer, store)

    # LlamaIndex's own objects over the same store, model, retriever and answers.

    @cached_property
    def embed_model(self) -> CachedEmbedding:
        """The LlamaIndex embedding model the store is built with (through the cache)."""
        return CachedEmbedding(self.embedder)

    @cached_property
    def vector_store(self) -> CatalogVectorStore:
        """The store as a LlamaIndex vector store whose writes keep the catalog."""
        return CatalogVectorStore(self._ingestor(), on_change=self._commit_keyword)

    @property
    def storage_context(self) -> StorageContext:
        return StorageContext.from_defaults(vector_store=self.vector_store)

    @cached_property
    def index(self) -> VectorStoreIndex:
        """A `VectorStoreIndex` over the store (`insert`, `delete_ref_doc`, `as_retriever`)."""
        return VectorStoreIndex.from_vector_store(self.vector_store, embed_model=self.embed_model)

    def as_query_engine(
        self, similarity_top_k: int | None = None, **kwargs: Any
    ) -> RetrieverQueryEngine:
        """A LlamaIndex `RetrieverQueryEngine` over the app's retriever, in every configuration.

        With an LLM, `kwargs` go to LlamaIndex's `get_response_synthesizer` (`response_mode`,
        `streaming`, `text_qa_template`, ...), except `node_postprocessors`, which go to the
        engine, and `retriever` ("hybrid", "dense", "keyword"), which overrides RAG_RETRIEVER.
        Offline the synthesizer is extractive: `streaming` applies, LLM options do not.
        Vector-store options (`filters`, `vector_store_query_mode`, `vector_store_kwargs`,
        `doc_ids`) make it retrieve from the vector store alone (`index.as_retriever`), since
        the keyword side of hybrid retrieval cannot apply them.
        """
        self._check_embedding()
        postprocessors = kwargs.pop("node_postprocessors", None)
        mode = kwargs.pop("retriever", None)
        top_k = similarity_top_k or self.settings.top_k
        store_options = {k: kwargs.pop(k) for k in VECTOR_STORE_OPTIONS if k in kwargs}
        retriever = (
            self.index.as_retriever(similarity_top_k=top_k, **store_options)
            if store_options
            else self._retriever(top_k, mode)
        )
        return RetrieverQueryEngine(
            retriever=retriever,
            response_synthesizer=self.answerer.synthesizer(**kwargs),
            node_postprocessors=postprocessors,
        )

    def as_chat_engine(
        self, similarity_top_k: int | None = None, **kwargs: Any
    ) -> CondensePlusContextChatEngine:
        """A LlamaIndex condense-plus-context chat engine over the app's retriever.

        Offline nothing is condensed (no LLM): each turn retrieves for its own message.
        """
        self._check_embedding()
        retriever = self._retriever(similarity_top_k or self.settings.top_k)
        return self.answerer.chat_engine(retriever, **kwargs)

    def ingest_prompts(self, path: str | Path) -> IngestReport:
        """Prompts (JSONL or CSV: id, prompt, optional image) for `search_prompts`."""
        return self.images.ingest_prompts(Path(path), self.settings.doc_root)

    def search_images(self, query: str | Path, top_k: int | None = None) -> list[ImageHit]:
        """Images for a description, or images like an image file (a `Path`)."""
        check_top_k(top_k)
        if isinstance(query, Path):
            return self.images.search_image(query, top_k or self.settings.top_k)
        return self.images.search_text(query, top_k or self.settings.top_k)

    def search_prompts(self, image: str | Path, top_k: int | None = None) -> list[PromptHit]:
        """Stored prompts nearest to an image (CLIP image vector against prompt vectors)."""
        check_top_k(top_k)
        return self.images.search_prompts(Path(image), top_k or self.settings.top_k)

    def classify_image(
        self, image: str | Path, labels: Sequence[str], template: str = DEFAULT_TEMPLATE
    ) -> list[tuple[str, float]]:
        """Zero-shot: `(label, probability)` per label, most probable first (no store needed)."""
        return classify_image(self.clip, Path(image), labels, template)

    def describe_image(self, image: str | Path) -> str:
        """A prompt-like description of the image by RAG_VISION_LLM."""
        from rag_app.images.vision import describe_image

        return describe_image(self.settings, Path(image))

    def generate_image(self, prompt: str, out: str | Path) -> Path:
        """An image for `prompt` by RAG_IMAGE_GEN, saved at `out`."""
        from rag_app.images.vision import generate_image

        return generate_image(self.settings, prompt, Path(out))

    def reimagine(
        self, image: str | Path, out_dir: str | Path, prompt: str | None = None
    ) -> Reimagined:
        """Images from the description, the original prompt and the nearest stored prompt,
        and a side-by-side sheet (see `rag_app.images.vision.reimagine`)."""
        from rag_app.images.vision import reimagine

        return reimagine(self.settings, self.images, Path(image), Path(out_dir), prompt)

    def migrate_to(self, to: str, to_collection: str | None = None, **options: Any) -> Any:
        """Copy this collection to store `to` without re-embedding; returns a
        `MigrationReport`. Options and target settings: `rag_app.migration.run.migrate`."""
        from rag_app.migration.run import migrate

        self.backend.flush()
        return migrate(
            self.settings, to, collection=self._collection, to_collection=to_collection, **options
        )

    def close(self) -> None:
        answer_cache = self.__dict__.get("answer_cache")
        if answer_cache is not None:
            answer_cache.close()
        super().close()
        images = self.__dict__.get("images")
        if images is not None:
            images.close()
        clip = self.__dict__.get("clip")
        if clip is not None and clip.cache:
            clip.cache.close()
