"""The documentation site builds in strict mode, and its runnable examples run as written.

An example is runnable when the line before its fence is `<!-- run -->`, or
`<!-- run expect: REGEX -->` to also require REGEX (multi-line) in its output. Each runs from
the repository root with `rag-app` from this venv, in a copy of one scratch RAG_DATA_DIR that
holds the ingested samples (as after `docs/getting-started.md`), with no store, key or server
configured from outside, so the examples are independent of each other and of the machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
BIN = Path(sys.executable).parent
MARKER = re.compile(
    r"^<!-- run(?: expect: (?P<expect>.+?))? -->\n```(?P<lang>sh|python)\n(?P<code>.*?)\n```$",
    re.DOTALL | re.MULTILINE,
)
#: Variables that would point an example at a real store, key or server.
OUTSIDE = ("RAG_", "PINECONE_", "CHROMA_", "OPENAI_", "WANDB_")
EXAMPLE_TIMEOUT = 180


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    lang: str
    code: str
    expect: str | None

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def _examples() -> list[Example]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        matches = list(MARKER.finditer(text))
        assert len(matches) == len(re.findall(r"^<!-- run", text, re.MULTILINE)), (
            f"{page.name}: a `<!-- run` marker is not directly followed by a sh or python fence"
        )
        for m in matches:
            line = text.count("\n", 0, m.start()) + 1
            found.append(Example(page.name, line, m["lang"], m["code"], m["expect"]))
    return found


EXAMPLES = _examples()


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUTSIDE)}
    env.update(
        RAG_DATA_DIR=str(data_dir),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        NO_MKDOCS_2_WARNING="1",
    )
    return env


def _run(command: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env=_environment(data_dir),
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the bundled samples, as `docs/getting-started.md` leaves it."""
    data_dir = tmp_path_factory.mktemp("docs-data")
    done = _run([str(BIN / "rag-app"), "ingest", "rag_app/samples", "--no-progress"], data_dir)
    assert done.returncode == 0, done.stderr
    return data_dir


def test_site_builds_in_strict_mode_with_generated_pages(tmp_path: Path) -> None:
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    done = _run(command, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    from rag_app.cli.entry import build_parser
    from rag_app.settings import Settings, env_name

    configuration = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    for field in Settings.model_fields.values():
        assert f"<code>{env_name(field)}</code>" in configuration
    assert "settings-table" not in configuration
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in commands:
        assert f'id="{name}"' in cli, f"rag-app {name} is missing from docs/cli.md"
    assert "cli-reference" not in cli


def test_settings_table_describes_every_variable_and_shows_no_secret() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    from rag_app.settings import Settings, env_name

    rows = {r.split(" | ")[0].strip("| `"): r for r in hooks.settings_table().splitlines()[2:]}
    assert set(rows) == {env_name(f) for f in Settings.model_fields.values()}
    for variable in ("OPENAI_API_KEY", "PINECONE_API_KEY"):
        assert rows[variable].split(" | ")[1] == "(secret)"
    assert all(len(r.split(" | ")[2]) > 20 for r in rows.values()), "a description is too short"


def test_every_nav_entry_is_a_page_and_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(entries: list) -> list[str]:
        flat = []
        for entry in entries:
            (value,) = entry.values()
            flat += pages(value) if isinstance(value, list) else [value]
        return flat

    in_nav = pages(config["nav"])
    assert sorted(in_nav) == sorted(p.name for p in DOCS.glob("*.md"))


def test_readme_stays_short_and_its_links_resolve() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets, "README.md links to no docs page"
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_python_is_a_runnable_docs_example() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)\n```$", readme, re.DOTALL | re.MULTILINE)
    assert blocks, "README.md shows no Python"
    runnable = {e.code for e in EXAMPLES}
    assert all(block in runnable for block in blocks), "README.md's Python is not run anywhere"


def test_the_docs_mark_examples_of_the_main_uses() -> None:
    pages = {e.page for e in EXAMPLES}
    assert {"getting-started.md", "python-api.md", "stores.md", "cli.md"} <= pages
    assert any("llama_index" in e.code for e in EXAMPLES if e.lang == "python")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_runnable_example_runs(example: Example, ingested: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(ingested, data_dir)
    if example.lang == "sh":
        command = ["bash", "-e", "-o", "pipefail", "-c", example.code]
    else:
        command = [sys.executable, "-c", example.code]
    done = _run(command, data_dir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{example.name} exited {done.returncode}:\n{output}"
    if example.expect:
        assert re.search(example.expect, output, re.MULTILINE), (
            f"{example.name}: output does not match {example.expect!r}:\n{output}"
        )
