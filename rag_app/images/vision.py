"""OpenAI vision and image generation: describe an image, generate one, and the book's
three-way comparison (`reimagine`): images generated from the vision model's description, from
the image's original prompt and from the stored prompt nearest to the image, side by side.

Calls go through the `openai` client over `rag_app.util.openai_client.http_client` (timeouts,
bounded retries) and `openai_errors`, so no key, a refusal and a 429 are each one line.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rag_app.errors import ConfigError, RagAppError, RemoteServiceError
from rag_app.images.search import ImageSearch
from rag_app.ingestion.loaders import load_image
from rag_app.settings import Settings
from rag_app.util.openai_client import http_client, openai_errors

DESCRIBE_INSTRUCTION = (
    "Describe this image as one prompt for an image generation model: the subject, colours, "
    "style and composition, in one or two sentences. Answer with the prompt only."
)
#: Height of each picture on the side-by-side sheet, in pixels.
SHEET_HEIGHT = 256
CAPTION_HEIGHT = 24


@dataclass
class Reimagined:
    """What `reimagine` used and wrote: the three prompts and the image files."""

    description: str
    original_prompt: str
    found_prompt: str
    files: dict[str, Path] = field(default_factory=dict)
    sheet: Path | None = None


def _client(settings: Settings, variable: str, spec: str) -> Any:
    from openai import OpenAI

    if settings.openai_api_key is None:
        raise ConfigError(
            f"{variable}={spec} needs OPENAI_API_KEY (set it in the environment or .env; "
            "OPENAI_BASE_URL points at any OpenAI-compatible server)."
        )
    return OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.openai_timeout,
        http_client=http_client(settings),
    )


def data_url(path: Path) -> str:
    """The image as a `data:` URL, the form vision chat models accept inline."""
    load_image(path)  # a missing or unreadable file is one clear error before any request
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def describe_image(settings: Settings, path: Path) -> str:
    """A prompt-like description of the image by RAG_VISION_LLM."""
    url = data_url(path)
    client = _client(settings, "RAG_VISION_LLM", settings.vision_llm)
    content = [
        {"type": "text", "text": DESCRIBE_INSTRUCTION},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    with openai_errors(f"describing {path.name} with {settings.vision_llm}", settings):
        response = client.chat.completions.create(
            model=settings.vision_llm.removeprefix("openai:"),
            messages=[{"role": "user", "content": content}],
            temperature=0.0,
        )
    message = response.choices[0].message
    if getattr(message, "refusal", None) or not (message.content or "").strip():
        reason = getattr(message, "refusal", None) or "an empty answer"
        raise RemoteServiceError(
            f"{settings.vision_llm} refused to describe {path} ({reason}); try another image "
            "or RAG_VISION_LLM."
        )
    return message.content.strip()


def generate_image(settings: Settings, prompt: str, out: Path) -> Path:
    """Generate an image for `prompt` with RAG_IMAGE_GEN and save it at `out` (any image type
    PIL writes, by its suffix); URL and base64 answers are both handled."""
    if not prompt.strip():
        raise RagAppError("The prompt is empty: say what to draw, e.g. 'a red car at dusk'.")
    client = _client(settings, "RAG_IMAGE_GEN", settings.image_gen)
    with openai_errors(f"generating an image with {settings.image_gen}", settings):
        response = client.images.generate(
            model=settings.image_gen.removeprefix("openai:"), prompt=prompt, n=1
        )
    item = response.data[0] if response.data else None
    if item is not None and item.b64_json:
        data = base64.b64decode(item.b64_json)
    elif item is not None and item.url:
        data = _download(settings, item.url)
    else:
        raise RemoteServiceError(f"{settings.image_gen} answered without an image; try again.")
    _save(data, out)
    return out


def _download(settings: Settings, url: str) -> bytes:
    try:
        response = http_client(settings).get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise RemoteServiceError(
            f"cannot download the generated image ({type(exc).__name__}: {exc}); the URL is "
            "valid for a short time only, so generate it again."
        ) from None
    return response.content


def _save(data: bytes, out: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise RemoteServiceError("the image server answered with data that is no image") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.save(out)
    except ValueError:
        raise RagAppError(f"{out}: unknown image type; end the file name in .png or .jpg") from None


def reimagine(
    settings: Settings,
    images: ImageSearch,
    path: Path,
    out_dir: Path,
    original_prompt: str | None = None,
) -> Reimagined:
    """The book's comparison (textbook 12.5): three generated images and a sheet beside the
    original. The original prompt is `original_prompt`, else the stored prompt of this image;
    the found prompt is the stored prompt nearest to the image, other than the original."""
    load_image(path)
    original = original_prompt or images.prompt_of(path)
    if not original:
        raise RagAppError(
            f"No original prompt for {path}: pass --prompt TEXT, or ingest prompts that name "
            "this image (`rag-app ingest --prompts FILE`)."
        )
    hits = images.search_prompts(path, top_k=5)
    found = next((h.prompt for h in hits if h.prompt != original), None)
    if found is None:
        raise RagAppError(
            "No stored prompt to compare with: ingest prompts first "
            "(`rag-app ingest --prompts FILE`, a JSONL or CSV of id, prompt, image)."
        )
    description = describe_image(settings, path)
    result = Reimagined(description, original, found)
    for name, prompt in (
        ("description", description),
        ("original", original),
        ("found", found),
    ):
        result.files[name] = generate_image(settings, prompt, out_dir / f"{name}.png")
    result.sheet = side_by_side(
        [("image", path), *((name, file) for name, file in result.files.items())],
        out_dir / "sheet.png",
    )
    return result


def side_by_side(pictures: list[tuple[str, Path]], out: Path) -> Path:
    """The pictures in a row at one height, each captioned with its name."""
    from PIL import Image, ImageDraw

    scaled = []
    for _, path in pictures:
        image = load_image(path)
        width = max(1, round(image.width * SHEET_HEIGHT / image.height))
        scaled.append(image.resize((width, SHEET_HEIGHT)))
    sheet = Image.new("RGB", (sum(i.width for i in scaled), SHEET_HEIGHT + CAPTION_HEIGHT), "white")
    pen = ImageDraw.Draw(sheet)
    x = 0
    for (name, _), image in zip(pictures, scaled, strict=True):
        sheet.paste(image, (x, 0))
        pen.text((x + 6, SHEET_HEIGHT + 6), name, fill="black")
        x += image.width
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
