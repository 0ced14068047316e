"""Finding the chunks for a question: dense, keyword (BM25 with Korean morphology) and hybrid.

`keyword_index` holds the tokenizers and BM25 index, `keyword_sync` keeps the local keyword
index in step with the store, `pinecone_sparse` runs BM25 in a Pinecone sparse index, `fusion`
merges dense and keyword rankings, `relevance` says whether a source answers at all, `rerank`
is the optional cross-encoder, `ranker` puts them together over any stored item (plain chunks,
without LlamaIndex, for `rag-app retrieve`) and `retriever` is that ranking over LlamaIndex
nodes, as a LlamaIndex retriever.
May import: `rag_app.errors`, `rag_app.settings`, `rag_app.util`, `rag_app.embeddings`,
`rag_app.stores`.
"""
