"""The in-memory backend: a numpy row table (exact or HNSW search) persisted under RAG_DATA_DIR.

`vector_store` is the LlamaIndex `MemoryVectorStore`, `filters` evaluates metadata filters as
masks over columns, and `backend` is the `Backend` that the registry opens.
"""
