"""BM25 keyword search run by Pinecone: a sparse index holds every chunk's BM25 term weights.

Why: the local keyword index (``rag_app.retrieval.keyword_index.KeywordIndex``) keeps every chunk's
tokens on the client and is rebuilt on each machine, so it grows with the corpus on every client.
With ``PINECONE_SPARSE_INDEX`` set, the keyword half of hybrid retrieval runs in Pinecone instead.
A sparse index scores a query by the dot product of sparse vectors, which is Lucene BM25 (the
scoring of ``KeywordIndex``, same tokenizer, ``BM25_K1`` and ``BM25_B``) when

* a chunk's vector holds, per term, ``tf / (tf + k1 * (1 - b + b * dl / avgdl))``, and
* the query's vector holds, per query term, ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``
  (times the term's count in the query).

Term ids are the first 4 bytes of the term's BLAKE2b digest; two terms of one corpus share an
id with probability ~n²/2³³ (about one pair in a 100k-term vocabulary), which only merges
their weights. The statistics BM25 needs (N, the total token count, each term's df) live in
the sparse index too, in the side namespace ``<namespace>__bm25``: one record per term (its
sparse vector is the term's own id, ``metadata.df`` its document frequency) and one corpus
record. A query reads only its own terms' records, so the client holds nothing that grows
with the corpus. The query-adaptive fusion (``rag_app.retrieval.fusion``) still merges the dense and
the keyword lists, exactly as with the local index.

Approximations, because Pinecone cannot renormalise stored vectors: ``avgdl`` is the corpus
average when a chunk is written, and df updates are read-modify-write after the chunks are
written, so two processes writing one namespace at once, or an ingest killed in between, can
lose counts (they weight terms; nothing reads them as counts). A chunk's stored vector also
says which terms it held, so replacing or deleting it takes its terms' counts back without
re-tokenizing anything.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pinecone import ServerlessSpec
from pinecone.errors.exceptions import PineconeException

from rag_app.errors import ConfigError, RagAppError
from rag_app.retrieval.keyword_index import BM25_B, BM25_K1, tokenize, tokenize_many
from rag_app.settings import Settings, check_sparse_index_settings
from rag_app.stores.base import batched
from rag_app.stores.pinecone import (
    FETCH_BATCH,
    MAX_UPSERT_VECTORS,
    RETRY_POLICY,
    PineconeBackend,
    split_upserts,
)
from rag_app.util.retry import RetryingProxy

STATS_SUFFIX = "__bm25"
CORPUS_ID = "corpus"
#: Any fixed sparse entry: records of a sparse index need one; the corpus record's is unused.
CORPUS_VECTOR = {"indices": [0], "values": [1.0]}


def term_id(term: str) -> int:
    """A stable 32-bit id for a term, the same on every machine and in every process."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big")


def idf(chunks: int, df: int) -> float:
    """Lucene's BM25 idf, as bm25s computes it for ``KeywordIndex``."""
    return math.log1p((chunks - df + 0.5) / (df + 0.5))


def chunk_vector(tokens: Sequence[str], avgdl: float) -> dict[str, list]:
    """The BM25 document-side weights of one chunk, as sparse values."""
    counts = Counter(term_id(t) for t in tokens)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * len(tokens) / avgdl)
    ids = sorted(counts)
    return {"indices": ids, "values": [counts[i] / (counts[i] + norm) for i in ids]}


@dataclass
class Corpus:
    """What BM25 needs to know about the whole namespace."""

    chunks: int = 0
    tokens: int = 0

    @property
    def avgdl(self) -> float:
        return max(self.tokens / self.chunks, 1.0) if self.chunks else 1.0


class PineconeKeyword:
    """Keyword search over one namespace of a Pinecone sparse index, kept in sync on ingest."""

    def __init__(self, index: Any, namespace: str) -> None:
        self.index = index
        self.namespace = namespace
        self.stats_namespace = namespace + STATS_SUFFIX

    # The ingestion path's ChangeListener.

    def chunks_written(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self.prepare_written(ids, texts)()

    def prepare_written(self, ids: Sequence[str], texts: Sequence[str]) -> Callable[[], None]:
        """Tokenise now (any thread); read the stored statistics and write when called."""
        tokens = tokenize_many(list(texts))
        return lambda: self._write_tokens(ids, tokens)

    def _write_tokens(self, ids: Sequence[str], tokens: list[list[str]]) -> None:
        old = self._stored(ids)
        corpus = self._corpus()
        corpus.chunks += sum(1 for t in tokens if t) - len(old)
        corpus.tokens += sum(len(t) for t in tokens) - sum(length for _, length in old.values())
        avgdl = corpus.avgdl
        delta: Counter[int] = Counter()
        for terms, _ in old.values():
            delta.subtract(terms)
        records = []
        for chunk_id, chunk_tokens in zip(ids, tokens, strict=True):
            if chunk_tokens:
                vector = chunk_vector(chunk_tokens, avgdl)
                delta.update(vector["indices"])
                records.append(_record(chunk_id, vector, {"length": len(chunk_tokens)}))
        empty = [i for i, t in zip(ids, tokens, strict=True) if not t and i in old]
        self._upsert(records, self.namespace)
        self._delete(empty, self.namespace)
        self._write_stats(delta, corpus)

    def chunks_deleted(self, ids: Sequence[str]) -> None:
        old = self._stored(ids)
        if not old:
            return
        corpus = self._corpus()
        corpus.chunks -= len(old)
        corpus.tokens -= sum(length for _, length in old.values())
        delta: Counter[int] = Counter()
        for terms, _ in old.values():
            delta.subtract(terms)
        self._delete(list(old), self.namespace)
        self._write_stats(delta, corpus)

    def commit(self) -> None:
        """Nothing to persist: every change went to Pinecone when it happened."""

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """The top_k chunk ids by BM25 score, best first, scored by Pinecone."""
        sparse = self.query_vector(query) if top_k > 0 else None
        if sparse is None:
            return []
        result = self.index.query(sparse_vector=sparse, top_k=top_k, namespace=self.namespace)
        return [(match.id, float(match.score)) for match in result.matches]

    def query_vector(self, query: str) -> dict[str, list] | None:
        """The BM25 query side (idf per query term) as sparse values; None if no term is known."""
        counts = Counter(term_id(t) for t in tokenize(query, query=True))
        corpus = self._corpus()
        if not counts or not corpus.chunks:
            return None
        df = self._df(list(counts))
        weights = {t: idf(corpus.chunks, df[t]) * counts[t] for t in counts if df.get(t)}
        if not weights:
            return None
        terms = sorted(weights)
        return {"indices": terms, "values": [weights[t] for t in terms]}

    def drop(self) -> None:
        """Delete every chunk vector and statistic of this namespace."""
        for namespace in (self.namespace, self.stats_namespace):
            if self.index.list_paginated(namespace=namespace, limit=1).vectors:
                self.index.delete(delete_all=True, namespace=namespace)

    # Pinecone reads and writes.

    def _fetch(self, namespace: str, ids: Sequence[str]) -> Iterator[tuple[str, Any]]:
        for part in batched(list(ids), FETCH_BATCH):
            yield from self.index.fetch(ids=list(part), namespace=namespace).vectors.items()

    def _stored(self, ids: Sequence[str]) -> dict[str, tuple[list[int], int]]:
        """The terms and token count of each of *ids* already in the index."""
        return {
            chunk_id: (list(vector.sparse_values.indices), int(vector.metadata["length"]))
            for chunk_id, vector in self._fetch(self.namespace, ids)
        }

    def _corpus(self) -> Corpus:
        for _, vector in self._fetch(self.stats_namespace, [CORPUS_ID]):
            return Corpus(int(vector.metadata["chunks"]), int(vector.metadata["tokens"]))
        return Corpus()

    def _df(self, terms: Sequence[int]) -> dict[int, int]:
        found = self._fetch(self.stats_namespace, [f"t{t}" for t in terms])
        return {int(key[1:]): int(vector.metadata["df"]) for key, vector in found}

    def _write_stats(self, delta: Counter[int], corpus: Corpus) -> None:
        changed = [t for t, change in delta.items() if change]
        current = self._df(changed)
        updated = {t: current.get(t, 0) + delta[t] for t in changed}
        records = [
            _record(f"t{t}", {"indices": [t], "values": [1.0]}, {"df": df})
            for t, df in updated.items()
            if df > 0
        ]
        gone = [f"t{t}" for t, df in updated.items() if df <= 0 and t in current]
        records.append(
            _record(CORPUS_ID, CORPUS_VECTOR, {"chunks": corpus.chunks, "tokens": corpus.tokens})
        )
        self._upsert(records, self.stats_namespace)
        self._delete(gone, self.stats_namespace)

    def _upsert(self, records: list[dict[str, Any]], namespace: str) -> None:
        for part in split_upserts(records):
            self.index.upsert(vectors=part, namespace=namespace, show_progress=False)

    def _delete(self, ids: Sequence[str], namespace: str) -> None:
        for part in batched(list(ids), MAX_UPSERT_VECTORS):
            self.index.delete(ids=list(part), namespace=namespace)


def _record(record_id: str, sparse: dict[str, list], metadata: dict[str, int]) -> dict[str, Any]:
    return {"id": record_id, "sparse_values": sparse, "metadata": metadata}


def open_pinecone_keyword(backend: Any, settings: Settings) -> PineconeKeyword:
    """The keyword search of *backend*'s namespace in the sparse index PINECONE_SPARSE_INDEX."""
    check_sparse_index_settings(settings)
    assert isinstance(backend, PineconeBackend)
    name = settings.pinecone_sparse_index
    client = backend.client
    try:
        if not client.has_index(name):
            client.create_index(
                name=name,
                metric="dotproduct",
                vector_type="sparse",
                spec=ServerlessSpec(cloud=settings.pinecone_cloud, region=settings.pinecone_region),
            )
        description = client.describe_index(name)
    except PineconeException as exc:
        raise RagAppError(
            f"Pinecone refused to open sparse index {name!r}: {exc}. Check "
            "PINECONE_SPARSE_INDEX, PINECONE_CLOUD and PINECONE_REGION."
        ) from None
    if description.vector_type != "sparse":
        raise ConfigError(
            f"PINECONE_SPARSE_INDEX={name!r} is a {description.vector_type} index; name a "
            "sparse index (it is created for you when missing)."
        )
    host = description.host
    if settings.pinecone_host:
        host = "http://" + host.split("://", 1)[-1]
    index = RetryingProxy(client.Index(host=host), f"Pinecone sparse index {name!r}", RETRY_POLICY)
    return PineconeKeyword(index, backend.namespace)
