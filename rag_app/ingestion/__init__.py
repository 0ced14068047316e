"""The one ingestion path: files to documents, chunks, vectors and catalog records.

`loaders` reads files and SQuAD JSON, `chunking` cuts token-bounded chunks with offsets,
`pipeline` embeds and writes them with the catalog (idempotent, resumable), `catalog_store`
is the LlamaIndex vector store that keeps the catalog, `reindex` re-embeds a collection and
`consistency` checks and repairs catalog, store and keyword index.
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`, `rag_app.embeddings`,
`rag_app.stores`, `rag_app.retrieval`.
"""
