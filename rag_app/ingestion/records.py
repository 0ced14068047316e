"""What one chunk's record may hold: the metadata shape and size every store accepts.

Pinecone limits a record's metadata to 40 KB; the limit is applied to every backend so they
all accept the same documents. Metadata is flattened to one documented shape for the same
reason (Chroma and Pinecone take only flat values).
"""

from __future__ import annotations

import json
from typing import Any

from llama_index.core.schema import RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

#: Pinecone's metadata limit per record; enforced for every backend so they all behave alike.
MAX_RECORD_METADATA_BYTES = 40 * 1024
#: Bounds of the JSON a node adds around its text, metadata and relationships (field names,
#: templates, offsets, class names: ~400 bytes measured) and of one relationship's fields.
NODE_FIELDS_BYTES = 1024
RELATIONSHIP_FIELDS_BYTES = 256


def oversized(nodes: list[TextNode]) -> str | None:
    for node in nodes:
        if record_size_bound(node) <= MAX_RECORD_METADATA_BYTES:
            continue
        size = len(json.dumps(node_to_metadata_dict(node), ensure_ascii=False).encode("utf-8"))
        if size > MAX_RECORD_METADATA_BYTES:
            return (
                f"chunk metadata is {size} bytes, over the {MAX_RECORD_METADATA_BYTES}-byte "
                "per-record limit (Pinecone's, applied to every store); shorten the document's "
                "metadata"
            )
    return None


def record_size_bound(node: TextNode) -> int:
    """At least the size of the node's record metadata, without serialising the node.

    Why: the exact size needs LlamaIndex's node dump, which was 2 s of a 10k-chunk ingest;
    for ordinary chunks this bound is far under the limit. The record holds the flat metadata
    and `_node_content`, the node's JSON (its text, its metadata three times counting the
    excluded-key lists, its relationships, fixed fields) as a string whose escaping at most
    doubles it.
    """
    text = len(json.dumps(node.text, ensure_ascii=False).encode("utf-8"))
    metadata = len(json.dumps(node.metadata, ensure_ascii=False, default=str).encode("utf-8"))
    related = sum(
        len(json.dumps([r.node_id, r.metadata], ensure_ascii=False, default=str).encode("utf-8"))
        + RELATIONSHIP_FIELDS_BYTES
        for r in node.relationships.values()
        if isinstance(r, RelatedNodeInfo)
    )
    doc_id = len(json.dumps(node.ref_doc_id or "", ensure_ascii=False).encode("utf-8"))
    content = text + 3 * metadata + related + NODE_FIELDS_BYTES
    return 2 * content + metadata + 3 * doc_id + NODE_FIELDS_BYTES


def flatten_metadata(metadata: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One documented shape for every store.

    None values are dropped; nested dicts become dotted keys (`a.b`); lists become lists of
    strings; strings, numbers and booleans (Korean text included) are kept as they are.
    """
    flat: dict[str, Any] = {}
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update(flatten_metadata(value, f"{name}."))
        elif isinstance(value, list | tuple | set):
            flat[name] = [str(v) for v in value if v is not None]
        elif isinstance(value, str | int | float | bool):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
