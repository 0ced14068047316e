"""Turn files, folders, SQuAD-format JSON and Python objects into LlamaIndex Documents.

Every file becomes exactly one Document whose id is stable whatever the working directory and
however the path is spelled (`document_id`), so re-ingesting the same file updates the same
document, also from another machine with the same folder layout. A file that cannot be read is
reported with its reason (`LoadProblem`) instead of stopping the whole ingest; files a folder
holds but that cannot be ingested (unsupported types, symlink loops) are reported as ignored.
SQuAD, XQuAD and KorQuAD files become one Document per article; the article's
paragraph offsets are kept so the eval can map answer spans to chunks.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core import Document

from rag_app.errors import RagAppError
from rag_app.ingestion.hwp import HWP_SUFFIXES

if TYPE_CHECKING:
    from rag_app.stores.base import DocRecord

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
READERS_BY_SUFFIX = {".pdf": "PDFReader", ".docx": "DocxReader"}
HTML_SUFFIXES = {".html", ".htm"}
#: Image files become image documents (embedded with CLIP into the image collection).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
PARAGRAPH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class LoadProblem:
    """A file that was skipped, and why."""

    path: str
    reason: str
    #: Reported but not a failure (an unsupported file inside an ingested folder).
    ignored: bool = False


@dataclass(frozen=True)
class SquadQuestion:
    question: str
    doc_id: str
    #: (start, end) character spans of the gold answers in the article text.
    answer_spans: tuple[tuple[int, int], ...]


def supported_suffixes() -> set[str]:
    return (
        TEXT_SUFFIXES
        | set(READERS_BY_SUFFIX)
        | HTML_SUFFIXES
        | IMAGE_SUFFIXES
        | HWP_SUFFIXES
        | {".json"}
    )


def document_id(path: Path, root: Path | None = None) -> str:
    """The id of the file at `path` (docs/cli.md, "Document ids"), in POSIX form.

    Relative to `root` (RAG_DOC_ROOT) when the file is inside it; else `<work tree folder
    name>/<path inside it>` when the file is inside a git work tree; else the absolute path.
    Paths are normalised lexically (no symlink is resolved), so `./x`, `x` and `/abs/x` agree
    and a team's clones with the same layout give the same ids.
    """
    absolute = _absolute(path)
    if root is not None and absolute.is_relative_to(_absolute(root)):
        return absolute.relative_to(_absolute(root)).as_posix()
    tree = git_work_tree(absolute if absolute.is_dir() else absolute.parent)
    if tree is not None:
        return absolute.relative_to(tree.parent).as_posix()
    return absolute.as_posix()


def legacy_document_id(path: Path) -> str:
    """The id rule before 0.2: relative to the working directory inside it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def _absolute(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


@functools.lru_cache(maxsize=4096)
def git_work_tree(folder: Path) -> Path | None:
    """The nearest folder at or above `folder` holding `.git` (a work tree or a worktree)."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[LoadProblem]]:
    """Files named directly and supported files inside folders, each once, in order.

    Hidden files and folders are skipped silently; unreadable subfolders are problems; symlink
    loops and unsupported files inside a folder are reported as ignored.
    """
    files: dict[Path, Path] = {}
    problems: list[LoadProblem] = []
    for path in paths:
        if path.is_dir():
            for child in _walk(path, problems):
                files.setdefault(_absolute(child), child)
        else:
            files.setdefault(_absolute(path), path)
    return list(files.values()), problems


def _walk(folder: Path, problems: list[LoadProblem]) -> Iterator[Path]:
    def unreadable(error: OSError) -> None:
        problems.append(
            LoadProblem(
                str(error.filename),
                f"cannot read this folder ({error.strerror}); fix its permissions",
            )
        )

    seen: set[str] = set()
    for current, folders, names in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            reason = "symlink to a folder already read (a loop or a second link); not read again"
            problems.append(LoadProblem(current, reason, ignored=True))
            folders.clear()
            continue
        seen.add(real)
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            child = Path(current, name)
            if not child.exists():
                problems.append(LoadProblem(str(child), "broken symlink: its target is missing"))
            elif child.suffix.lower() in supported_suffixes():
                yield child
            else:
                problems.append(
                    LoadProblem(str(child), _unsupported(child.suffix.lower()), ignored=True)
                )


def load_paths(
    paths: Iterable[Path], root: Path | None = None
) -> tuple[list[Document], list[LoadProblem]]:
    """Documents from files and folders, plus the files that could not be read or were ignored."""
    files, problems = collect_files(paths)
    documents: list[Document] = []
    for path in files:
        try:
            documents.extend(load_file(path, root))
        except LoadError as exc:
            problems.append(LoadProblem(str(path), str(exc)))
    return documents, problems


class LoadError(RagAppError):
    """Why one file cannot be read."""


def load_file(path: Path, root: Path | None = None) -> list[Document]:
    if not path.exists():
        raise LoadError("no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_squad(path)
    if suffix in IMAGE_SUFFIXES:
        return [image_document(path, root)]
    title = path.stem
    try:
        if suffix in HWP_SUFFIXES:
            text, title = _read_hwp(path)
        else:
            text = _reader_for(suffix)(path)
    except LoadError:
        raise
    except Exception as exc:  # every reader fails differently on a corrupt file
        cause = _unwrap(exc)
        raise LoadError(f"cannot read {suffix} file: {type(cause).__name__}: {cause}") from None
    if not text.strip():
        raise LoadError("empty: no text found")
    doc_id = document_id(path, root)
    return [
        Document(
            id_=doc_id,
            text=text,
            metadata={"source": doc_id, "title": title, "file_type": suffix.lstrip(".")},
        )
    ]


def is_image_document(document: Document) -> bool:
    return "image_sha256" in document.metadata


def load_image(path: Path) -> Any:
    """The image at `path` as RGB (a GIF's first frame); a file PIL cannot read is a LoadError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise LoadError(f"cannot read this image ({type(exc).__name__}: {exc})") from None


def image_document(path: Path, root: Path | None = None) -> Document:
    """An image file as a Document: its file name as text, its path and bytes' hash as metadata.

    The hash is part of the metadata, so a changed image changes the document's content hash
    and is re-embedded; an unchanged one costs one read and no model call.
    """
    import hashlib

    load_image(path)  # a corrupt image is reported now, not in the middle of a batch
    doc_id = document_id(path, root)
    return Document(
        id_=doc_id,
        text=path.name,
        metadata={
            "source": doc_id,
            "title": path.stem,
            "file_type": path.suffix.lower().lstrip("."),
            "path": os.path.abspath(path),
            "image_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
    )


def _unwrap(exc: BaseException) -> BaseException:
    """The reader's own error: LlamaIndex's PDF reader retries and wraps it in a RetryError."""
    from tenacity import RetryError

    if isinstance(exc, RetryError) and exc.last_attempt.exception() is not None:
        return exc.last_attempt.exception()
    return exc


def _reader_for(suffix: str) -> Callable[[Path], str]:
    if suffix in TEXT_SUFFIXES:
        return _read_text
    if suffix in HTML_SUFFIXES:
        return _read_html
    if suffix in READERS_BY_SUFFIX:
        return _llama_reader(READERS_BY_SUFFIX[suffix])
    raise LoadError(_unsupported(suffix))


def _unsupported(suffix: str) -> str:
    return f"unsupported file type {suffix or '(none)'}; supported: " + ", ".join(
        sorted(supported_suffixes())
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
            f"`iconv -f {_guess_encoding(data)} -t utf-8 {path.name}`"
        ) from None


def _guess_encoding(data: bytes) -> str:
    """The legacy encoding the bytes most likely use, for the conversion hint."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return best.encoding if best is not None else "latin-1"


def _read_hwp(path: Path) -> tuple[str, str]:
    """An HWP/HWPX file's text and title (its metadata title, else the file name)."""
    from rag_app.ingestion.hwp import HwpError, read_hwp

    try:
        text, title = read_hwp(path)
    except HwpError as exc:
        raise LoadError(str(exc)) from None
    return text, title or path.stem


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


def _path_prefixes(paths: Sequence[Path], doc_root: Path | None) -> Iterator[tuple[Path, str, str]]:
    """Each path with its id (the prefix of the ids of its files) under both id rules."""
    for path in paths:
        yield path, document_id(path, doc_root), legacy_document_id(path)


def legacy_ids(paths: Sequence[Path], doc_root: Path | None, ingested: set[str]) -> list[str]:
    """Ids that files ingested now had under the old id rule (relative to the cwd)."""
    old: set[str] = set()
    for _, new_id, legacy_id in _path_prefixes(paths, doc_root):
        for doc_id in ingested:
            rest = _under(doc_id, new_id)
            if rest is not None:
                old.add(rest.lstrip("/") if legacy_id == "." else legacy_id + rest)
    return sorted(old - ingested)


def gone_documents(
    paths: Sequence[Path], doc_root: Path | None, catalog: Mapping[str, DocRecord]
) -> list[str]:
    """File documents under `paths` whose file no longer exists."""
    gone: set[str] = set()
    for path, prefix, _ in _path_prefixes(paths, doc_root):
        for record in catalog.values():
            rest = _under(record.doc_id, prefix) if record.source == record.doc_id else None
            if rest is not None and not Path(f"{path}{rest}").exists():
                gone.add(record.doc_id)
    return sorted(gone)


def _under(doc_id: str, prefix: str) -> str | None:
    """The rest of `doc_id` after the path id `prefix` ("" or "/..."), None if not under it."""
    if doc_id == prefix:
        return ""
    if prefix in ("", ".") and not doc_id.startswith("/"):
        return "/" + doc_id
    return doc_id[len(prefix) :] if doc_id.startswith(prefix.rstrip("/") + "/") else None
