"""What a query returns: numbered `Source`s, the `Answer` printed by the CLI, and `Generated`.

Plain dataclasses, so the CLI, the cache and the evaluation can use them without LlamaIndex.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A retrieved chunk. `score` ranks it among this query's results (fused, 0 to 1, the best
    is 1.0 even when nothing matches); `relevance` says how well it matches the question in
    absolute terms, and `relevant` whether that reaches the embedding model's threshold."""

    number: int
    doc_id: str
    score: float
    text: str
    start_char: int | None
    end_char: int | None
    source: str = ""
    relevance: float | None = None
    relevant: bool = True


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
            f"[{s.number}] {s.doc_id} (score {s.score:.3f}{_relevance(s)}, "
            f"chars {s.start_char}-{s.end_char})"
            for s in self.sources
        ]
        return "\n".join(lines)


def _relevance(source: Source) -> str:
    if source.relevance is None:
        return ""
    return f", relevance {source.relevance:.2f}" + ("" if source.relevant else " - not relevant")
