"""The dense and keyword candidate lists of every question of every shared QA set, cached.

Why: choosing a fusion rule means trying dozens of rules on thousands of questions; each rule
only needs the two candidate lists the hybrid retriever fuses, so they are collected once
through the app's own ingest, chunks and retrievers (memory store, the default e5 model) and
kept as JSON under the cache folder. Re-running a rule costs milliseconds, re-collecting a set
only its query embeddings (the chunk embeddings stay in the embedding cache).

Each question keeps its top CANDIDATES of both lists ((chunk id, score) pairs: cosine, BM25),
the ids among them that are relevant (the judgement `rag-app eval` makes: a chunk of the gold
article covering an answer span; for KLUE the partner sentence; for Belebele the passage),
and whether it is in the fitting half (`fit`).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.schema import TextNode

from rag_app.embeddings.models import Embedder
from rag_app.evaluation.retrieval import read_belebele, read_pairs, scratch_app
from rag_app.ingestion.chunking import Chunker
from rag_app.ingestion.loaders import SquadQuestion, read_squad
from rag_app.settings import load_settings
from rag_lab.data import shared_dir

DATA = shared_dir() / "data"
#: name -> file; `.jsonl` is Belebele, `klue` the STS pairs, the rest SQuAD format.
SETS = {
    "xquad-en": DATA / "xquad" / "xquad.en.json",
    "xquad-zh": DATA / "xquad" / "xquad.zh.json",
    "klue": DATA / "klue" / "klue-sts-v1.1_dev.json",
    "tydi-dev": DATA / "tydiqa-ko" / "tydiqa-goldp-ko-dev.json",
    "tydi-train": DATA / "tydiqa-ko" / "tydiqa-goldp-ko-train.json",
    "belebele": DATA / "belebele" / "kor_Hang.jsonl",
}
LANGUAGE = {
    "xquad-en": "en",
    "xquad-zh": "zh",
    "klue": "ko",
    "tydi-dev": "ko",
    "tydi-train": "ko",
    "belebele": "ko",
}
#: What the hybrid retriever asks each list for at the eval's top_k of 10.
CANDIDATES = 40
CHUNKINGS = ("window", "paragraph")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass
class Question:
    dense: list[tuple[str, float]]
    keyword: list[tuple[str, float]]
    relevant: set[str]
    fit: bool


class ParagraphChunker(Chunker):
    """Passage-aligned chunks: every paragraph (blank-line separated) starts a chunk and no
    chunk crosses a paragraph end; a paragraph longer than the chunk size is split as usual."""

    def iter_split(self, document: Document) -> Iterator[TextNode]:
        searched = {k: v for k, v in document.metadata.items() if k in ("title",)}
        for offset, text in paragraphs(document.text):
            yield from self._split_section(document.doc_id, text, offset, searched)


def paragraphs(text: str) -> Iterator[tuple[int, str]]:
    """(offset, text) of each non-blank paragraph."""
    start = 0
    for match in [*_PARAGRAPH.finditer(text), None]:
        end = match.start() if match else len(text)
        if text[start:end].strip():
            yield start, text[start:end]
        start = match.end() if match else end


def in_fit_half(key: str) -> bool:
    """A stable half of the articles (XQuAD has no train split: half fits, half is held out)."""
    return hashlib.sha1(key.encode()).digest()[0] % 2 == 0


def load(name: str) -> tuple[list[Document], list[tuple[str, Any]]]:
    """The set's documents and (question, judgement) pairs; the judgement is a SquadQuestion or
    the gold document id (KLUE)."""
    path = SETS[name]
    if name == "klue":
        documents, queries = read_pairs(path)
        return documents, [(q, doc_id) for q, doc_id in queries]
    documents, questions = read_belebele(path) if path.suffix == ".jsonl" else read_squad(path)
    return documents, [(q.question, q) for q in questions]


def collect(
    name: str, chunking: str, cache_dir: Path, embedder: Embedder
) -> tuple[list[Question], dict[str, float]]:
    """The questions' candidate lists and the set's chunk statistics, from the cache if there."""
    cached = cache_dir / f"lists-{name}-{chunking}-{embedder.model_id.replace(':', '_')}.json"
    if cached.is_file():
        stored = json.loads(cached.read_text(encoding="utf-8"))
        return [_question(row) for row in stored["questions"]], stored["chunks"]
    documents, asked = load(name)
    settings = load_settings(data_dir=cache_dir / "data", vector_store="memory")
    with scratch_app(settings, embedder) as app:
        if chunking == "paragraph":
            window = app.chunker
            app.__dict__["chunker"] = ParagraphChunker(
                window.chunk_size, settings.chunk_overlap, embedder.tokenize
            )
        app.ingest_documents(documents)
        chunks = [n for d in documents for n in app.chunker.split(d)]
        rows = [_lists(app, question, judged) for question, judged in asked]
    stats = {
        "n_chunks": len(chunks),
        "chars_mean": round(statistics.fmean(len(n.text) for n in chunks), 1),
        "chars_median": statistics.median(len(n.text) for n in chunks),
        "tokens_mean": round(statistics.fmean(len(embedder.tokenize(n.text)) for n in chunks), 1),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"questions": rows, "chunks": stats}), encoding="utf-8")
    return [_question(row) for row in rows], stats


def _lists(app: Any, question: str, judged: Any) -> dict[str, Any]:
    retriever = app.retriever
    dense_hits = retriever._dense(question, CANDIDATES)
    keyword = retriever._keyword(question, CANDIDATES)
    nodes = {hit.node.node_id: hit.node for hit in dense_hits}
    missing = [i for i, _ in keyword if i not in nodes]
    nodes |= app.backend.fetch_nodes(missing) if missing else {}
    gold = judged.doc_id if isinstance(judged, SquadQuestion) else judged
    relevant = [i for i, node in nodes.items() if _relevant(node, judged)]
    return {
        "dense": [(hit.node.node_id, float(hit.score or 0.0)) for hit in dense_hits],
        "keyword": keyword,
        "relevant": relevant,
        "fit": in_fit_half(gold),
    }


def _relevant(node: TextNode, judged: Any) -> bool:
    doc_id = str(node.metadata.get("doc_id") or node.ref_doc_id or "")
    if not isinstance(judged, SquadQuestion):
        return doc_id == judged
    if doc_id != judged.doc_id or node.start_char_idx is None or node.end_char_idx is None:
        return False
    return any(node.start_char_idx <= s and e <= node.end_char_idx for s, e in judged.answer_spans)


def _question(row: dict[str, Any]) -> Question:
    return Question(
        dense=[(i, float(s)) for i, s in row["dense"]],
        keyword=[(i, float(s)) for i, s in row["keyword"]],
        relevant=set(row["relevant"]),
        fit=bool(row["fit"]),
    )


def available(names: Sequence[str]) -> list[str]:
    return [name for name in names if SETS[name].is_file()]
