"""Logging for the CLI: level from RAG_LOG_LEVEL, and no secret ever reaches a log line.

Client libraries log requests at DEBUG; a filter on the root handlers replaces every configured
secret value (API keys) in the formatted message with `****`.
"""

from __future__ import annotations

import logging
import os

from rag_app.settings import Settings, mask_secret


class SecretMaskingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, mask_secret(secret))
            record.msg, record.args = message, None
        return True


def configure_logging(settings: Settings) -> None:
    level = os.environ.get("RAG_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    secrets = [
        s.get_secret_value()
        for s in (settings.openai_api_key, settings.pinecone_api_key)
        if s is not None
    ]
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretMaskingFilter(secrets))
