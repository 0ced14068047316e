"""Sentence splitting that knows Korean and Chinese sentence ends, and chunks built on it."""

from __future__ import annotations

import pytest
from llama_index.core import Document

from rag_app.ingestion.chunking import Chunker, split_sentences

CASES = [
    (
        "서울은 대한민국의 수도이다.한강이 서울을 가로질러 흐른다. 인구는 약 천만 명이다.",
        [
            "서울은 대한민국의 수도이다.",
            "한강이 서울을 가로질러 흐른다. ",
            "인구는 약 천만 명이다.",
        ],
    ),
    ("정말요?네, 맞아요!", ["정말요?", "네, 맞아요!"]),
    (
        "北京是中国的首都。长江是中国最长的河流！你知道吗？是的。",
        ["北京是中国的首都。", "长江是中国最长的河流！", "你知道吗？", "是的。"],
    ),
    ("他说：“你好。”然后走了。", ["他说：“你好。”", "然后走了。"]),
    ("버전 3.5를 썼다.", ["버전 3.5를 썼다."]),
    ("He paid $3.5 for it. Then he left.", ["He paid $3.5 for it. ", "Then he left."]),
]


@pytest.mark.parametrize(("text", "sentences"), CASES)
def test_sentences_end_at_korean_and_chinese_stops(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
    assert "".join(split_sentences(text)) == text


def test_chunks_of_unspaced_korean_end_at_sentence_ends() -> None:
    """Without the Korean rule this text is one 'sentence', cut mid-sentence by the splitter."""
    text = "".join(f"문장 {i}은 한강에 관한 설명이다." for i in range(60))
    chunker = Chunker(40, 0, lambda t: t.split())
    chunks = chunker.split(Document(text=text))
    assert len(chunks) > 3
    assert all(c.text.endswith("설명이다.") for c in chunks)
    assert all(text[c.start_char_idx : c.end_char_idx] == c.text for c in chunks)
