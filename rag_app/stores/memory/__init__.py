"""The in-memory backend: a numpy row table (exact or HNSW search) persisted under RAG_DATA_DIR.

`table` holds the rows and searches them, `generations` writes and names their files on disk,
`vector_store` is the LlamaIndex `MemoryVectorStore` over a table, `snapshot` reads the
persisted rows without LlamaIndex (search-only processes), `filters` evaluates metadata filters
as masks over columns, and `backend` is the `Backend` that the registry opens.
"""
