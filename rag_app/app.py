"""`RagApp`: the Python API that notebooks, scripts, the CLI and the eval all go through.

One object wires settings -> embedder -> backend (from the store factory) -> ingestion and
query paths, so switching RAG_VECTOR_STORE changes nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.schema import NodeWithScore

from rag_app.chunking import Chunker, default_chunk_size
from rag_app.consistency import CheckReport, check
from rag_app.embeddings import Embedder, build_embedder
from rag_app.ingestion import Ingestor, IngestReport
from rag_app.llms import Answer, Answerer, Source, build_answerer
from rag_app.loaders import documents_from_python, load_paths
from rag_app.rerank import build_reranker
from rag_app.retrieval import HybridRetriever, KeywordSync
from rag_app.settings import Settings, load_settings
from rag_app.stores.base import Backend, DocRecord
from rag_app.stores.registry import open_backend


class RagApp:
    """Ingest documents and answer questions over the configured vector store."""

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self._owns_embedder = embedder is None
        self.embedder = embedder or build_embedder(settings)
        self.backend: Backend = open_backend(settings, lambda: self.embedder.dimension, collection)
        self.chunker = Chunker(
            settings.chunk_size or default_chunk_size(self.embedder.max_tokens),
            settings.chunk_overlap,
            self.embedder.tokenize,
        )
        self.keyword = (
            None
            if settings.retriever == "dense"
            else KeywordSync(self.backend, self._keyword_dir())
        )
        self.retriever = HybridRetriever(
            self.backend,
            self.embedder,
            self.keyword,
            settings.retriever,
            settings.top_k,
            build_reranker(settings.reranker),
        )
        self._answerer: Answerer | None = None
        self._embedding_checked = False

    @classmethod
    def from_env(cls, collection: str | None = None, **overrides: Any) -> RagApp:
        """Settings from arguments > environment > .env > defaults (see `Settings`)."""
        return cls(load_settings(**overrides), collection=collection)

    def _keyword_dir(self) -> Path:
        where = f"{self.backend.location}|{getattr(self.backend, 'namespace', '')}"
        digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]
        return self.settings.data_dir / "keyword" / f"{self.backend.name}-{digest}"

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = build_answerer(self.settings)
        return self._answerer

    def _ingestor(self) -> Ingestor:
        listeners = [self.keyword] if self.keyword else []
        return Ingestor(self.backend, self.embedder, self.chunker, listeners)

    def ingest(
        self, items: Iterable[str | Path | Document], show_progress: bool = False
    ) -> IngestReport:
        """Ingest file and folder paths and/or Documents; unchanged documents cost nothing."""
        items = list(items)
        paths = [Path(i) for i in items if isinstance(i, str | Path)]
        documents, problems = load_paths(paths)
        documents += [i for i in items if isinstance(i, Document)]
        return self.ingest_documents(documents, problems, show_progress)

    def ingest_texts(self, texts: Iterable[str]) -> IngestReport:
        """Ingest plain strings (ids from their content)."""
        return self.ingest_documents(documents_from_python(texts))

    def ingest_documents(
        self, documents: Sequence[Document], problems: Sequence[Any] = (), show_progress=False
    ) -> IngestReport:
        try:
            return self._ingestor().ingest(documents, problems, show_progress)
        finally:
            if self.keyword:
                self.keyword.commit()

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Delete documents; returns the ids that were not in the store."""
        try:
            return self._ingestor().delete(doc_ids)
        finally:
            if self.keyword:
                self.keyword.commit()

    def documents(self) -> list[DocRecord]:
        return sorted(self.backend.documents().values(), key=lambda r: r.doc_id)

    def check(self, repair: bool = False) -> CheckReport:
        """Compare catalog, store and keyword index; `repair` fixes what it can (see
        `rag_app.consistency`). Run it while no ingest is running."""
        return check(self.backend, self.keyword, repair)

    def retrieve(self, question: str, top_k: int | None = None) -> list[Source]:
        """The sources for a question, best first (no answer)."""
        if not self._embedding_checked:
            self.backend.check_embedding(self.embedder.model_id, self.embedder.dimension)
            self._embedding_checked = True
        found = self.retriever.search(question, top_k or self.settings.top_k)
        return [_source(number, hit) for number, hit in enumerate(found, start=1)]

    def query(self, question: str, top_k: int | None = None) -> Answer:
        """An answer with its numbered sources."""
        sources = self.retrieve(question, top_k)
        text = self.answerer.answer(question, sources)
        return Answer(question, text, self.answerer.mode, sources)

    def stream_query(self, question: str, top_k: int | None = None) -> tuple[Answer, Iterator[str]]:
        """The sources now and the answer text as it streams (`answer.text` fills in)."""
        sources = self.retrieve(question, top_k)
        answer = Answer(question, "", self.answerer.mode, sources)

        def pieces() -> Iterator[str]:
            for piece in self.answerer.stream(question, sources):
                answer.text += piece
                yield piece

        return answer, pieces()

    def chat(self) -> ChatSession:
        return ChatSession(self)

    def as_query_engine(self) -> Any:
        """A LlamaIndex query engine over the same retriever (OpenAI LLM required)."""
        from llama_index.core.query_engine import RetrieverQueryEngine

        from rag_app.llms import OpenAIAnswerer

        answerer = self.answerer
        if not isinstance(answerer, OpenAIAnswerer):
            raise RuntimeError(
                "as_query_engine() needs an LLM: set OPENAI_API_KEY or RAG_LLM=openai:<model>; "
                "offline, use RagApp.query(), which answers extractively."
            )
        return RetrieverQueryEngine.from_args(self.retriever, llm=answerer.llm)

    def close(self) -> None:
        self.backend.close()
        if self._owns_embedder and self.embedder.cache:
            self.embedder.cache.close()

    def __enter__(self) -> RagApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChatSession:
    """Multi-turn questions: each turn retrieves for its own question; the LLM sees the history."""

    def __init__(self, app: RagApp) -> None:
        self.app = app
        self.history: list[ChatMessage] = []

    def ask(self, question: str) -> tuple[Answer, Iterator[str]]:
        sources = self.app.retrieve(question)
        answer = Answer(question, "", self.app.answerer.mode, sources)

        def pieces() -> Iterator[str]:
            for piece in self.app.answerer.stream(question, sources, self.history):
                answer.text += piece
                yield piece
            self.history += [
                ChatMessage(role=MessageRole.USER, content=question),
                ChatMessage(role=MessageRole.ASSISTANT, content=answer.text),
            ]

        return answer, pieces()


def _source(number: int, hit: NodeWithScore) -> Source:
    node = hit.node
    return Source(
        number=number,
        doc_id=str(node.metadata.get("doc_id") or node.ref_doc_id or ""),
        score=float(hit.score or 0.0),
        text=node.get_content(),
        start_char=node.start_char_idx,
        end_char=node.end_char_idx,
        source=str(node.metadata.get("source", "")),
    )
