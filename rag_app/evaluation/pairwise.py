"""Pairwise comparison of two runs' answers by an LLM judge, asked in both orders.

LlamaIndex's `PairwiseComparisonEvaluator` asks the question (with `enforce_consensus=False`:
the two orders are asked here, so each order's verdict is kept). Position bias shows as
disagreement between the orders, so the report gives the share of questions where both orders
agree. A question's verdict: the agreed one; one order's A or B when the other says tie (as
LlamaIndex's consensus counts votes); a tie when the orders contradict each other. Multi-turn
items are judged on their second (last) turn with the whole conversation shown, as in MT-Bench.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate

from rag_app.evaluation.judge import LANGUAGE_NOTE, Bounded, Outcome, guarded, judge_llm, run_sync
from rag_app.settings import Settings

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the answers given by two AI "
    "assistants to the user question shown below, using the reference answer if one is given. "
    + LANGUAGE_NOTE
    + "When the question shows a conversation, judge only the answers to its last turn, in the "
    "light of the earlier turns. Consider helpfulness, relevance, accuracy and detail. Avoid "
    "position bias: the order of the answers must not influence you; nor must their length. "
    "Give a short explanation, then your final verdict strictly as '[[A]]' if assistant A is "
    "better, '[[B]]' if assistant B is better, or '[[C]]' for a tie."
)
USER = (
    "[User Question]\n{query}\n\n"
    "[The Start of Reference]\n{reference}\n[The End of Reference]\n\n"
    "[The Start of Assistant A's Answer]\n{answer_1}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_2}\n[The End of Assistant B's Answer]"
)
TEMPLATE = ChatPromptTemplate(
    message_templates=[
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM),
        ChatMessage(role=MessageRole.USER, content=USER),
    ]
)
#: A verdict for the answer shown first / second / tie, from LlamaIndex's score.
SHOWN = {1.0: "first", 0.0: "second", 0.5: "tie"}


def order_verdict(first: str | None, a_first: bool) -> str | None:
    """Map 'first'/'second'/'tie' of one order to 'A'/'B'/'tie' of the runs."""
    if first is None:
        return None
    shown_first, shown_second = ("A", "B") if a_first else ("B", "A")
    return {"first": shown_first, "second": shown_second, "tie": "tie"}[first]


def combine(ab: str | None, ba: str | None) -> str | None:
    """The question's verdict from both orders (already mapped to A/B/tie)."""
    if ab is None or ba is None:
        return None
    if ab == ba:
        return ab
    if "tie" in (ab, ba):
        return ab if ba == "tie" else ba
    return "tie"


def conversation(row: dict[str, Any]) -> str:
    """The question as the judge sees it: earlier turns (question only), then the last one."""
    turns = row.get("turns") or []
    if not turns:
        return row["question"]
    lines = [f"Turn {n}: {t['question']}" for n, t in enumerate(turns, 1)]
    return "\n".join([*lines, f"Turn {len(turns) + 1} (judge this turn): {row['question']}"])


def shown_answer(row: dict[str, Any]) -> str:
    """A run's answer; for a conversation, its earlier answers come first as context."""
    turns = row.get("turns") or []
    earlier = [f"Turn {n}: {t['answer']}" for n, t in enumerate(turns, 1)]
    last = row.get("answer") or ""
    return "\n".join([*earlier, f"Turn {len(turns) + 1}: {last}"]) if turns else last


def compare_runs(
    settings: Settings,
    run_a: dict[str, Any],
    run_b: dict[str, Any],
    spec: str | None = None,
    concurrency: int = 16,
    retries: int = 3,
) -> dict[str, Any]:
    """Win/tie/loss of A against B over the questions both runs answered."""
    return run_sync(_compare(settings, run_a, run_b, spec, concurrency, retries))


async def _compare(settings, run_a, run_b, spec, concurrency, retries) -> dict[str, Any]:
    async with judge_llm(settings, spec, retries) as llm:
        return await _judge_pairs(llm, run_a, run_b, concurrency, spec or settings.judge)


async def _judge_pairs(llm, run_a, run_b, concurrency: int, spec: str | None) -> dict[str, Any]:
    from llama_index.core.evaluation import PairwiseComparisonEvaluator

    evaluator = PairwiseComparisonEvaluator(
        llm=llm, eval_template=TEMPLATE, enforce_consensus=False
    )
    bounded = Bounded(concurrency)
    rows_b = {row["id"]: row for row in run_b["rows"]}
    pairs = [(row, rows_b[row["id"]]) for row in run_a["rows"] if row["id"] in rows_b]

    def score(result: Any) -> float | None:
        return None if result.invalid_result else result.score

    async def ask(query: str, first: str, second: str, reference: str) -> Outcome:
        call = partial(
            evaluator.aevaluate,
            query=query,
            response=first,
            second_response=second,
            reference=reference,
        )
        return await bounded(partial(guarded, call, score))

    async def judge(row_a: dict[str, Any], row_b: dict[str, Any]) -> dict[str, Any]:
        query, reference = conversation(row_a), " | ".join(row_a.get("references") or [])
        a, b = shown_answer(row_a), shown_answer(row_b)
        ab, ba = await asyncio.gather(ask(query, a, b, reference), ask(query, b, a, reference))
        verdicts = [
            order_verdict(SHOWN.get(o.score) if o.score is not None else None, a_first)
            for o, a_first in ((ab, True), (ba, False))
        ]
        return {
            "id": row_a["id"],
            "question": row_a["question"],
            "a_first": verdicts[0],
            "b_first": verdicts[1],
            "verdict": combine(*verdicts),
            "errors": [o.error for o in (ab, ba) if o.error],
        }

    rows = list(await asyncio.gather(*(judge(a, b) for a, b in pairs)))
    return summarize(rows, run_a["id"], run_b["id"], spec, llm.usage)


def summarize(
    rows: list[dict[str, Any]], a: str, b: str, judge: str | None, tokens: dict[str, int]
) -> dict[str, Any]:
    decided = [r for r in rows if r["verdict"] is not None]
    counts = Counter(r["verdict"] for r in decided)
    agree = sum(1 for r in decided if r["a_first"] == r["b_first"])
    reasons = Counter(e for r in rows for e in r["errors"])
    return {
        "a": a,
        "b": b,
        "judge": judge,
        "n_questions": len(rows),
        "n_decided": len(decided),
        "a_wins": counts["A"],
        "ties": counts["tie"],
        "b_wins": counts["B"],
        "order_agreement": round(agree / len(decided), 4) if decided else None,
        "judge_calls": 2 * len(rows),
        "judge_failures": sum(reasons.values()),
        "judge_failure_reasons": dict(reasons),
        "judge_tokens": tokens,
        "rows": rows,
    }
