"""Answers from retrieved sources: an OpenAI(-compatible) LLM, or extractive sentences.

`extractive` is what runs offline with no LLM: the sentences of the retrieved chunks that share
the most (rare) keywords with the question, each marked with its source number. It never
pretends to be an LLM; every answer says which mode produced it. Sentence scoring reuses the
keyword tokenizer so Korean particles and English inflections match.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from rag_app.errors import ConfigError
from rag_app.keyword import tokenize
from rag_app.settings import Settings

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+")
PARAGRAPH_BOUNDARY = re.compile(r"\n\s*\n")
EXTRACTIVE_SENTENCES = 3
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources given. Cite the sources you use as "
    "[1], [2], ... Answer in the language of the question. If the sources do not contain the "
    "answer, say so."
)


@dataclass(frozen=True)
class Source:
    number: int
    doc_id: str
    score: float
    text: str
    start_char: int | None
    end_char: int | None
    source: str = ""


@dataclass(frozen=True)
class Generated:
    """An answer text with its tokens' log-probabilities, or why there are none."""

    text: str
    token_logprobs: list[float] | None
    why_no_logprobs: str | None = None


@dataclass
class Answer:
    question: str
    text: str
    mode: str
    sources: list[Source] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Answer ({self.mode}):", self.text, "", "Sources:"]
        lines += [
            f"[{s.number}] {s.doc_id} (score {s.score:.3f}, chars {s.start_char}-{s.end_char})"
            for s in self.sources
        ]
        return "\n".join(lines)


class Answerer:
    """Turns a question and its sources into an answer; `mode` names how."""

    mode: str

    def answer(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> str:
        return "".join(self.stream(question, sources, history))

    def generate(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Generated:
        """The answer plus token log-probabilities, for perplexity in answer evaluations."""
        reason = f"the {self.mode} answerer has no token probabilities"
        return Generated(self.answer(question, sources, history), None, reason)

    def stream(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Iterator[str]:
        raise NotImplementedError


class ExtractiveAnswerer(Answerer):
    mode = "extractive"

    def stream(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Iterator[str]:
        yield extract_answer(question, sources)


def sentences(text: str) -> list[str]:
    """Sentences of a chunk: Markdown headings dropped, wrapped lines joined."""
    found = []
    for paragraph in PARAGRAPH_BOUNDARY.split(text):
        lines = [line for line in paragraph.splitlines() if not line.lstrip().startswith("#")]
        joined = " ".join(line.strip() for line in lines if line.strip())
        found += [s for s in SENTENCE_BOUNDARY.split(joined) if s.strip()]
    return found


def extract_answer(question: str, sources: Sequence[Source]) -> str:
    """The best sentences of the sources for the question, marked with source numbers."""
    candidates = [
        (source.number, rank, sentence)
        for rank, source in enumerate(sources)
        for sentence in sentences(source.text)
    ]
    if not candidates:
        return "No sources were found for this question."
    tokens = [set(tokenize(sentence)) for _, _, sentence in candidates]
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


class OpenAIAnswerer(Answerer):
    """Any OpenAI-compatible chat model through LlamaIndex's OpenAI LLM."""

    def __init__(self, settings: Settings, model: str) -> None:
        from llama_index.llms.openai import OpenAI

        if settings.openai_api_key is None:
            raise ConfigError(
                f"RAG_LLM=openai:{model} needs OPENAI_API_KEY (set it in the environment or "
                ".env), or set RAG_LLM=extractive to answer without an LLM."
            )
        self.mode = f"openai:{model}"
        self.llm = OpenAI(
            model=model,
            api_key=settings.openai_api_key.get_secret_value(),
            api_base=settings.openai_base_url,
            max_retries=5,
            timeout=120.0,
            temperature=0.0,
        )

    def stream(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Iterator[str]:
        for chunk in self.llm.stream_chat(_messages(question, sources, history)):
            if chunk.delta:
                yield chunk.delta

    def generate(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Generated:
        """One non-streamed call with `logprobs=True`; servers that ignore it give none.

        The chosen tokens' log-probabilities are read from the raw response: LlamaIndex's
        `ChatResponse.logprobs` keeps only the top alternatives, not the sampled token.
        """
        response = self.llm.chat(_messages(question, sources, history), logprobs=True)
        text = response.message.content or ""
        choice_logprobs = getattr(response.raw.choices[0], "logprobs", None)
        content = getattr(choice_logprobs, "content", None) or []
        logprobs = [float(token.logprob) for token in content]
        if logprobs:
            return Generated(text, logprobs)
        return Generated(text, None, f"the LLM ({self.mode}) returned no logprobs")


def _messages(
    question: str, sources: Sequence[Source], history: Sequence[ChatMessage]
) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
        *history,
        ChatMessage(role=MessageRole.USER, content=prompt(question, sources)),
    ]


def prompt(question: str, sources: Sequence[Source]) -> str:
    context = "\n\n".join(f"[{s.number}] {s.text}" for s in sources)
    return f"Sources:\n{context}\n\nQuestion: {question}"


def build_answerer(settings: Settings) -> Answerer:
    llm = settings.resolved_llm
    if llm == "extractive":
        return ExtractiveAnswerer()
    return OpenAIAnswerer(settings, llm.removeprefix("openai:"))
