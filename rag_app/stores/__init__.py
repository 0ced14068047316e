"""Vector-store backends behind one `Backend` interface, chosen by RAG_VECTOR_STORE.

`base` defines `Backend` (chunks, catalog records, manifest), `registry` maps a name to its
class (a new backend is one module here plus one line in `registry.BACKENDS`), and
`query_options` translates LlamaIndex query options (filters, MMR) per store.
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`.
"""
