"""Turn files, folders, SQuAD-format JSON and Python objects into LlamaIndex Documents.

Every file becomes exactly one Document whose id is stable (its path relative to the working
directory, or absolute outside it), so re-ingesting the same file updates the same document.
A file that cannot be read is reported with its reason (`LoadProblem`) instead of stopping the
whole ingest. SQuAD, XQuAD and KorQuAD files become one Document per article; the article's
paragraph offsets are kept so the eval can map answer spans to chunks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import Document

from rag_app.errors import RagAppError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
READERS_BY_SUFFIX = {".pdf": "PDFReader", ".docx": "DocxReader"}
HTML_SUFFIXES = {".html", ".htm"}
PARAGRAPH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class LoadProblem:
    """A file that was skipped, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class SquadQuestion:
    question: str
    doc_id: str
    #: (start, end) character spans of the gold answers in the article text.
    answer_spans: tuple[tuple[int, int], ...]


def supported_suffixes() -> set[str]:
    return TEXT_SUFFIXES | set(READERS_BY_SUFFIX) | HTML_SUFFIXES | {".json"}


def document_id(path: Path) -> str:
    """Path relative to the working directory when inside it, else absolute (POSIX form)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly, and supported files inside folders (sorted, hidden ones skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in supported_suffixes():
                    yield child
        else:
            yield path


def load_paths(paths: Iterable[Path]) -> tuple[list[Document], list[LoadProblem]]:
    """Documents from files and folders, plus the files that could not be read."""
    documents: list[Document] = []
    problems: list[LoadProblem] = []
    for path in iter_files(paths):
        try:
            documents.extend(load_file(path))
        except LoadError as exc:
            problems.append(LoadProblem(str(path), str(exc)))
    return documents, problems


class LoadError(RagAppError):
    """Why one file cannot be read."""


def load_file(path: Path) -> list[Document]:
    if not path.exists():
        raise LoadError("no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_squad(path)
    reader = _reader_for(suffix)
    try:
        text = reader(path)
    except LoadError:
        raise
    except Exception as exc:  # every reader fails differently on a corrupt file
        raise LoadError(f"cannot read {suffix} file: {type(exc).__name__}: {exc}") from None
    if not text.strip():
        raise LoadError("empty: no text found")
    return [
        Document(
            id_=document_id(path),
            text=text,
            metadata={"source": str(path), "title": path.stem, "file_type": suffix.lstrip(".")},
        )
    ]


def _reader_for(suffix: str) -> Callable[[Path], str]:
    if suffix in TEXT_SUFFIXES:
        return _read_text
    if suffix in HTML_SUFFIXES:
        return _read_html
    if suffix in READERS_BY_SUFFIX:
        return _llama_reader(READERS_BY_SUFFIX[suffix])
    raise LoadError(
        f"unsupported file type {suffix or '(none)'}; supported: "
        + ", ".join(sorted(supported_suffixes()))
    )


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data:
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not valid UTF-8 (byte {exc.start}); convert it, e.g. "
            f"`iconv -f cp949 -t utf-8 {path.name}` for Korean legacy encodings"
        ) from None


def _read_html(path: Path) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _llama_reader(class_name: str) -> Callable[[Path], str]:
    import llama_index.readers.file as readers

    def read(path: Path) -> str:
        pages = getattr(readers, class_name)().load_data(file=path)
        return PARAGRAPH_SEPARATOR.join(page.text for page in pages if page.text.strip())

    return read


def documents_from_python(items: Iterable[Document | str], prefix: str = "text") -> list[Document]:
    """Documents given in Python; bare strings get an id from their content."""
    import hashlib

    documents = []
    for item in items:
        if isinstance(item, str):
            digest = hashlib.sha256(item.encode("utf-8")).hexdigest()[:16]
            item = Document(id_=f"{prefix}:{digest}", text=item, metadata={"source": prefix})
        documents.append(item)
    return documents


def is_squad(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("data"), list)
        and all(isinstance(a, dict) and "paragraphs" in a for a in data["data"])
    )


def load_squad(path: Path) -> list[Document]:
    """One Document per article of a SQuAD-format file (SQuAD, XQuAD, KorQuAD)."""
    documents, _ = read_squad(path)
    return documents


def read_squad(path: Path) -> tuple[list[Document], list[SquadQuestion]]:
    """Articles as Documents and every question with its answer spans in the article text."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON: {exc}") from None
    if not is_squad(data):
        raise LoadError('not SQuAD format: expected {"data": [{"title", "paragraphs"}]}')
    dataset = path.stem
    documents: list[Document] = []
    questions: list[SquadQuestion] = []
    for number, article in enumerate(data["data"]):
        title = str(article.get("title") or f"article-{number}")
        doc_id = f"{dataset}/{number:04d}-{title}"
        parts: list[str] = []
        offset = 0
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                spans = tuple(
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
                    for a in qa.get("answers", [])
                )
                if spans:
                    questions.append(SquadQuestion(qa["question"], doc_id, spans))
            parts.append(context)
            offset += len(context) + len(PARAGRAPH_SEPARATOR)
        text = PARAGRAPH_SEPARATOR.join(parts)
        if text.strip():
            documents.append(
                Document(
                    id_=doc_id,
                    text=text,
                    metadata={"source": os.fspath(path), "title": title, "file_type": "squad"},
                )
            )
    return documents, questions
