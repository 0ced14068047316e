"""describe / generate / reimagine against the loopback OpenAI-compatible server: vision chat
with image parts, image generation answered by URL and by base64, and each failure as one line.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from rag_app.errors import ConfigError, RemoteServiceError
from rag_app.images.vision import describe_image, generate_image, side_by_side
from rag_app.settings import Settings
from tests.conftest import cli_env, rag_app_command
from tests.support.openai_server import running_openai_server


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (220, 30, 30)).save(path)
    return path


REFUSED_COLOUR = (1, 2, 3)


def refused_digest(folder: Path) -> str:
    """The server's tag of the picture the scripted vision model refuses."""
    path = folder / "refused.png"
    Image.new("RGB", (8, 8), REFUSED_COLOUR).save(path)
    return f"[image {hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("script")
    path = folder / "rules.json"
    rules = [
        {"contains": "forbidden", "status": 400, "times": -1},
        {"contains": refused_digest(folder), "refusal": "I can't help with that.", "times": -1},
    ]
    path.write_text(json.dumps(rules))
    return path


@pytest.fixture(scope="module")
def server(script: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    with running_openai_server(script_path=script, echo_chars=20) as url:
        yield url


@pytest.fixture
def vision_settings(make_settings: Callable[..., Settings], server: str) -> Settings:
    return make_settings(openai_api_key="test-key", openai_base_url=server, retry_seconds=1)


def test_describe_sends_the_image_inline(vision_settings: Settings, picture: Path) -> None:
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()[:8]
    description = describe_image(vision_settings, picture)
    assert description.startswith("ECHO: Describe this")
    assert f"[image {digest} {picture.stat().st_size} bytes]" in description


@pytest.mark.parametrize("model", ["openai:dall-e-3", "openai:gpt-image-1"])
def test_generate_saves_url_and_base64_answers(
    vision_settings: Settings, tmp_path: Path, model: str
) -> None:
    settings = vision_settings.model_copy(update={"image_gen": model})
    out = generate_image(settings, "a red car at dusk", tmp_path / "out" / "car.jpg")
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (16, 16)


def test_refusals_and_missing_key_are_one_clear_error(
    vision_settings: Settings, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(RemoteServiceError, match="refused the content.*Rephrase"):
        generate_image(vision_settings, "something forbidden", tmp_path / "x.png")
    refused = tmp_path / "refused.png"
    Image.new("RGB", (8, 8), REFUSED_COLOUR).save(refused)
    with pytest.raises(RemoteServiceError, match="refused to describe .*refused.png"):
        describe_image(vision_settings, refused)
    with pytest.raises(ConfigError, match="RAG_IMAGE_GEN=openai:dall-e-3 needs OPENAI_API_KEY"):
        generate_image(make_settings(), "a car", tmp_path / "y.png")


def test_rate_limit_is_one_line_from_the_cli(picture: Path, make_settings, tmp_path: Path) -> None:
    with running_openai_server(fail_first=100, fail_status=429) as url:
        settings = make_settings(openai_api_key="k", openai_base_url=url, retry_seconds=0.5)
        done = subprocess.run(
            rag_app_command("generate", "a red car", "--out", str(tmp_path / "car.png")),
            env=cli_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "HTTP 429" in done.stderr


def test_side_by_side_sheet_keeps_every_picture(picture: Path, tmp_path: Path) -> None:
    other = tmp_path / "blue.png"
    Image.new("RGB", (10, 10), (0, 0, 255)).save(other)
    sheet = side_by_side([("a", picture), ("b", other)], tmp_path / "sheet.png")
    with Image.open(sheet) as image:
        width = round(40 * 256 / 30) + 256
        assert image.size[0] == width
        assert image.getpixel((5, 5)) == (220, 30, 30)
        assert image.getpixel((width - 5, 5)) == (0, 0, 255)
