"""Small helpers for the words of user-facing messages (kept free of heavy imports)."""


def plural(count: int, noun: str) -> str:
    """`1 chunk`, `2 chunks`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
