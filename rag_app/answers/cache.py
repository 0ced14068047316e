"""Answer cache: an exact layer, then a semantic one, in a side collection of the vector store.

RAG_CACHE=exact serves a stored answer when the same question comes again; RAG_CACHE=semantic
also serves one when a new question embeds within RAG_CACHE_THRESHOLD (cosine) of a stored
question. Entries live in the configured backend (memory, Chroma, Pinecone) in a collection
beside the documents, opened through the store factory, so every process and machine that uses
the store shares them. One entry is a vector (the question's query embedding) whose id is the
exact key and whose text is the answer with its sources.

Correctness comes first. An entry is found only under its context: the LLM, the prompt
templates of the LlamaIndex engine that answers, the retrieval settings, the chunking, the
embedding model and the chat history. It
records the content hash of every document it was answered from, and a lookup serves it only
while the catalog still holds those documents with those hashes, so re-ingesting a changed
source or deleting one invalidates every answer built on it (the stale entry is deleted when
found). Answers with no sources are never stored (a later ingest could change them with
nothing to notice it), and extractive answers only with RAG_CACHE_EXTRACTIVE=true.

Hand-written because LlamaIndex has no answer cache (its `IngestionCache` caches
transformations), and the caches that exist (GPTCache, LangChain's) keep their own storage
instead of the app's pluggable vector store and know nothing of the document catalog.
Hit/miss counters are one record in the cache collection's catalog. A lookup only counts in
memory (a store write costs more than the rest of a hit); the counts are added to the record,
read-modify-write, by the next store, `stats`, `close` or every MAX_UNSAVED_COUNTS lookups.
Under concurrent writers or a killed process a count can be lost, never an answer made wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from rag_app.answers.types import Answer, Source
from rag_app.embeddings.models import Embedder
from rag_app.settings import Settings
from rag_app.stores.base import Backend, doc_key
from rag_app.stores.registry import open_backend

log = logging.getLogger(__name__)

CACHE_SUFFIX = "__answers"
STATS_KEY = "__stats__"
#: Semantic candidates examined per lookup (a stale best candidate must not hide a valid one).
SEMANTIC_CANDIDATES = 4
#: Misses remembered until their answer is stored (streams that never finish are dropped).
MAX_PENDING = 64
#: Lookups counted in memory before the counts are written anyway (a process serving only hits).
MAX_UNSAVED_COUNTS = 32
#: Pinecone keeps at most 40 KB of metadata per vector; larger answers are not stored.
MAX_ENTRY_BYTES = 36_000
#: Cosine thresholds by embedder `model_id`, measured by
#: `python -m benchmarks.cache_bench --models ...` (docs/benchmarks.md, "Answer cache"): the
#: lowest threshold with at most 1% false hits on KLUE-STS and English question pairs.
THRESHOLDS: dict[str, float] = {
    "e5:multilingual-e5-small-q4": 0.975,
    "use:universal-sentence-encoder-multilingual-3": 0.865,
    "local:all-MiniLM-L6-v2": 0.94,
}
#: For a model not measured yet: strict, so a false hit stays unlikely.
FALLBACK_THRESHOLD = 0.97


def default_threshold(model_id: str) -> float:
    return THRESHOLDS.get(model_id, FALLBACK_THRESHOLD)


def cache_collection(documents: Backend, collection: str, model_id: str) -> str:
    """The side collection beside `collection`, one per embedding model (vector spaces differ)."""
    base = getattr(documents, "namespace", "") or collection
    return f"{base}{CACHE_SUFFIX}-{_digest(model_id, 8)}"


def normalize(question: str) -> str:
    """Unicode NFC and collapsed whitespace: the same question typed twice keys the same."""
    return " ".join(unicodedata.normalize("NFC", question).split())


def prompt_fingerprint(
    prompts: Mapping[str, BasePromptTemplate | str | None], llm: LLM | None = None
) -> str:
    """Changes whenever a prompt an engine answers with changes: `engine.get_prompts()` (a
    user's `text_qa_template` included), each template as LlamaIndex selects it for `llm`."""
    texts = {
        name: p.get_template(llm=llm) if isinstance(p, BasePromptTemplate) else p
        for name, p in prompts.items()
    }
    return _digest(json.dumps(texts, ensure_ascii=False, sort_keys=True), 16)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class CacheStats:
    entries: int
    hits: int
    misses: int
    exact_hits: int
    semantic_hits: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class AnswerCache:
    """Looks answers up before RagApp answers and stores them after; opens its store lazily."""

    def __init__(
        self,
        settings: Settings,
        model_id: str,
        embedder: Callable[[], Embedder],
        documents: Backend,
        collection: str,
        query_prompts: Callable[[], str],
    ) -> None:
        """`embedder` is called on the first semantic lookup or store, so an exact hit, `cache
        stats` and `cache clear` never load the model. `query_prompts` fingerprints the prompts
        of `RagApp.query`'s engine: the context of a lookup or store that names no others."""
        self.settings = settings
        self.query_prompts = query_prompts
        self.model_id = model_id
        self._embedder = embedder
        self.documents = documents
        self.collection = cache_collection(documents, collection, model_id)
        self.threshold = (
            settings.cache_threshold
            if settings.cache_threshold is not None
            else default_threshold(model_id)
        )
        self._backend: Backend | None = None
        self._unsaved: Counter[str] = Counter()
        self._embedded: tuple[str, list[float]] = ("", [])
        #: The catalog as a miss saw it, before retrieval: a document that changes while the
        #: answer is written then mismatches its recorded hash, so the entry is never served.
        self._catalog_at_miss: dict[str, dict[str, str]] = {}

    @property
    def enabled(self) -> bool:
        """Off, or extractive answers that are cheaper to recompute than to look up."""
        if self.settings.cache == "off":
            return False
        return self.settings.resolved_llm != "extractive" or self.settings.cache_extractive

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = open_backend(
                self.settings, lambda: self._embedder().dimension, self.collection
            )
        return self._backend

    def context_key(
        self,
        top_k: int | None,
        history: Sequence[ChatMessage] = (),
        prompts: str | None = None,
    ) -> str:
        """Everything besides the question and the documents that changes the answer."""
        s = self.settings
        context = {
            "llm": s.resolved_llm,
            "prompt": prompts or self.query_prompts(),
            "top_k": top_k or s.top_k,
            "retriever": s.retriever,
            "sparse_index": s.pinecone_sparse_index,
            "reranker": s.reranker,
            "chunking": [s.chunk_size, s.chunk_overlap],
            "embed_model": self.model_id,
            "history": [[m.role.value, m.content] for m in history],
        }
        return _digest(json.dumps(context, ensure_ascii=False, sort_keys=True), 32)

    def entry_id(self, question: str, context: str) -> str:
        return _digest(context + "\n" + normalize(question), 40)

    # ------------------------------------------------------------------ lookup and store

    def lookup(
        self,
        question: str,
        top_k: int | None = None,
        history: Sequence[ChatMessage] = (),
        prompts: str | None = None,
    ) -> Answer | None:
        """A still-valid stored answer for this question in this context, or None (a miss)."""
        if not self.enabled:
            return None
        context = self.context_key(top_k, history, prompts)
        answer = self._exact(question, context)
        if answer is None and self.settings.cache == "semantic":
            answer = self._semantic(question, context)
        self._count("hits" if answer else "misses", answer)
        if answer is None:
            if len(self._catalog_at_miss) >= MAX_PENDING:
                self._catalog_at_miss.clear()
            self._catalog_at_miss[normalize(question)] = self._catalog()
        return answer

    def store(
        self,
        answer: Answer,
        top_k: int | None = None,
        history: Sequence[ChatMessage] = (),
        prompts: str | None = None,
    ) -> None:
        """Keep a complete answer, with the content hash of every document it came from."""
        if not self.enabled or not answer.sources or not answer.text:
            return
        catalog = self._catalog_at_miss.pop(normalize(answer.question), None) or self._catalog()
        cited = {s.doc_id: catalog.get(s.doc_id) for s in answer.sources}
        if any(digest is None for digest in cited.values()):
            return  # a source was being written: nothing certain to record
        payload = {
            "question": answer.question,
            "text": answer.text,
            "mode": answer.mode,
            "sources": [asdict(s) for s in answer.sources],
            "cited": cited,
        }
        text = json.dumps(payload, ensure_ascii=False)
        if len(text.encode("utf-8")) > MAX_ENTRY_BYTES:
            log.info("answer cache: an answer over %d bytes was not stored", MAX_ENTRY_BYTES)
            return
        context = self.context_key(top_k, history, prompts)
        node = TextNode(
            id_=self.entry_id(answer.question, context),
            text=text,
            embedding=self._embed(answer.question),
            metadata={"context": context},
        )
        self.backend.upsert([node])
        self.backend.flush()
        self._save_counts()

    def stream_through(
        self,
        answer: Answer,
        pieces: Iterator[str],
        top_k: int | None = None,
        history: Sequence[ChatMessage] = (),
        prompts: str | None = None,
    ) -> Iterator[str]:
        """Pass a streamed answer through; store it once the stream is complete."""
        yield from pieces
        self.store(answer, top_k, history, prompts)

    def _exact(self, question: str, context: str) -> Answer | None:
        entry_id = self.entry_id(question, context)
        node = self.backend.fetch_nodes([entry_id]).get(entry_id)
        if node is None or not self._valid(entry_id, node.get_content()):
            return None
        return _answer(question, node.get_content(), "cache:exact")

    def _semantic(self, question: str, context: str) -> Answer | None:
        vector = self._embed(question)
        only_context = MetadataFilters(filters=[MetadataFilter(key="context", value=context)])
        for hit in self.backend.query(vector, SEMANTIC_CANDIDATES, only_context):
            score = float(hit.score or 0.0)
            if score < self.threshold:
                break
            text = hit.node.get_content()
            if self._valid(hit.node.node_id, text):
                original = json.loads(text)["question"]
                mode = f'cache:semantic (similarity {score:.2f} to "{_clip(original)}")'
                return _answer(question, text, mode)
        return None

    def _embed(self, question: str) -> list[float]:
        """The question's query embedding; a miss embeds once for lookup and store."""
        text = normalize(question)
        if self._embedded[0] != text:
            self._embedded = (text, [float(v) for v in self._embedder().embed_query(text)])
        return self._embedded[1]

    def _valid(self, entry_id: str, text: str) -> bool:
        """True while every cited document is in the catalog unchanged; else drop the entry.
        Reads only the cited documents' records: a remote store fetches those, not the whole
        catalog (which made a semantic hit on embedded Chroma twice as slow as on memory)."""
        cited: dict[str, str] = json.loads(text)["cited"]
        keys = {doc_key(doc_id): digest for doc_id, digest in cited.items()}
        records = self.documents.read_records_by_key(list(keys))
        if all(_complete_hash(records.get(key)) == digest for key, digest in keys.items()):
            return True
        self.backend.delete_chunks([entry_id])
        self.backend.flush()
        return False

    def _catalog(self) -> dict[str, str]:
        """Content hash of every completely ingested document, by id."""
        return {d: r.content_hash for d, r in self.documents.documents().items() if r.complete}

    # ------------------------------------------------------------------ stats and clear

    def _count(self, field: str, answer: Answer | None) -> None:
        self._unsaved[field] += 1
        if answer is not None:
            self._unsaved["exact_hits" if answer.mode == "cache:exact" else "semantic_hits"] += 1
        if self._unsaved["hits"] + self._unsaved["misses"] >= MAX_UNSAVED_COUNTS:
            self._save_counts()

    def _save_counts(self) -> None:
        if self._unsaved:
            counts = self._counts()
            counts.update({k: v + self._unsaved[k] for k, v in counts.items()})
            self.backend.write_records({STATS_KEY: counts})
            self._unsaved.clear()

    def _counts(self) -> dict[str, int]:
        stored = self.backend.read_records().get(STATS_KEY, {})
        return {k: int(stored.get(k, 0)) for k in CacheStats.__dataclass_fields__ if k != "entries"}

    def stats(self) -> CacheStats:
        self._save_counts()
        return CacheStats(entries=self.backend.count(), **self._counts())

    def clear(self) -> None:
        """Remove every entry and the counters (the documents are untouched)."""
        self._unsaved.clear()
        self.backend.drop()
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            self._save_counts()
            self._backend.close()
            self._backend = None


def _answer(question: str, text: str, mode: str) -> Answer:
    payload: dict[str, Any] = json.loads(text)
    sources = [Source(**s) for s in payload["sources"]]
    return Answer(question, payload["text"], mode, sources)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _complete_hash(record: dict[str, Any] | None) -> str | None:
    """The content hash of a completely ingested document's catalog record, else None."""
    return record["content_hash"] if record and record.get("complete") else None
