"""Answers from retrieved sources, as LlamaIndex response synthesizers and chat engines.

With an LLM (OpenAI or any OpenAI-compatible server) the synthesizer is LlamaIndex's own
(`get_response_synthesizer`: response modes, streaming and prompt templates as LlamaIndex users
know them), wrapped so the sources reach the model numbered [1], [2], ... and the answer can
cite them. Without one, `ExtractiveSynthesizer` answers (`extractive.extract_answer`); every
answer says which mode produced it.

Only sources whose absolute relevance reaches the threshold (`Source.relevant`, carried by the
retriever's `RelevantNode`s, see rag_app/retrieval/relevance.py) are shown to the LLM; when
there is none, the LLM is told that nothing relevant was found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.indices.prompt_helper import ChatPromptHelper, PromptHelper
from llama_index.core.llms import LLM, MockLLM
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.response_synthesizers import BaseSynthesizer, get_response_synthesizer
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryType, TextNode

from rag_app.answers.extractive import NO_SOURCES, extract_answer
from rag_app.answers.types import Answer, Generated, Source
from rag_app.errors import ConfigError
from rag_app.retrieval.retriever import RelevantNode, is_relevant
from rag_app.settings import Settings

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources given. Cite the sources you use as "
    "[1], [2], ... Answer in the language of the question. If the sources do not contain the "
    "answer, say so."
)


NOTHING_RELEVANT_PROMPT = (
    "No document passage relevant to this question was found. Say that the documents do not "
    "cover it, in the language of the question; do not answer from general knowledge."
)


CITATION_QA_TEMPLATE = ChatPromptTemplate(
    message_templates=[
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
        ChatMessage(
            role=MessageRole.USER, content="Sources:\n{context_str}\n\nQuestion: {query_str}"
        ),
    ]
)


class CitingSynthesizer(BaseSynthesizer):
    """Any LlamaIndex synthesizer, given its sources numbered so that answers can cite them.

    The response keeps the original nodes as `source_nodes`, in retrieval order: source [n] of
    the answer is `response.source_nodes[n - 1]`.
    """

    def __init__(self, inner: BaseSynthesizer) -> None:
        super().__init__(llm=inner._llm, callback_manager=inner.callback_manager)
        self.inner = inner

    def _get_prompts(self) -> dict[str, Any]:
        return self.inner.get_prompts()

    def _update_prompts(self, prompts: dict[str, Any]) -> None:
        self.inner.update_prompts(prompts)

    def get_response(self, query_str: str, text_chunks: Sequence[str], **kwargs: Any) -> Any:
        return self.inner.get_response(query_str, text_chunks, **kwargs)

    async def aget_response(self, query_str: str, text_chunks: Sequence[str], **kwargs: Any) -> Any:
        return await self.inner.aget_response(query_str, text_chunks, **kwargs)

    def synthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        response = self.inner.synthesize(query, numbered(nodes), **response_kwargs)
        response.source_nodes = [*nodes, *(additional_source_nodes or [])]
        return response

    async def asynthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        response = await self.inner.asynthesize(query, numbered(nodes), **response_kwargs)
        response.source_nodes = [*nodes, *(additional_source_nodes or [])]
        return response


def numbered(nodes: Sequence[NodeWithScore]) -> list[NodeWithScore]:
    """Copies of the relevant nodes whose text for the LLM starts with its source number; when
    none of the retrieved nodes is relevant, one passage telling the LLM so."""
    relevant = [
        NodeWithScore(
            node=TextNode(text=f"[{number}] {hit.node.get_content(MetadataMode.LLM)}"),
            score=hit.score,
        )
        for number, hit in enumerate(nodes, start=1)
        if is_relevant(hit)
    ]
    if nodes and not relevant:
        return [NodeWithScore(node=TextNode(text=NOTHING_RELEVANT_PROMPT), score=0.0)]
    return relevant


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


class CitingChatEngine(CondensePlusContextChatEngine):
    """Condense-plus-context chat whose answers come from the app's synthesizer (numbered
    sources with an LLM, extractive sentences without one)."""

    extractive: bool = False

    def _get_response_synthesizer(
        self, chat_history: list[ChatMessage], streaming: bool = False
    ) -> Any:
        if self.extractive:
            return ExtractiveSynthesizer(streaming=streaming)
        return CitingSynthesizer(super()._get_response_synthesizer(chat_history, streaming))


class Answerer:
    """How questions are answered (`mode`): the synthesizers and chat engines of that mode."""

    mode: str
    llm: LLM

    def synthesizer(self, **kwargs: Any) -> BaseSynthesizer:
        """A response synthesizer; `kwargs` are `get_response_synthesizer`'s."""
        raise NotImplementedError

    def chat_engine(self, retriever: BaseRetriever, **kwargs: Any) -> CondensePlusContextChatEngine:
        """A condense-plus-context chat engine; `kwargs` are its `from_defaults` arguments."""
        engine = CitingChatEngine.from_defaults(
            retriever, llm=self.llm, **self._chat_defaults(kwargs)
        )
        engine.extractive = self.mode == "extractive"
        return engine

    def _chat_defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return kwargs

    def errors(self) -> AbstractContextManager[None]:
        """Wraps engine calls so the answering model's failures are one clear error."""
        return nullcontext()

    def generate(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Generated:
        """The answer plus token log-probabilities, for perplexity in answer evaluations
        (one non-streamed call outside the query engine, which cannot return them)."""
        raise NotImplementedError


class ExtractiveAnswerer(Answerer):
    """Offline: no LLM is ever called (the LLM slot holds LlamaIndex's MockLLM)."""

    mode = "extractive"

    def __init__(self) -> None:
        self.llm = MockLLM()

    def synthesizer(self, streaming: bool = False, **llm_options: Any) -> BaseSynthesizer:
        """LLM options (`response_mode`, templates) have nothing to act on and are ignored."""
        return ExtractiveSynthesizer(streaming=streaming)

    def generate(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Generated:
        reason = f"the {self.mode} answerer has no token probabilities"
        return Generated(extract_answer(question, sources), None, reason)

    def _chat_defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # No LLM to condense a follow-up: each turn retrieves for the message as asked.
        return {**kwargs, "skip_condense": True}


class OpenAIAnswerer(Answerer):
    """Any OpenAI-compatible chat model through LlamaIndex's OpenAI LLM."""

    def __init__(self, settings: Settings, model: str) -> None:
        from llama_index.llms.openai import OpenAI

        from rag_app.util.openai_client import http_client

        if settings.openai_api_key is None:
            raise ConfigError(
                f"RAG_LLM=openai:{model} needs OPENAI_API_KEY (set it in the environment or "
                ".env), or set RAG_LLM=extractive to answer without an LLM."
            )
        self.mode = f"openai:{model}"
        self.settings = settings
        self.llm = OpenAI(
            model=model,
            api_key=settings.openai_api_key.get_secret_value(),
            api_base=settings.openai_base_url,
            max_retries=0,
            timeout=settings.openai_timeout,
            http_client=http_client(settings),
            temperature=0.0,
        )

    def synthesizer(self, **kwargs: Any) -> BaseSynthesizer:
        kwargs.setdefault("text_qa_template", CITATION_QA_TEMPLATE)
        return CitingSynthesizer(get_response_synthesizer(llm=self.llm, **kwargs))

    def _chat_defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"system_prompt": SYSTEM_PROMPT, **kwargs}

    def errors(self) -> AbstractContextManager[None]:
        from rag_app.util.openai_client import openai_errors

        return openai_errors(f"answering with {self.mode}", self.settings)

    def generate(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage] = ()
    ) -> Generated:
        """One non-streamed call with `logprobs=True`; servers that ignore it give none.

        The chosen tokens' log-probabilities are read from the raw response: LlamaIndex's
        `ChatResponse.logprobs` keeps only the top alternatives, not the sampled token.
        """
        from rag_app.util.openai_client import openai_errors

        with openai_errors(f"answering with {self.mode}", self.settings):
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
    """The user message: the relevant sources and the question (or that nothing is relevant)."""
    relevant = [s for s in sources if s.relevant]
    if sources and not relevant:
        return f"{NOTHING_RELEVANT_PROMPT}\n\nQuestion: {question}"
    context = "\n\n".join(f"[{s.number}] {s.text}" for s in relevant)
    return f"Sources:\n{context}\n\nQuestion: {question}"


def build_answerer(settings: Settings) -> Answerer:
    llm = settings.resolved_llm
    if llm == "extractive":
        return ExtractiveAnswerer()
    return OpenAIAnswerer(settings, llm.removeprefix("openai:"))


def filling(answer: Answer, pieces: Iterator[str], answerer: Answerer) -> Iterator[str]:
    """Yield the pieces of a streamed answer while appending them to `answer.text`."""
    with answerer.errors():
        for piece in pieces:
            answer.text += piece
            yield piece


def source_of(number: int, hit: NodeWithScore) -> Source:
    """A source for the answer; relevance only when the app's retriever judged it."""
    node = hit.node
    return Source(
        number=number,
        doc_id=str(node.metadata.get("doc_id") or node.ref_doc_id or ""),
        score=float(hit.score or 0.0),
        text=node.get_content(),
        start_char=node.start_char_idx,
        end_char=node.end_char_idx,
        source=str(node.metadata.get("source", "")),
        relevance=hit.relevance if isinstance(hit, RelevantNode) else None,
        relevant=hit.relevant if isinstance(hit, RelevantNode) else True,
    )
