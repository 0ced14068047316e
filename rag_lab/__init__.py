"""Helpers of the notebooks, tests and benchmarks; not part of the rag_app library.

`hnsw` is the KNN-vs-HNSW lab of notebook 03 (faiss sweeps, plots), `tables` formats rows as
Markdown, `data` locates ../shared and SIFT1M, `notebooks` wires the store-switching notebooks
to local servers, `shapes` draws the coloured shapes of the image notebook. May import
`rag_app`, `pinecone_local` and dev-only packages (matplotlib); rag_app never imports it.
"""
