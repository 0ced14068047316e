"""Who may call the API and what an upload may be.

Loopback binds may run without a key (one person on their own machine); any other bind
exposes the collection to a network, so it refuses to start without RAG_API_KEY. With a key
every `/v1` route but health requires `Authorization: Bearer <key>`, compared in constant
time. Uploaded file names are ids only: one name part, a supported text type, never a path.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import PurePosixPath

from fastapi import HTTPException, Request

from rag_app.errors import ConfigError
from rag_app.ingestion.loaders import HTML_SUFFIXES, READERS_BY_SUFFIX, TEXT_SUFFIXES
from rag_app.settings import Settings

#: File types an upload may have: the text documents the loaders read (no SQuAD JSON, whose
#: ids come from its content, and no images, which belong to the CLIP collection).
UPLOAD_SUFFIXES = frozenset(TEXT_SUFFIXES | set(READERS_BY_SUFFIX) | HTML_SUFFIXES)
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve a network without a key."""
    if not is_loopback(host) and not _key(settings):
        raise ConfigError(
            f"--host {host} makes the API reachable from other machines: set RAG_API_KEY to a "
            "long random token (clients send `Authorization: Bearer <token>`), or bind "
            "127.0.0.1."
        )


def _key(settings: Settings) -> str:
    return settings.api_key.get_secret_value() if settings.api_key else ""


def bearer_dependency(settings: Settings):
    """A FastAPI dependency that checks the bearer key (nothing when no key is set)."""
    expected = _key(settings).encode("utf-8")

    def require_key(request: Request) -> None:
        if not expected:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode("utf-8"), expected
        ):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong API key: send `Authorization: Bearer <RAG_API_KEY>`",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_key


def upload_name(filename: str | None) -> str:
    """The id-safe name of an uploaded file, or ValueError saying why it is refused."""
    name = (filename or "").strip()
    if not name:
        raise ValueError("the file has no name")
    if _BAD_NAME.search(name) or name in (".", "..") or name.startswith("."):
        raise ValueError(
            'file names may not contain path separators, control characters or :*?"<>| '
            "and may not start with '.'; rename the file"
        )
    if len(name) > 200:
        raise ValueError("the file name is longer than 200 characters; rename the file")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        accepted = ", ".join(sorted(UPLOAD_SUFFIXES))
        raise ValueError(f"{suffix or 'no extension'} files are not accepted; upload {accepted}")
    return name
