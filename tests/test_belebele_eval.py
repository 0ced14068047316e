"""Belebele JSONL read as passage retrieval for `rag-app eval squad`."""

from __future__ import annotations

import json

import pytest

from rag_app.answers.types import Source
from rag_app.errors import RagAppError
from rag_app.evaluation.retrieval import is_hit, read_belebele


def _line(link: str, passage: str, question: str) -> str:
    return json.dumps(
        {"link": link, "flores_passage": passage, "question": question, "mc_answer1": "x"},
        ensure_ascii=False,
    )


def test_each_passage_is_one_document_and_its_questions_must_retrieve_it(tmp_path):
    path = tmp_path / "kor_Hang.jsonl"
    lines = [
        _line("a", "서울은 수도이다.", "수도는?"),
        _line("a", "서울은 수도이다.", "서울은 무엇인가?"),
        _line("b", "부산은 항구 도시이다.", "항구 도시는?"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    documents, questions = read_belebele(path)

    assert [d.text for d in documents] == ["서울은 수도이다.", "부산은 항구 도시이다."]
    assert [q.doc_id for q in questions] == [documents[0].id_] * 2 + [documents[1].id_]
    own = Source(number=1, doc_id=documents[1].id_, text="", score=1.0, start_char=0, end_char=12)
    other = Source(number=1, doc_id=documents[0].id_, text="", score=1.0, start_char=0, end_char=9)
    assert is_hit(own, questions[2]) and not is_hit(other, questions[2])


def test_a_line_without_the_belebele_fields_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q"}\n', encoding="utf-8")
    with pytest.raises(RagAppError, match=r"bad.jsonl:1: not a Belebele line"):
        read_belebele(path)
