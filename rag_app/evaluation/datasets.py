"""Question sets for answer evaluation: SQuAD-format JSON or JSONL lines.

JSONL lines are `{"id"?, "question", "reference"?, "contexts"?, "answer"?, "turns"?}`;
`reference` is a string or a list of acceptable answers. A multi-turn item gives `turns`, a
list of questions (strings) or of `{"question", "answer"?}` objects; its last turn is the one
scored, the earlier ones are the conversation before it. SQuAD, XQuAD and KorQuAD files give
every question with its gold answer texts; their articles are the corpus to retrieve from.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core import Document

from rag_app.errors import RagAppError
from rag_app.ingestion.loaders import read_squad


class DatasetError(RagAppError):
    """A question set that cannot be read."""


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str | None = None


@dataclass
class AnswerItem:
    """One question to answer and score; `turns` holds the conversation before it."""

    id: str
    question: str
    references: list[str] = field(default_factory=list)
    contexts: list[str] | None = None
    answer: str | None = None
    turns: list[Turn] = field(default_factory=list)


@dataclass
class AnswerDataset:
    path: Path
    sha256: str
    items: list[AnswerItem]
    #: The articles to retrieve from (SQuAD format); None: the configured collection.
    documents: list[Document] | None = None


def load_dataset(path: Path, limit: int | None = None, seed: int = 0) -> AnswerDataset:
    """Read a question set; `limit` samples that many items with `seed` (ids are stable)."""
    if not path.is_file():
        raise DatasetError(f"eval answers: no such file {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if path.suffix.lower() == ".jsonl":
        documents, items = None, _read_jsonl(path)
    elif path.suffix.lower() == ".json":
        documents, items = _read_squad_items(path)
    else:
        raise DatasetError(
            f"eval answers: {path.name} is neither SQuAD-format .json nor .jsonl "
            '(one {"question", "reference"?, "answer"?, ...} object per line)'
        )
    if not items:
        raise DatasetError(f"eval answers: {path} holds no questions")
    if limit is not None and limit < len(items):
        chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
        items = [items[i] for i in chosen]
    return AnswerDataset(path, digest, items, documents)


def _read_squad_items(path: Path) -> tuple[list[Document], list[AnswerItem]]:
    documents, questions = read_squad(path)
    texts = {d.id_: d.text for d in documents}
    items = []
    for index, q in enumerate(questions):
        references = list(dict.fromkeys(texts[q.doc_id][s:e] for s, e in q.answer_spans))
        items.append(AnswerItem(f"q{index:05d}", q.question, references))
    return documents, items


def _read_jsonl(path: Path) -> list[AnswerItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object per line")
        items.append(_item(record, f"{path}:{number}", f"l{number:05d}"))
    return items


def _item(record: dict[str, Any], where: str, default_id: str) -> AnswerItem:
    turns = [_turn(t, where) for t in record.get("turns") or []]
    if turns:
        last = turns.pop()
        question, answer = last.question, record.get("answer", last.answer)
    else:
        question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f'{where}: needs a non-empty "question" (or "turns")')
    reference = record.get("reference")
    references = [reference] if isinstance(reference, str) else list(reference or [])
    contexts = record.get("contexts")
    if contexts is not None and not (
        isinstance(contexts, list) and all(isinstance(c, str) for c in contexts)
    ):
        raise DatasetError(f'{where}: "contexts" must be a list of strings')
    return AnswerItem(
        str(record.get("id", default_id)), question, references, contexts, answer, turns
    )


def _turn(raw: Any, where: str) -> Turn:
    if isinstance(raw, str):
        return Turn(raw)
    if isinstance(raw, dict) and isinstance(raw.get("question"), str):
        return Turn(raw["question"], raw.get("answer"))
    raise DatasetError(f'{where}: each of "turns" is a question or {{"question", "answer"?}}')
