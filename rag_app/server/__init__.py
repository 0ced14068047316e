"""`rag-app serve`: the HTTP API, its OpenAI-compatible endpoints and the chat page.

`service` wraps one long-lived `RagApp` (models loaded once, writes serialised against reads),
`api` builds the FastAPI application with its routes and JSON errors, `openai_compat` the
`/v1/models` and `/v1/chat/completions` routes, `security` the bearer key, the bind check and
the upload rules; `static/` is the page (no build step, no CDN). It sits above `rag_app.app`
and imports it; only the CLI (`rag_app.cli.serve`) and tests import this package.
"""

from rag_app.server.api import create_app
from rag_app.server.service import Service

__all__ = ["Service", "create_app"]
