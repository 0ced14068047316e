"""Errors a user can fix: the CLI prints their message as one line, never a traceback."""


class RagAppError(Exception):
    """A problem the user can fix: the message names the problem and the fix."""


class ConfigError(RagAppError):
    """A setting has a value the application cannot use."""


class EmbeddingMismatchError(RagAppError):
    """The store was built with another embedding model or dimension."""


class RemoteServiceError(RagAppError):
    """A server rag-app depends on (OpenAI-compatible, Pinecone, Chroma) failed or refused."""
