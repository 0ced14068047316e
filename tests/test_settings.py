"""Settings: precedence, one clear error per bad value, secrets never shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rag_app.errors import ConfigError
from rag_app.settings import load_settings
from tests.conftest import rag_app_command


def test_defaults_are_offline_memory_and_extractive() -> None:
    settings = load_settings()
    assert settings.vector_store == "memory"
    assert settings.embed_model == "e5"
    assert settings.resolved_llm == "extractive"
    assert settings.retriever == "hybrid"


def test_precedence_arguments_over_environment_over_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("RAG_TOP_K=7\nRAG_COLLECTION=from_dotenv\nRAG_CHUNK_OVERLAP=9\n")
    monkeypatch.setenv("RAG_COLLECTION", "from_env")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "11")
    settings = load_settings(chunk_overlap=13)
    assert settings.top_k == 7
    assert settings.collection == "from_env"
    assert settings.chunk_overlap == 13


def test_auto_llm_picks_openai_when_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load_settings().resolved_llm == "openai:gpt-4o-mini"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("RAG_VECTOR_STORE", "weaviate", "'memory', 'chroma' or 'pinecone'"),
        ("RAG_EMBED_MODEL", "bert", "'e5', 'use', 'local' (or 'minilm')"),
        ("RAG_LLM", "gpt", "'auto', 'extractive' or 'openai:<model>'"),
        ("RAG_RETRIEVER", "fuzzy", "'hybrid', 'dense' or 'keyword'"),
        ("RAG_TOP_K", "zero", "integer"),
    ],
)
def test_bad_value_names_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert variable in message
    assert allowed in message


def test_cli_reports_a_bad_value_in_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        rag_app_command("config"),
        env={"PATH": "/usr/bin:/bin", "RAG_VECTOR_STORE": "weaviate", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: RAG_VECTOR_STORE='weaviate'")
    assert "Traceback" not in result.stderr


def test_config_masks_every_secret(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "OPENAI_API_KEY": "sk-very-secret-openai",
        "PINECONE_API_KEY": "pc-very-secret-pinecone",
    }
    result = subprocess.run(
        rag_app_command("config"), env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "very-secret" not in result.stdout + result.stderr
    assert "OPENAI_API_KEY=****" in result.stdout
    assert "PINECONE_API_KEY=****" in result.stdout
    assert "RAG_VECTOR_STORE=memory" in result.stdout


def test_env_example_lists_every_setting_and_loads(tmp_path: Path) -> None:
    from rag_app.settings import Settings, env_name

    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line[:40]}
    listed = {name for name in listed if not name.startswith("#")}
    others = {
        "RAG_LOG_LEVEL",
        "RAG_NOTEBOOK_SCALE",
        "RAG_SHARED_DIR",
        "SIFT1M_DIR",
        "PINECONE_LOCAL_FAULT_RATE",
    }
    assert {env_name(f) for f in Settings.model_fields.values()} | others == listed
    (tmp_path / ".env").write_text(example)
    assert load_settings().vector_store == "memory"
