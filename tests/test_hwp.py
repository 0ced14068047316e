"""HWP 5.x and HWPX ingestion on real files, written in the test by `hwp-converter-ai`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_app.ingestion.loaders import load_paths

hwp_converter_ai = pytest.importorskip(
    "hwp_converter_ai", reason="hwp-converter-ai (a dev dependency) writes the test files"
)

MARKDOWN = (
    "# 서울 안내\n\n서울은 대한민국의 수도이다.\n\n"
    "| 구 | 인구 |\n|---|---|\n| 종로구 | 14만 |\n\n한강이 도시를 가로지른다."
)
READING_ORDER = ["서울 안내", "서울은 대한민국의 수도이다.", "종로구", "14만", "한강이 도시를"]


def _write(folder: Path, suffix: str) -> Path:
    path = folder / f"guide{suffix}"
    if suffix == ".hwp":
        hwp_converter_ai.HwpWriter().from_markdown(MARKDOWN, path)
    else:
        hwp_converter_ai.HwpxGenerator().from_markdown(MARKDOWN, output_path=path)
    return path


def _positions(text: str) -> list[int]:
    return [text.index(piece) for piece in READING_ORDER]


@pytest.mark.parametrize("suffix", [".hwp", ".hwpx"])
def test_hwp_and_hwpx_give_paragraphs_and_tables_in_reading_order(tmp_path, suffix):
    path = _write(tmp_path, suffix)
    documents, problems = load_paths([path])
    assert problems == []
    [document] = documents
    positions = _positions(document.text)
    assert positions == sorted(positions)
    assert "| 종로구 | 14만 |" in document.text  # the table row stays one row
    assert not any("\x00" <= ch < " " and ch not in "\n\t" for ch in document.text)
    assert document.metadata["file_type"] == suffix.lstrip(".")
    assert document.metadata["title"] == "guide"  # the writer leaves the metadata title blank


def test_corrupt_and_encrypted_hwp_are_reported_by_name_and_skipped(tmp_path):
    import olefile

    good = _write(tmp_path, ".hwpx")
    corrupt = tmp_path / "broken.hwp"
    corrupt.write_bytes(b"not an OLE file")
    encrypted = _write(tmp_path, ".hwp").rename(tmp_path / "locked.hwp")
    with olefile.OleFileIO(str(encrypted), write_mode=True) as ole:
        header = bytearray(ole.openstream("FileHeader").read())
        header[36] |= 0x02  # HWP 5.x FileHeader property bit 1: password-encrypted
        ole.write_stream("FileHeader", bytes(header))

    documents, problems = load_paths([corrupt, encrypted, good])

    assert [d.metadata["file_type"] for d in documents] == ["hwpx"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert set(reasons) == {"broken.hwp", "locked.hwp"}
    assert "not a valid HWP" in reasons["broken.hwp"]
    assert "encrypted" in reasons["locked.hwp"]
    assert not any(p.ignored for p in problems)


def test_folder_ingest_picks_up_hwp_files(tmp_path):
    _write(tmp_path, ".hwp")
    _write(tmp_path, ".hwpx")
    documents, problems = load_paths([tmp_path])
    assert problems == []
    assert sorted(d.metadata["file_type"] for d in documents) == ["hwp", "hwpx"]


NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")


@pytest.mark.skipif(not NANUM.exists(), reason="needs Debian's fonts-nanum for a Hangul PDF")
def test_korean_pdf_text_layer_extracts_in_reading_order(tmp_path):
    pdfmetrics = pytest.importorskip("reportlab.pdfbase.pdfmetrics", reason="reportlab writes it")
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("Nanum", str(NANUM)))
    path = tmp_path / "guide.pdf"
    page = canvas.Canvas(str(path))
    page.setFont("Nanum", 12)
    lines = [
        "서울은 대한민국의 수도이다.",
        "한강이 도시를 가로지른다.",
        "종로구에는 경복궁이 있다.",
    ]
    for number, line in enumerate(lines):
        page.drawString(72, 760 - 20 * number, line)
    page.showPage()
    page.save()

    documents, problems = load_paths([path])

    assert problems == []
    text = documents[0].text
    positions = [text.index(line) for line in lines]
    assert positions == sorted(positions)
