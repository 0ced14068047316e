"""The offline answer: the retrieved chunks' best sentences for the question, each cited.

A `BaseSynthesizer` that answers with the sentences sharing the most (rare) keywords with the
question, each marked with its source number. It never pretends to be an LLM. Sentence scoring
reuses the keyword tokenizer so Korean particles and English inflections match. Only relevant
sources are quoted; when none is, the answer says so in the question's language.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.indices.prompt_helper import ChatPromptHelper, PromptHelper
from llama_index.core.llms import MockLLM
from llama_index.core.response_synthesizers import BaseSynthesizer
from llama_index.core.schema import NodeWithScore, QueryType

from rag_app.answers.types import Source
from rag_app.retrieval.keyword_index import has_hangul, tokenize, tokenize_many
from rag_app.retrieval.relevance import nothing_relevant_message
from rag_app.retrieval.retriever import is_relevant

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+")


PARAGRAPH_BOUNDARY = re.compile(r"\n\s*\n")


EXTRACTIVE_SENTENCES = 3


NO_SOURCES = "No sources were found for this question."


def sentences(text: str) -> list[str]:
    """Sentences of a chunk: Markdown headings dropped, wrapped lines joined."""
    found = []
    for paragraph in PARAGRAPH_BOUNDARY.split(text):
        lines = [line for line in paragraph.splitlines() if not line.lstrip().startswith("#")]
        joined = " ".join(line.strip() for line in lines if line.strip())
        found += [s for s in SENTENCE_BOUNDARY.split(joined) if s.strip()]
    return found


def extract_answer(question: str, sources: Sequence[Source]) -> str:
    """The best sentences of the relevant sources for the question, marked with source numbers."""
    if sources and not any(s.relevant for s in sources):
        return nothing_relevant_message(question)
    candidates = [
        (source.number, rank, sentence)
        for rank, source in enumerate(sources)
        if source.relevant
        for sentence in sentences(source.text)
    ]
    if not candidates:
        return NO_SOURCES
    korean = "kiwi+bigram" if has_hangul(question) else "bigram"
    tokens = [set(t) for t in tokenize_many([c[2] for c in candidates], korean=korean)]
    document_frequency = Counter(t for sentence_tokens in tokens for t in sentence_tokens)
    query = set(tokenize(question))
    total = len(candidates)

    def score(index: int) -> float:
        shared = query & tokens[index]
        weight = sum(math.log(1 + total / document_frequency[t]) for t in shared)
        return weight - 0.01 * candidates[index][1]

    ranked = sorted(range(total), key=score, reverse=True)
    best = [i for i in ranked[:EXTRACTIVE_SENTENCES] if score(i) > 0] or ranked[:1]
    return " ".join(f"{candidates[i][2].strip()} [{candidates[i][0]}]" for i in best)


class ExtractiveSynthesizer(BaseSynthesizer):
    """`extract_answer` as a LlamaIndex synthesizer: no LLM, answers cite [n] sources."""

    def __init__(self, streaming: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("empty_response", NO_SOURCES)
        # No prompt is ever built, so the prompt helpers need no real tokenizer: LlamaIndex's
        # default loads tiktoken's BPE table, 0.3 s of a cold `rag-app query`.
        kwargs.setdefault("prompt_helper", PromptHelper(tokenizer=str.split))
        kwargs.setdefault("chat_prompt_helper", ChatPromptHelper(tokenizer=str.split))
        super().__init__(llm=MockLLM(), streaming=streaming, **kwargs)

    def _get_prompts(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: dict[str, Any]) -> None:
        """Extractive answers use no prompt."""

    def synthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        # Sentences come from the chunks' own text, not the metadata LlamaIndex puts around it.
        return super().synthesize(
            query, nodes, additional_source_nodes, **_extractive_kwargs(nodes), **response_kwargs
        )

    async def asynthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        return await super().asynthesize(
            query, nodes, additional_source_nodes, **_extractive_kwargs(nodes), **response_kwargs
        )

    def _answer(
        self, query_str: str, text_chunks: Sequence[str], relevant: Sequence[bool] | None
    ) -> str:
        flags = relevant or [True] * len(text_chunks)
        sources = [
            Source(number, "", 0.0, text, None, None, relevant=flag)
            for number, (text, flag) in enumerate(zip(text_chunks, flags, strict=True), start=1)
        ]
        return extract_answer(query_str, sources)

    def get_response(
        self,
        query_str: str,
        text_chunks: Sequence[str],
        plain_texts: Sequence[str] | None = None,
        relevant: Sequence[bool] | None = None,
        **response_kwargs: Any,
    ) -> Any:
        answer = self._answer(query_str, plain_texts or text_chunks, relevant)
        return _pieces(answer) if self._streaming else answer

    async def aget_response(
        self,
        query_str: str,
        text_chunks: Sequence[str],
        plain_texts: Sequence[str] | None = None,
        relevant: Sequence[bool] | None = None,
        **response_kwargs: Any,
    ) -> Any:
        answer = self._answer(query_str, plain_texts or text_chunks, relevant)
        return _one_piece(answer) if self._streaming else answer


def _extractive_kwargs(nodes: Sequence[NodeWithScore]) -> dict[str, list[Any]]:
    """The chunks' own text and relevance verdicts, for `ExtractiveSynthesizer.get_response`."""
    return {
        "plain_texts": [n.node.get_content() for n in nodes],
        "relevant": [is_relevant(n) for n in nodes],
    }


def _pieces(text: str) -> Iterator[str]:
    yield text


async def _one_piece(text: str) -> AsyncIterator[str]:
    yield text
