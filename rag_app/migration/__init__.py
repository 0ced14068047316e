"""`rag-app migrate` / `RagApp.migrate_to`: change the vector database without re-embedding.

`targets` builds the target's `Settings` (the source's, changed by RAG_TO_* variables and
flags), `copy` streams one collection's stored vectors, texts, metadata, ids and catalog into
the target with a checkpoint, `verify` compares the two sides, and `run` puts them together for
a collection and its side collections (images, prompts, optionally the answer cache).
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`, `rag_app.stores`,
`rag_app.retrieval`, `rag_app.ingestion`, `rag_app.images`, `rag_app.answers` (never
`rag_app.app` or `rag_app.cli`, which import it).
"""
