"""Plumbing every layer uses: atomic files and locks, retries, logging, wording, the OpenAI client,
pausing the garbage collector over bulk copies.

Imports only `rag_app.errors` and `rag_app.settings`; nothing else in rag_app imports upward
into this package's callers.
"""
