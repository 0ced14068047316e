"""Shared fixtures: isolated settings, one loaded embedding model, real servers.

Every test runs in its own working directory with no RAG_*/CHROMA_*/PINECONE_*/OPENAI_*
variables from the developer's environment, so a local `.env` never leaks in.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rag_app.app import RagApp
from rag_app.embeddings.models import Embedder, build_embedder
from rag_app.settings import Settings, load_settings
from rag_lab.data import shared_dir
from rag_lab.shapes import Shape, save_pictures
from tests.support.chroma_server import ChromaServer
from tests.support.pinecone_server import running_pinecone_local
from tests.support.tiny_clip import HELD_OUT_SEED, train_tiny_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
PREFIXES = ("RAG_", "CHROMA_", "PINECONE_", "OPENAI_")
#: Backends every store test runs on (pinecone through the local Pinecone-compatible server).
BACKENDS = ["memory", "chroma", "chroma-server", "pinecone"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The offline model, loaded once (no cache: tests that count embeddings build their own)."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("embedder"))
    return build_embedder(settings, cache=False)


@pytest.fixture(scope="session")
def use_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """A second offline model (multilingual USE, fast to load and run), for model switches."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("use"), embed_model="use")
    return build_embedder(settings, cache=False)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIPModel trained once per session on synthetic shapes, saved by path."""
    return train_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> dict[Shape, Path]:
    """One picture per class the tiny CLIP never saw."""
    return save_pictures(tmp_path_factory.mktemp("held-out") / "pictures", HELD_OUT_SEED)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    yield server
    server.stop()


def backend_overrides(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if name == "memory":
        return {"vector_store": "memory"}
    if name == "chroma":
        return {"vector_store": "chroma"}
    if name == "chroma-server":
        server: ChromaServer = request.getfixturevalue("chroma_server")
        return {"vector_store": "chroma", "chroma_host": server.host, "chroma_port": server.port}
    if name == "pinecone":
        url: str = request.getfixturevalue("pinecone_local")
        return {"vector_store": "pinecone", "pinecone_host": url}
    raise ValueError(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        # Document ids relative to the test's folder (the RAG_DOC_ROOT rule of docs/cli.md).
        overrides.setdefault("doc_root", tmp_path)
        return load_settings(**overrides)

    return make


@pytest.fixture(scope="session")
def pinecone_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_pinecone_local(tmp_path_factory.mktemp("pinecone-local")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings],
    embedder: Embedder,
    backend_name: str,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., RagApp]]:
    """RagApp factory on the parametrized backend, each test in a collection of its own."""
    apps: list[RagApp] = []
    collection = f"t{abs(hash(request.node.nodeid)) % 10**10}"

    def make(app_embedder: Embedder | None = None, **overrides: Any) -> RagApp:
        settings = make_settings(
            **{**backend_overrides(backend_name, request), "collection": collection, **overrides}
        )
        app = RagApp(settings, embedder=app_embedder or embedder)
        apps.append(app)
        return app

    yield make
    if apps:
        apps[-1].backend.drop()
    for app in apps:
        app.close()


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for a `rag-app` subprocess using these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    for name, value in settings.masked().items():
        if value and value != "****":
            env[name] = value
    for name in ("OPENAI_API_KEY", "PINECONE_API_KEY"):
        secret = getattr(settings, name.lower())
        if secret is not None:
            env[name] = secret.get_secret_value()
    return env


def rag_app_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag_app", *args]


def require_shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"needs ../shared/{relative}, which is absent on this machine")
    return path
