"""Images: CLIP embeddings, image and prompt search, zero-shot labels, describe and generate.

`clip` loads the CLIP model, `search` keeps the image and prompt side collections, `zero_shot`
classifies an image against label texts, `vision` calls OpenAI's vision and image models.
May import every package below it: `rag_app.util`, `rag_app.embeddings`, `rag_app.stores`,
`rag_app.ingestion`.
"""
