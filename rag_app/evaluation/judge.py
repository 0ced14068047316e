"""LLM-as-judge: faithfulness, answer relevancy and context relevancy (the RAG triad).

The scoring is LlamaIndex's (`FaithfulnessEvaluator`, `AnswerRelevancyEvaluator`,
`ContextRelevancyEvaluator`), with prompts that say the texts may be Korean or any other
language and that end every verdict with a strict `[RESULT] ...` line. What is added here:

* every call that raises (timeouts, exhausted retries) or whose verdict cannot be parsed is
  counted per metric with its reason, never dropped; LlamaIndex's faithfulness check passes
  any text containing "yes", so its verdict is re-parsed strictly;
* calls run concurrently, at most `concurrency` in flight; the OpenAI client retries 429 and
  5xx (honouring Retry-After) and LlamaIndex's retry wraps it;
* tokens are added up from every response's usage block.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx
from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.openai import OpenAI
from pydantic import PrivateAttr

from rag_app.errors import ConfigError
from rag_app.settings import Settings

T = TypeVar("T")
METRICS = ("faithfulness", "answer_relevancy", "context_relevancy")
UNKNOWN_MODEL_CONTEXT_WINDOW = 32768
LANGUAGE_NOTE = (
    "The texts may be in Korean, English, Chinese or any other language; judge their meaning "
    "in their own language. Write your reasons in English.\n"
)
FAITHFULNESS_TEMPLATE = PromptTemplate(
    "You check whether an answer is supported by the context.\n"
    + LANGUAGE_NOTE
    + "Give one or two sentences of reasons, then a last line that is exactly '[RESULT] YES' "
    "if the context supports the answer or '[RESULT] NO' if it does not.\n\n"
    "Answer: {query_str}\nContext: {context_str}\nReasons:"
)
FAITHFULNESS_REFINE = PromptTemplate(
    "You check whether an answer is supported by the context: {query_str}\n"
    + LANGUAGE_NOTE
    + "The verdict so far, on earlier context: {existing_answer}\n"
    "More context:\n------------\n{context_msg}\n------------\n"
    "If the verdict so far was YES, or the new context supports the answer, end with "
    "'[RESULT] YES'; otherwise end with '[RESULT] NO'.\n"
)
ANSWER_RELEVANCY_TEMPLATE = PromptTemplate(
    "You judge whether a response is relevant to a query.\n"
    + LANGUAGE_NOTE
    + "1. Does the response match the subject of the query? (1 point)\n"
    "2. Does the response address what the query asks? (1 point)\n"
    "Give short reasons, then a last line '[RESULT] <total score, 0 to 2>'.\n\n"
    "Query:\n{query}\nResponse:\n{response}\nReasons:"
)
CONTEXT_RELEVANCY_TEMPLATE = PromptTemplate(
    "You judge whether retrieved context is relevant to a query.\n"
    + LANGUAGE_NOTE
    + "1. Does the context match the subject of the query? (0 to 2 points)\n"
    "2. Could the context alone answer the query fully? (0 to 2 points)\n"
    "Give short reasons, then a last line '[RESULT] <total score, 0 to 4>'.\n\n"
    "Query:\n{query_str}\nContext:\n{context_str}\nReasons:"
)
CONTEXT_RELEVANCY_REFINE = PromptTemplate(
    "You judge whether retrieved context is relevant to a query: {query_str}\n"
    + LANGUAGE_NOTE
    + "The score so far, on earlier context: {existing_answer}\n"
    "More context:\n------------\n{context_msg}\n------------\n"
    "Keep the score unless the new context makes the retrieved context more useful for the "
    "query; end with a last line '[RESULT] <total score, 0 to 4>'.\n"
)
RESULT = re.compile(r"\[RESULT\]\s*([A-Za-z]+|\d+(?:\.\d+)?)")


class CountingOpenAI(OpenAI):
    """LlamaIndex's OpenAI LLM that adds up token usage and works with any model name."""

    _usage: Counter = PrivateAttr(default_factory=Counter)

    async def achat(self, messages: Any, **kwargs: Any) -> Any:
        response = await super().achat(messages, **kwargs)
        self._usage["requests"] += 1
        self._usage.update(
            {k: int(v) for k, v in response.additional_kwargs.items() if k.endswith("_tokens")}
        )
        return response

    @property
    def metadata(self) -> LLMMetadata:
        """Models LlamaIndex does not list (a local server's) get a generic chat window."""
        try:
            return super().metadata
        except ValueError:
            return LLMMetadata(
                context_window=UNKNOWN_MODEL_CONTEXT_WINDOW,
                num_output=self.max_tokens or -1,
                is_chat_model=True,
                model_name=self.model,
            )

    @property
    def usage(self) -> dict[str, int]:
        return dict(self._usage)


@asynccontextmanager
async def judge_llm(settings: Settings, spec: str | None, retries: int) -> AsyncIterator[Any]:
    """The judge LLM on an HTTP client closed with the event loop that used it (a client left
    open would be closed by the garbage collector after `asyncio.run` closed its loop)."""
    async with httpx.AsyncClient() as http:
        yield build_judge_llm(settings, spec, retries, http)


def build_judge_llm(
    settings: Settings,
    spec: str | None,
    retries: int = 3,
    http: httpx.AsyncClient | None = None,
) -> CountingOpenAI:
    """The judge named by `spec` (or RAG_JUDGE): `openai:<model>` on OPENAI_BASE_URL."""
    spec = spec or settings.judge
    if not spec or not spec.startswith("openai:") or spec == "openai:":
        raise ConfigError(
            f"judge {spec!r} is not usable: give --judge openai:<model> or set "
            "RAG_JUDGE=openai:<model> (any OpenAI-compatible server via OPENAI_BASE_URL)."
        )
    if settings.openai_api_key is None:
        raise ConfigError(f"judge {spec} needs OPENAI_API_KEY (environment or .env).")
    return CountingOpenAI(
        model=spec.removeprefix("openai:"),
        api_key=settings.openai_api_key.get_secret_value(),
        api_base=settings.openai_base_url,
        max_retries=retries,
        timeout=settings.judge_timeout,
        temperature=0.0,
        async_http_client=http,
    )


def parse_score(maximum: float) -> Callable[[str], tuple[float | None, str | None]]:
    """A LlamaIndex parser: the number of the last `[RESULT]` line if within 0..maximum."""

    def parse(text: str) -> tuple[float | None, str | None]:
        found = RESULT.findall(text)
        try:
            score = float(found[-1]) if found else None
        except ValueError:
            score = None
        if score is None or not 0 <= score <= maximum:
            return None, None
        return score, text[: text.rfind("[RESULT]")].strip()

    return parse


def parse_yes_no(text: str) -> float | None:
    found = RESULT.findall(text)
    verdict = found[-1].upper() if found else ""
    return {"YES": 1.0, "NO": 0.0}.get(verdict)


@dataclass
class Outcome:
    """One judge call: a score, or the reason there is none."""

    score: float | None = None
    error: str | None = None


@dataclass
class JudgeTally:
    """What a judge run did: calls, failures by metric and reason, tokens."""

    calls: int = 0
    failures: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)

    def add(self, metric: str, outcome: Outcome) -> None:
        self.calls += 1
        if outcome.error is not None:
            self.failures[metric] += 1
            self.reasons[outcome.error] += 1


def check_concurrency(limit: int) -> None:
    if limit < 1:
        raise ConfigError("--concurrency must be at least 1")


class Bounded:
    """Runs coroutines with at most `limit` in flight."""

    def __init__(self, limit: int) -> None:
        check_concurrency(limit)
        self._semaphore = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, make: Callable[[], Awaitable[T]]) -> T:
        async with self._semaphore:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await make()
            finally:
                self.in_flight -= 1


async def guarded(
    call: Callable[[], Awaitable[Any]], parse: Callable[[Any], float | None]
) -> Outcome:
    """Run one judge call; any exception or unparsable verdict becomes a counted reason."""
    try:
        result = await call()
    except Exception as exc:  # each failure is reported by type, none is dropped
        return Outcome(error=f"error: {type(exc).__name__}")
    score = parse(result)
    return Outcome(error="unparsable verdict") if score is None else Outcome(score)


def evaluation_score(result: Any) -> float | None:
    return None if result.invalid_result else result.score


def faithfulness_score(result: Any) -> float | None:
    return parse_yes_no(result.feedback or "")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, also from inside a running loop (a notebook) via a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def judge_rows(
    settings: Settings,
    rows: list[dict[str, Any]],
    spec: str | None = None,
    concurrency: int = 16,
    retries: int = 3,
) -> dict[str, Any]:
    """Score every row (question, answer, contexts) on the triad; rows gain `judge` fields.

    Returns the summary: mean per metric over scored rows, calls, failures per metric and
    by reason, rows without contexts (context metrics not applicable), and tokens used.
    """
    return run_sync(_judge_rows(settings, rows, spec, concurrency, retries))


async def _judge_rows(
    settings: Settings, rows: list[dict[str, Any]], spec: str | None, concurrency: int, retries
) -> dict[str, Any]:
    async with judge_llm(settings, spec, retries) as llm:
        return await _score_rows(llm, rows, concurrency, spec or settings.judge)


async def _score_rows(
    llm: CountingOpenAI, rows: list[dict[str, Any]], concurrency: int, spec: str | None
) -> dict[str, Any]:
    from llama_index.core.evaluation import (
        AnswerRelevancyEvaluator,
        ContextRelevancyEvaluator,
        FaithfulnessEvaluator,
    )

    faithfulness = FaithfulnessEvaluator(
        llm=llm, eval_template=FAITHFULNESS_TEMPLATE, refine_template=FAITHFULNESS_REFINE
    )
    answer_relevancy = AnswerRelevancyEvaluator(
        llm=llm, eval_template=ANSWER_RELEVANCY_TEMPLATE, parser_function=parse_score(2)
    )
    context_relevancy = ContextRelevancyEvaluator(
        llm=llm,
        eval_template=CONTEXT_RELEVANCY_TEMPLATE,
        refine_template=CONTEXT_RELEVANCY_REFINE,
        parser_function=parse_score(4),
    )
    bounded = Bounded(concurrency)
    tally = JudgeTally()
    no_context = 0

    async def score_row(row: dict[str, Any]) -> None:
        nonlocal no_context
        question, answer, contexts = row["question"], row.get("answer") or "", row.get("contexts")
        calls: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[Any], float | None]]] = {
            "answer_relevancy": (
                lambda: answer_relevancy.aevaluate(query=question, response=answer),
                evaluation_score,
            )
        }
        if contexts:
            calls["faithfulness"] = (
                lambda: faithfulness.aevaluate(response=answer, contexts=contexts),
                faithfulness_score,
            )
            calls["context_relevancy"] = (
                lambda: context_relevancy.aevaluate(query=question, contexts=contexts),
                evaluation_score,
            )
        else:
            no_context += 1
        outcomes = await asyncio.gather(
            *(bounded(partial(guarded, call, parse)) for call, parse in calls.values())
        )
        row["judge"] = {}
        for metric, outcome in zip(calls, outcomes, strict=True):
            tally.add(metric, outcome)
            row["judge"][metric] = outcome.score
            if outcome.error:
                row.setdefault("judge_errors", {})[metric] = outcome.error

    await asyncio.gather(*(score_row(row) for row in rows))
    return {
        **{metric: _mean(row.get("judge", {}).get(metric) for row in rows) for metric in METRICS},
        "judge": spec,
        "judge_calls": tally.calls,
        "judge_failures": sum(tally.failures.values()),
        "judge_failures_by_metric": dict(tally.failures),
        "judge_failure_reasons": dict(tally.reasons),
        "judge_rows_without_contexts": no_context,
        "judge_tokens": llm.usage,
        "judge_peak_in_flight": bounded.peak,
    }


def _mean(values: Any) -> float | None:
    scored = [v for v in values if v is not None]
    return round(sum(scored) / len(scored), 4) if scored else None
