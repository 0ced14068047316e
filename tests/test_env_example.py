""".env.example is the settings' second description: it must list every variable, truthfully."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_app.settings import Settings, env_name

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def _assignments() -> dict[str, str]:
    """VARIABLE -> value of each uncommented `VARIABLE=value` line."""
    found = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            found[m[1]] = m[2]
    return found


def test_env_example_lists_every_settings_variable() -> None:
    listed = _assignments()
    missing = [env_name(f) for f in Settings.model_fields.values() if env_name(f) not in listed]
    assert not missing, f"add these to .env.example: {missing}"


@pytest.mark.parametrize(
    "field_name",
    [n for n, f in Settings.model_fields.items() if _assignments().get(env_name(f))],
)
def test_env_example_values_are_the_defaults(field_name: str) -> None:
    field = Settings.model_fields[field_name]
    value = _assignments()[env_name(field)]
    assert Settings(_env_file=None, **{field_name: value}) == Settings(_env_file=None), (
        f"{env_name(field)}={value} in .env.example is not the default {field.get_default()!r}"
    )
