"""rag_app: one ingestion and one query path over memory, Chroma and Pinecone (LlamaIndex)."""

from rag_app.app import RagApp
from rag_app.settings import Settings, load_settings

__all__ = ["RagApp", "Settings", "load_settings"]
