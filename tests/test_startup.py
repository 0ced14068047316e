"""Start-up guarantees that are behaviours, not timings (timings: benchmarks/startup_bench.py).

The light commands import none of the heavy stacks, an English question never constructs kiwi,
and extractive answers are those of the code before these changes (strings recorded from it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag_app.answers.extractive import extract_answer
from rag_app.answers.types import Source
from rag_app.retrieval import keyword_index
from rag_app.stores.base import DocRecord
from rag_app.stores.memory.backend import MemoryBackend
from tests.conftest import cli_env

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
HEAVY = (
    "llama_index.core",
    "torch",
    "transformers",
    "sentence_transformers",
    "chromadb",
    "pinecone",
    "kiwipiepy",
    "openai",
    "numpy",
)
#: Runs the CLI in this process, then prints which heavy modules it imported.
PROBE = (
    "import sys\n"
    "from rag_app.cli.entry import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("command", [["config"], ["stores"], ["docs", "list"]])
def test_light_commands_import_no_heavy_stack(make_settings, command: list[str]) -> None:
    settings = make_settings()
    MemoryBackend(settings, settings.collection).put_documents([DocRecord("a.md", "h", 2)])
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY="
    if command == ["docs", "list"]:
        assert "a.md\t2 chunks" in done.stdout


def _samples() -> list[Source]:
    paths = sorted(SAMPLES.glob("*.md"))
    return [
        Source(n, p.name, 0.5, p.read_text(encoding="utf-8"), None, None, relevant=True)
        for n, p in enumerate(paths, start=1)
    ]


def test_english_question_never_constructs_kiwi(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even over Korean chunks: no Korean term can match an English question."""

    def refuse() -> None:
        raise AssertionError("kiwi constructed for an English question")

    monkeypatch.setattr(keyword_index, "_get_kiwi", refuse)
    answer = extract_answer("What does ef_search control in HNSW?", _samples())
    assert answer.startswith("ef_search는 검색할 때 쓰는 후보 목록의 크기다. [1]")


# Recorded from the extractive answerer before start-up work (commit de3dbf6) on the samples.
BEFORE = {
    "What does ef_search control in HNSW?": "ef_search는 검색할 때 쓰는 후보 목록의 크기다. [1] "
    "ef_search는 인덱스를 만든 뒤에도 바꿀 수 있다. [1] "
    "ef_search is the size of the candidate list while searching. [2]",
    "How does a vector database store embeddings?": "A vector database stores embeddings: "
    "fixed-length lists of numbers that a model computes from text, images or audio so that "
    "similar items get nearby vectors. [4] Each chunk is stored in a vector database with its "
    "embedding. [3] Chroma, Pinecone, Milvus, Qdrant and Weaviate are vector databases. [4]",
    "HNSW에서 ef_search는 무엇을 조절하나요?": "ef_search는 검색할 때 쓰는 후보 목록의 크기다. [1] "
    "ef_search는 인덱스를 만든 뒤에도 바꿀 수 있다. [1] "
    "ef_search is the size of the candidate list while searching. [2]",
}


@pytest.mark.parametrize("question", list(BEFORE))
def test_answers_are_those_of_before(question: str) -> None:
    assert extract_answer(question, _samples()) == BEFORE[question]


def test_english_question_over_english_chunks_unchanged() -> None:
    english = [s for s in _samples() if not keyword_index.has_hangul(s.text)]
    answer = extract_answer("What does ef_search control in HNSW?", english)
    assert answer == (
        "ef_search is the size of the candidate list while searching. [2] A larger ef_search "
        "raises recall and makes each query slower. [2] Unlike M and ef_construction, "
        "ef_search can be changed after the index is built. [2]"
    )


def test_kiwi_analyses_only_the_question_of_an_extractive_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sentences' Korean terms are found as spelled: ingestion analysed them already."""
    kiwi = keyword_index._get_kiwi()
    analysed: list[str] = []

    class Recording:
        def tokenize(self, text):
            texts = [text] if isinstance(text, str) else list(text)
            analysed.extend(texts)
            return kiwi.tokenize(text if isinstance(text, str) else texts)

    monkeypatch.setattr(keyword_index, "_get_kiwi", Recording)
    question = "HNSW에서 ef_search는 무엇을 조절하나요?"
    assert extract_answer(question, _samples()) == BEFORE[question]
    assert analysed == [question]


def test_shared_terms_finds_korean_terms_as_spelled_and_others_as_tokens() -> None:
    terms = set(keyword_index.tokenize("벡터 데이터베이스는 임베딩을 검색한다 searching"))
    found = keyword_index.shared_terms("임베딩 벡터를 저장하고 searches it", terms)
    assert {"임베딩", "벡터", "search"} <= found
    assert "데이터베이스" not in found
    assert found <= terms
