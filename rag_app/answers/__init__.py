"""Turning sources into answers: result types, the extractive answerer, LLM answerers, the cache.

`types` holds Source / Answer / Generated, `extractive` the offline answer quoting the best
sentences, `answerers` the LlamaIndex synthesizers and chat engines (extractive or OpenAI) and
`cache` the exact and semantic answer cache.
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`, `rag_app.embeddings`,
`rag_app.stores`, `rag_app.retrieval`.
"""
