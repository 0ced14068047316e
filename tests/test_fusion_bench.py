"""The fusion benchmark's own parts: paired bootstrap, ranks of a rule, passage-aligned chunks."""

from __future__ import annotations

import numpy as np
from llama_index.core import Document

from benchmarks.fusion_bench import bootstrap, compare, ranks
from benchmarks.fusion_lists import ParagraphChunker, Question, paragraphs
from rag_app.retrieval.fusion import fuse

TEXT = "첫 문단입니다. 서울은 수도이다.\n\n둘째 문단. 부산은 항구 도시이다.\n \n셋째."


def test_paragraphs_keep_their_offsets() -> None:
    found = list(paragraphs(TEXT))
    assert [text for _, text in found] == [
        "첫 문단입니다. 서울은 수도이다.",
        "둘째 문단. 부산은 항구 도시이다.",
        "셋째.",
    ]
    assert all(TEXT[start : start + len(text)] == text for start, text in found)


def test_paragraph_chunks_never_cross_a_paragraph_end() -> None:
    chunker = ParagraphChunker(64, 8, str.split)
    nodes = chunker.split(Document(id_="d", text=TEXT, metadata={"title": "t"}))
    assert [n.text for n in nodes] == [text for _, text in paragraphs(TEXT)]
    assert all(TEXT[n.start_char_idx : n.end_char_idx] == n.text for n in nodes)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    diff = rng.choice([-1.0, 0.0, 0.0, 1.0, 1.0], size=300)
    mean, low, high = bootstrap(diff)
    assert low < mean < high
    assert bootstrap(diff) == (mean, low, high)
    assert bootstrap(np.ones(50))[1] == 1.0


def test_compare_reports_hybrid_against_the_better_part() -> None:
    """Dense finds gold first on one question, keyword on the other; the fusion of lists that
    both hold the gold chunk finds it on both."""
    first = Question(
        dense=[("g", 0.9), ("a", 0.5), ("b", 0.49)],
        keyword=[("a", 5.0), ("g", 4.9), ("c", 1.0)],
        relevant={"g"},
        fit=True,
    )
    second = Question(
        dense=[("x", 0.7), ("h", 0.69), ("y", 0.5)],
        keyword=[("h", 9.0), ("z", 1.0)],
        relevant={"h"},
        fit=False,
    )
    assert ranks([first, second], "dense").tolist() == [1, 2]
    assert ranks([first, second], "keyword").tolist() == [2, 1]
    row = compare([first, second], fuse)
    assert row["hybrid hit@1"] == 1.0
    assert row["vs best hit@1"]["mean"] == 0.5
