"""The shared ingestion path on every local backend: ids, dedup, replace, delete, bad files."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import Document
from pydantic import SecretStr

from rag_app.app import RagApp
from rag_app.embeddings.models import build_embedder
from rag_app.errors import EmbeddingMismatchError
from rag_app.ingestion.loaders import load_paths
from tests.support.openai_server import running_openai_server

HNSW = (
    "HNSW is a graph index for approximate nearest neighbour search. Its parameter M sets the "
    "number of edges per node. ef_search sets the candidate list size while searching."
)
KOREAN = "벡터 데이터베이스는 임베딩을 저장한다. 파인콘은 관리형 벡터 데이터베이스 서비스다."
PARIS = "Paris is the capital of France. The Eiffel Tower stands on the Champ de Mars."


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hnsw.txt").write_text(HNSW, encoding="utf-8")
    (folder / "korean.md").write_text(KOREAN, encoding="utf-8")
    (folder / "paris.md").write_text(PARIS, encoding="utf-8")
    return folder


def chunk_total(app: RagApp) -> int:
    return sum(r.n_chunks for r in app.documents())


def test_ingest_then_query_finds_the_right_document(make_app: Callable[..., RagApp]) -> None:
    app = make_app()
    report = app.ingest([write_corpus(Path("docs"))])
    assert report.ok and sorted(report.added) == [
        "docs/hnsw.txt",
        "docs/korean.md",
        "docs/paris.md",
    ]
    assert app.retrieve("What is the capital of France?")[0].doc_id == "docs/paris.md"
    assert app.retrieve("파인콘은 무엇인가요?")[0].doc_id == "docs/korean.md"
    answer = app.query("What does ef_search set?")
    assert answer.mode == "extractive"
    assert "ef_search sets the candidate list size" in answer.text
    assert "[1]" in answer.text


def test_sources_carry_offsets_into_their_document(make_app: Callable[..., RagApp]) -> None:
    app = make_app(chunk_size=40, chunk_overlap=0)
    long_text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    app.ingest([Document(id_="long", text=long_text)])
    sources = app.retrieve("topic 42", top_k=3)
    assert sources
    for source in sources:
        assert long_text[source.start_char : source.end_char] == source.text


def test_reingest_of_unchanged_files_embeds_and_writes_nothing(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app()
    corpus = write_corpus(Path("docs"))
    first = app.ingest([corpus])
    count = app.backend.count()
    second = app.ingest([corpus])
    assert first.chunks_written == count > 0
    assert second.unchanged == sorted(first.added)
    assert (second.chunks_written, second.texts_embedded) == (0, 0)
    assert app.backend.count() == count


def test_changed_file_replaces_its_chunks(make_app: Callable[..., RagApp]) -> None:
    app = make_app(chunk_size=40, chunk_overlap=0)
    corpus = write_corpus(Path("docs"))
    (corpus / "long.txt").write_text(" ".join(["Old zebra text sentence."] * 40))
    app.ingest([corpus])
    before = {r.doc_id: r.n_chunks for r in app.documents()}
    assert before["docs/long.txt"] > 1
    (corpus / "long.txt").write_text("New giraffe text, one short chunk.")
    report = app.ingest([corpus])
    assert report.replaced == ["docs/long.txt"]
    after = {r.doc_id: r.n_chunks for r in app.documents()}
    assert after["docs/long.txt"] == 1
    assert app.backend.count() == sum(after.values())
    texts = [s.text for s in app.retrieve("zebra giraffe text", top_k=10)]
    assert not any("zebra" in t for t in texts)
    assert any("giraffe" in t for t in texts)


def test_delete_removes_a_document_and_only_it(make_app: Callable[..., RagApp]) -> None:
    app = make_app()
    app.ingest(
        [Document(id_="doc1", text=PARIS), Document(id_="doc10", text=HNSW)]
        + [Document(id_="doc2", text=KOREAN)]
    )
    assert app.delete(["doc1", "nope"]) == ["nope"]
    assert [r.doc_id for r in app.documents()] == ["doc10", "doc2"]
    assert app.backend.count() == chunk_total(app)
    assert all(s.doc_id != "doc1" for s in app.retrieve("capital of France", top_k=10))


def test_python_strings_and_documents_ingest(make_app: Callable[..., RagApp]) -> None:
    app = make_app()
    report = app.ingest_texts([PARIS, KOREAN])
    assert len(report.added) == 2
    assert app.ingest_texts([PARIS]).unchanged == [report.added[0]]


def test_bad_files_are_reported_and_the_rest_ingested(make_app: Callable[..., RagApp]) -> None:
    corpus = write_corpus(Path("docs"))
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (corpus / "legacy.txt").write_bytes("한국어 텍스트".encode("cp949"))
    (corpus / "empty.md").write_text("   \n")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "broken.docx").write_bytes(b"PK not a zip")
    app = make_app()
    report = app.ingest([corpus])
    reasons = {Path(p.path).name: p.reason for p in report.skipped}
    assert set(reasons) == {"binary.txt", "legacy.txt", "empty.md", "broken.pdf", "broken.docx"}
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["legacy.txt"]
    assert "empty" in reasons["empty.md"]
    assert not report.ok
    assert sorted(report.added) == ["docs/hnsw.txt", "docs/korean.md", "docs/paris.md"]


def test_readers_for_pdf_docx_and_html(tmp_path: Path) -> None:
    import docx
    from pypdf import PdfWriter
    from pypdf.generic import NameObject

    folder = tmp_path / "formats"
    folder.mkdir()
    document = docx.Document()
    document.add_paragraph("Word files are read by LlamaIndex's DocxReader.")
    document.save(folder / "note.docx")
    (folder / "page.html").write_text(
        "<html><head><script>var x=1;</script></head><body><h1>Title</h1>"
        "<p>HTML body text survives.</p></body></html>"
    )
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer._root_object[NameObject("/Dummy")] = NameObject("/Dummy")
    writer.write(folder / "blank.pdf")
    documents, problems = load_paths([folder])
    texts = {Path(d.metadata["source"]).name: d.text for d in documents}
    assert "DocxReader" in texts["note.docx"]
    assert "HTML body text survives." in texts["page.html"]
    assert "var x" not in texts["page.html"]
    assert [Path(p.path).name for p in problems] == ["blank.pdf"]
    assert "empty" in problems[0].reason
    assert zipfile.is_zipfile(folder / "note.docx")


def test_squad_file_becomes_one_document_per_article(
    make_app: Callable[..., RagApp], tmp_path: Path
) -> None:
    squad = {
        "data": [
            {"title": "A", "paragraphs": [{"context": PARIS, "qas": []}]},
            {"title": "B", "paragraphs": [{"context": HNSW, "qas": []}, {"context": KOREAN}]},
        ]
    }
    path = tmp_path / "mini_squad.json"
    path.write_text(json.dumps(squad, ensure_ascii=False))
    app = make_app()
    report = app.ingest([path])
    assert len(report.added) == 2
    assert app.retrieve("파인콘")[0].doc_id == report.added[1]


def test_metadata_shape_is_the_same_on_every_store(make_app: Callable[..., RagApp]) -> None:
    app = make_app()
    metadata = {"none": None, "tags": ["a", "나"], "nested": {"year": 2024}, "title": "제목"}
    app.ingest([Document(id_="m", text=PARIS, metadata=metadata)])
    stored = app.backend.fetch_nodes([f"{r.key}:0" for r in app.documents()])
    (node,) = stored.values()
    assert "none" not in node.metadata
    assert node.metadata["tags"] == ["a", "나"]
    assert node.metadata["nested.year"] == 2024
    assert node.metadata["title"] == "제목"


def test_oversized_metadata_is_refused_with_a_clear_reason(
    make_app: Callable[..., RagApp],
) -> None:
    app = make_app()
    report = app.ingest(
        [Document(id_="big", text=PARIS, metadata={"blob": "x" * 50_000}), Document(text=HNSW)]
    )
    assert [p.path for p in report.skipped] == ["big"]
    assert "40960-byte per-record limit" in report.skipped[0].reason
    assert len(report.added) == 1


def test_another_embedding_model_is_refused_before_anything_is_written(
    make_app: Callable[..., RagApp], tmp_path: Path
) -> None:
    app = make_app()
    app.ingest([write_corpus(Path("docs"))])
    count = app.backend.count()
    with running_openai_server(dim=64) as url:
        settings = app.settings.model_copy(
            update={
                "embed_model": "openai:text-embedding-3-small",
                "openai_api_key": SecretStr("k"),
                "openai_base_url": url,
            }
        )
        other = build_embedder(settings, cache=False)
        with pytest.raises(EmbeddingMismatchError, match="dimension 384"):
            make_app(app_embedder=other).ingest([Document(id_="new", text="new text")])
        with pytest.raises(EmbeddingMismatchError, match="dimension 384"):
            make_app(app_embedder=other).retrieve("anything")
        assert other.texts_embedded == 0
    assert app.backend.count() == count
    assert "new" not in [r.doc_id for r in app.documents()]


def test_the_record_size_bound_is_never_below_the_exact_size() -> None:
    """The fast path of the metadata-size check may only skip nodes that truly fit."""
    import json
    import random
    import string

    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from rag_app.ingestion.records import record_size_bound

    rng = random.Random(7)
    alphabet = string.printable + '한국어漢字"\\\x00\x01\u2028'

    def text(most: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))

    for position in range(300):
        doc_id = "d" + text(40)
        metadata = {text(12) or "k": text(200) for _ in range(rng.randint(0, 4))}
        metadata.update(doc_id=doc_id, chunk_index=position)
        node = TextNode(
            id_=f"{doc_id}:{position}",
            text=text(4000),
            metadata=metadata,
            excluded_embed_metadata_keys=list(metadata),
            excluded_llm_metadata_keys=list(metadata),
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
        exact = len(json.dumps(node_to_metadata_dict(node), ensure_ascii=False).encode("utf-8"))
        assert record_size_bound(node) >= exact
