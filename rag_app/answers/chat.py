"""Multi-turn questions: LlamaIndex's chat engine with the session's history and the answer cache.

A turn answered from the cache never reached the engine's memory, so the session keeps the
history itself and hands it to the engine each turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.schema import NodeWithScore

from rag_app.answers.answerers import Answerer, filling
from rag_app.answers.cache import AnswerCache, prompt_fingerprint
from rag_app.answers.types import Answer


class ChatSession:
    """Multi-turn questions through `as_chat_engine()`, given the session's history each turn
    (a turn answered from the answer cache never reached the engine's memory)."""

    def __init__(
        self,
        engine: CondensePlusContextChatEngine,
        answerer: Answerer,
        answer: Callable[[str, str, Sequence[NodeWithScore]], Answer],
        cache: AnswerCache | None = None,
    ) -> None:
        self.engine = engine
        self.answerer = answerer
        self.answer = answer
        self.cache = cache
        self.history: list[ChatMessage] = []

    def ask(self, question: str) -> tuple[Answer, Iterator[str]]:
        """One turn; the answer cache keys it by the history so far as well."""
        history = list(self.history)
        # A first turn is its question alone over the same retriever: it shares query's entries.
        key = {"history": history, "prompts": self._prompts() if history else None}
        hit = self.cache.lookup(question, **key) if self.cache else None
        if hit:
            return hit, self._remembered(hit, iter([hit.text]))
        with self.answerer.errors():
            response = self.engine.stream_chat(question, chat_history=history)
        answer = self.answer(question, "", response.source_nodes)
        pieces = filling(answer, response.response_gen, self.answerer)
        if self.cache:
            pieces = self.cache.stream_through(answer, pieces, **key)
        return answer, self._remembered(answer, pieces)

    def _prompts(self) -> str:
        """The fingerprint of the chat engine's prompts; LlamaIndex's chat engines have no
        `get_prompts`, so they are read where the engine keeps them."""
        engine = self.engine
        prompts = {
            "system": engine._system_prompt,
            "context": engine._context_prompt_template,
            "context_refine": engine._context_refine_prompt_template,
            "condense": engine._condense_prompt_template,
        }
        return prompt_fingerprint(prompts, self.answerer.llm)

    def _remembered(self, answer: Answer, pieces: Iterator[str]) -> Iterator[str]:
        """Pass the pieces through; add the turn to the history once the answer is complete."""
        yield from pieces
        self.history += [
            ChatMessage(role=MessageRole.USER, content=answer.question),
            ChatMessage(role=MessageRole.ASSISTANT, content=answer.text),
        ]
