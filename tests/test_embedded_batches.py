"""`Backend.read_embedded` / `write_embedded`: the matrix path `rag-app migrate` copies through.

The batch must be what the node path gives (same nodes, same vectors, the requested order,
missing ids left out), and the memory store must take its matrix as it takes `embedding` lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from rag_app.settings import load_settings
from rag_app.stores.base import Backend, EmbeddedBatch
from rag_app.stores.memory.table import DimensionMismatchError
from rag_app.stores.registry import open_backend

DIM = 8


def chunk(number: int, vector: np.ndarray) -> TextNode:
    """A chunk with everything a node carries: offsets, excluded keys, three relationships."""
    node = TextNode(
        id_=f"doc:{number}",
        text=f"chunk {number} 한국어",
        embedding=vector.tolist(),
        start_char_idx=number * 10,
        end_char_idx=number * 10 + 9,
        metadata={"title": "doc", "chunk_index": number, "score": 0.5, "tags": ["a", "b"]},
        excluded_embed_metadata_keys=["chunk_index"],
        excluded_llm_metadata_keys=["chunk_index", "score"],
        metadata_template="{key}={value}",
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc", hash="h")
    node.relationships[NodeRelationship.NEXT] = RelatedNodeInfo(node_id=f"doc:{number + 1}")
    return node


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(6, DIM)).astype(np.float32)


def backend(store: str, folder: Path) -> Backend:
    settings = load_settings(
        vector_store=store, data_dir=folder, chroma_path=folder / "chroma", collection="batch"
    )
    return open_backend(settings, lambda: DIM)


@pytest.mark.parametrize("store", ["chroma", "memory"])
def test_read_embedded_keeps_the_requested_order_and_the_stored_vectors(
    store: str, tmp_path: Path, vectors: np.ndarray
) -> None:
    source = backend(store, tmp_path)
    nodes = [chunk(i, vectors[i]) for i in range(len(vectors))]
    source.upsert(nodes)
    source.flush()
    wanted = ["doc:4", "missing", "doc:0", "doc:2"]
    batch = source.read_embedded(wanted)
    assert [n.node_id for n in batch.nodes] == ["doc:4", "doc:0", "doc:2"]
    assert batch.vectors.dtype == np.float32 and batch.vectors.shape == (3, DIM)
    expected = vectors[[4, 0, 2]]
    if store == "memory":  # the memory store keeps rows L2-normalised
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(batch.vectors, expected, rtol=1e-6)
    assert batch.nodes[1].model_dump(exclude={"embedding"}) == source.fetch_nodes(["doc:0"])[
        "doc:0"
    ].model_dump(exclude={"embedding"})
    by_lists = source.fetch_embedded(wanted)
    assert list(by_lists) == ["doc:4", "doc:0", "doc:2"]
    np.testing.assert_allclose(by_lists["doc:2"].get_embedding(), expected[2], rtol=1e-6)
    assert source.read_embedded([]).nodes == []
    source.close()


def test_the_memory_store_writes_a_batch_as_it_writes_nodes(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    nodes = [chunk(i, vectors[i]) for i in range(len(vectors))]
    by_nodes, by_matrix = backend("memory", tmp_path / "a"), backend("memory", tmp_path / "b")
    by_nodes.upsert(nodes)
    bare = [n.model_copy(update={"embedding": None}) for n in nodes]
    by_matrix.write_embedded(EmbeddedBatch(bare, vectors.astype(np.float64)))
    by_matrix.flush()
    ids = [n.node_id for n in nodes]
    one, other = by_nodes.read_embedded(ids), by_matrix.read_embedded(ids)
    assert [n.model_dump() for n in one.nodes] == [n.model_dump() for n in other.nodes]
    np.testing.assert_array_equal(one.vectors, other.vectors)
    assert by_matrix.query(vectors[5].tolist(), 1)[0].node.node_id == "doc:5"
    assert vectors.dtype == np.float32 and not np.allclose(np.linalg.norm(vectors, axis=1), 1)
    with pytest.raises(DimensionMismatchError):
        by_matrix.write_embedded(EmbeddedBatch(bare[:2], np.ones((2, DIM + 1), np.float32)))


def test_a_chroma_batch_lands_in_memory_as_its_nodes_would(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    """Chroma's batch reaches the memory store as plain chunks read from its flat metadata
    (no nodes built): the memory rows must equal those its nodes give."""
    source = backend("chroma", tmp_path / "source")
    nodes = [chunk(i, vectors[i]) for i in range(len(vectors))]
    nodes[3].relationships.pop(NodeRelationship.SOURCE)  # a chunk without a document
    nodes[4].start_char_idx = nodes[4].end_char_idx = None
    source.upsert(nodes)
    ids = [n.node_id for n in nodes]
    by_chunks, by_nodes = backend("memory", tmp_path / "a"), backend("memory", tmp_path / "b")
    flat = source.read_embedded(ids)
    by_chunks.write_embedded(flat)
    assert "nodes" not in flat.__dict__  # the chunks came from the metadata, not from nodes
    by_nodes.write_embedded(EmbeddedBatch(source.read_embedded(ids).nodes, flat.vectors))
    one, other = by_chunks.read_embedded(ids), by_nodes.read_embedded(ids)
    assert [n.model_dump() for n in one.nodes] == [n.model_dump() for n in other.nodes]
    assert one.nodes[3].ref_doc_id is None and one.nodes[4].start_char_idx is None
    assert one.nodes[0].excluded_llm_metadata_keys == ["chunk_index", "score"]
    np.testing.assert_array_equal(one.vectors, other.vectors)
    source.close()
