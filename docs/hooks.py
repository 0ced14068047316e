"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

`<!-- settings-table -->` becomes the table of `rag_app.settings.Settings` (variable, default,
description) and `<!-- cli-reference -->` the reference of every `rag-app` command, built from
the argparse parsers that `rag-app` itself runs (`rag_app.cli.entry.build_parser` and
`pinecone_local.cli.build_parser`). Kept out of rag_app: only the docs build imports it.
"""

from __future__ import annotations

import argparse
import html
import re
from typing import Any

from pydantic import SecretStr

SETTINGS_MARKER = "<!-- settings-table -->"
CLI_MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers of a page with the tables generated from the code."""
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


def _escape(text: str) -> str:
    """Plain text made safe for Markdown (no stray HTML, emphasis or table pipes)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("*", "\\*")


def _cell(text: str) -> str:
    """Plain text for a table cell, on one line."""
    return _escape(" ".join(text.split()))


def _prose(text: str) -> str:
    """Docstring text for a table cell: keep its `code` spans, escape everything else."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(
        part.replace("|", "\\|") if part.startswith("`") else _escape(part) for part in parts
    )


def settings_table() -> str:
    """One row per Settings field; secrets never show a default, whatever it is."""
    from rag_app.settings import Settings, env_name

    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} has no description (add a docstring under it)")
        default = field.get_default()
        variable = env_name(field)
        if _is_secret(variable, field.annotation, default):
            shown = "(secret)"
        elif default is None or default == "":
            shown = "–"
        else:
            shown = f"`{default}`"
        rows.append(f"| `{variable}` | {shown} | {_prose(field.description)} |")
    return "\n".join(rows)


def _is_secret(variable: str, annotation: Any, default: Any) -> bool:
    """A SecretStr field, or one whose name says it holds a key, token or password."""
    named = any(word in variable for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
    return named or isinstance(default, SecretStr) or annotation in (SecretStr, SecretStr | None)


def cli_reference() -> str:
    """Every command and subcommand of `rag-app`: its help, usage and options."""
    from pinecone_local.cli import build_parser as pinecone_local_parser
    from rag_app.cli.entry import build_parser

    sections: list[str] = []
    _describe_commands(build_parser(), ["rag-app"], sections)
    local = pinecone_local_parser("rag-app pinecone-local")
    sections.append(_command_section(local, ["rag-app", "pinecone-local"], local.description))
    return "\n\n".join(sections)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, Any]]:
    """(name, help, parser) of each subcommand, in the order `--help` lists them."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def _describe_commands(parser: argparse.ArgumentParser, words: list[str], out: list[str]) -> None:
    for name, help_text, sub in _subcommands(parser):
        if name == "pinecone-local":
            continue  # its own parser, added after the others
        path = [*words, name]
        out.append(_command_section(sub, path, help_text))
        _describe_commands(sub, path, out)


def _command_section(parser: argparse.ArgumentParser, words: list[str], help_text: str) -> str:
    level = "#" * min(len(words) + 1, 4)
    lines = [f"{level} `{' '.join(words[1:])}`", ""]
    if help_text:
        lines += [_cell(help_text[0].upper() + help_text[1:]) + ".", ""]
    parser.prog = " ".join(words)
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines += ["```text", " ".join(usage.split()), "```", ""]
    rows = [_option_row(action) for action in parser._actions if _shown(action)]
    if rows:
        lines += ["| argument | default | meaning |", "|---|---|---|", *rows]
    return "\n".join(lines)


def _shown(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._SubParsersAction | argparse._HelpAction) and (
        action.help != argparse.SUPPRESS
    )


def _option_row(action: argparse.Action) -> str:
    if action.option_strings:
        metavar = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
        name = ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)
    else:
        name = f"`{action.metavar or action.dest}`"
    default = action.default
    shown = "–" if default in (None, False, argparse.SUPPRESS, [], "") else f"`{default}`"
    return f"| {name} | {shown} | {_cell(action.help or '')} |"
