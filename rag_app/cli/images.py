"""The image commands of `rag-app`: classify, search-prompts, describe, generate, reimagine, and
the image side of `retrieve --images` and `docs list --images` (kept out of cli.py, which
registers them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from rag_app.errors import RagAppError
from rag_app.images.zero_shot import DEFAULT_TEMPLATE
from rag_app.util.wording import plural


def add_image_commands(commands) -> None:
    classify = commands.add_parser(
        "classify", help="zero-shot: the probability of each label for an image (CLIP)"
    )
    classify.add_argument("image", type=Path, help="the image file")
    classify.add_argument(
        "--label",
        action="append",
        required=True,
        dest="labels",
        metavar="LABEL",
        help="a candidate label; give two or more (--label cat --label dog)",
    )
    classify.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        help=f"the text CLIP reads per label, with {{label}} (default: {DEFAULT_TEMPLATE!r})",
    )
    classify.add_argument("--json", action="store_true", help="print JSON")

    search = commands.add_parser(
        "search-prompts", help="stored prompts nearest to an image (CLIP image to text)"
    )
    search.add_argument("image", type=Path, help="the image file")
    search.add_argument("--top-k", type=int, default=None, help="how many prompts (RAG_TOP_K)")
    search.add_argument("--json", action="store_true", help="print JSON")

    describe = commands.add_parser(
        "describe", help="a prompt-like description of an image (RAG_VISION_LLM)"
    )
    describe.add_argument("image", type=Path, help="the image file")

    generate = commands.add_parser("generate", help="generate an image (RAG_IMAGE_GEN)")
    generate.add_argument("prompt", help="what to draw, in quotes")
    generate.add_argument("--out", type=Path, required=True, help="image file to write (.png)")

    reimagine = commands.add_parser(
        "reimagine",
        help="images generated from an image's description, original prompt and nearest "
        "stored prompt, plus a side-by-side sheet",
    )
    reimagine.add_argument("image", type=Path, help="the original image")
    reimagine.add_argument("--prompt", help="its original prompt (default: the stored one)")
    reimagine.add_argument(
        "--out-dir", type=Path, default=Path("reimagined"), help="folder for the four images"
    )


def require_images(app) -> None:
    if not app.images.documents():
        raise RagAppError(
            f"The image collection beside {app.settings.collection!r} "
            f"({app.images.images.location}) has no images: ingest some with "
            "`rag-app ingest FOLDER` (.png .jpg .jpeg .webp .gif)."
        )


def retrieve_images(app, args: argparse.Namespace) -> int:
    """Images for a description, or like an image when the query is an image file."""
    require_images(app)
    query = Path(args.question)
    hits = app.search_images(query if query.is_file() else args.question, args.top_k)
    if args.json:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False))
        return 0
    print("Images:")
    for hit in hits:
        print(f"[{hit.number}] {hit.doc_id} (score {hit.score:.3f}) {hit.path}")
    return 0


def list_images(app, as_json: bool) -> int:
    records = app.images.documents()
    if as_json:
        print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
    for r in [] if as_json else records:
        state = "" if r.complete else "  (incomplete: re-run the ingest)"
        print(f"{r.doc_id}\timage{state}")
    return 0


def search_prompts(app, args: argparse.Namespace) -> int:
    if not app.images.prompt_documents():
        raise RagAppError(
            "No prompts are stored: ingest a JSONL or CSV of prompts (id, prompt, image) with "
            "`rag-app ingest --prompts FILE`."
        )
    hits = app.search_prompts(args.image, args.top_k)
    if args.json:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False))
        return 0
    print("Prompts:")
    for hit in hits:
        print(f"[{hit.number}] {hit.prompt_id} (score {hit.score:.3f}) {hit.prompt}")
    return 0


def classify(settings, args: argparse.Namespace) -> int:
    from rag_app.images.clip import build_clip_embedder
    from rag_app.images.zero_shot import classify_image

    embedder = build_clip_embedder(settings)
    try:
        ranked = classify_image(embedder, args.image, args.labels, args.template)
    finally:
        if embedder.cache:
            embedder.cache.close()
    if args.json:
        print(json.dumps([{"label": label, "probability": p} for label, p in ranked]))
        return 0
    for label, probability in ranked:
        print(f"{probability:6.1%}  {label}")
    return 0


def describe(settings, args: argparse.Namespace) -> int:
    from rag_app.images.vision import describe_image

    print(describe_image(settings, args.image))
    return 0


def generate(settings, args: argparse.Namespace) -> int:
    from rag_app.images.vision import generate_image

    print(f"wrote {generate_image(settings, args.prompt, args.out)}")
    return 0


def reimagine(app, args: argparse.Namespace) -> int:
    from rag_app.images.vision import reimagine as run

    result = run(app.settings, app.images, args.image, args.out_dir, args.prompt)
    for name, prompt in (
        ("description", result.description),
        ("original", result.original_prompt),
        ("found", result.found_prompt),
    ):
        print(f"{name}: {prompt}\n    -> {result.files[name]}")
    print(f"sheet: {result.sheet} ({plural(4, 'image')} side by side)")
    return 0


#: Commands that need settings only (no store).
SETTINGS_COMMANDS = {"classify": classify, "describe": describe, "generate": generate}
#: Commands over a `RagApp`.
APP_COMMANDS = {"search-prompts": search_prompts, "reimagine": reimagine}
