"""Synthetic coloured shapes ("a red circle"): sample pictures and prompts for notebook 08.

Drawn with PIL so the multimodal notebook needs no download: a real CLIP tells the colours and
shapes apart, and the test suite trains its tiny offline CLIP on the same drawings.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
    "purple": (150, 40, 180),
}
SHAPES = ("circle", "ring", "triangle")
IMAGE_SIZE = 32


@dataclass(frozen=True)
class Shape:
    color: str
    shape: str

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def caption(self) -> str:
        return f"a {self.label}"


def classes() -> list[Shape]:
    return [Shape(c, s) for c in COLORS for s in SHAPES]


def draw(item: Shape, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """One picture of `item`: random grey background, size and place."""
    grey = rng.randint(150, 255) if rng.random() < 0.7 else rng.randint(0, 70)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    pen = ImageDraw.Draw(image)
    side = rng.randint(size * 3 // 5, size * 9 // 10)
    centre = (size - side) // 2
    x, y = (centre + rng.randint(-2, 2) for _ in range(2))
    box = (x, y, x + side, y + side)
    color = COLORS[item.color]
    if item.shape == "circle":
        pen.ellipse(box, fill=color)
    elif item.shape == "ring":
        pen.ellipse(box, outline=color, width=max(2, side // 6))
    else:
        pen.polygon([(x + side / 2, y), (x, y + side), (x + side, y + side)], fill=color)
    return image


def save_pictures(folder: Path, seed: int) -> dict[Shape, Path]:
    """One picture per class, drawn with `seed`, saved as `<color>-<shape>.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = {}
    for item in classes():
        path = folder / f"{item.color}-{item.shape}.png"
        draw(item, rng).save(path)
        paths[item] = path
    return paths


def save_prompts(folder: Path, seed: int) -> Path:
    """A prompt dataset as `rag-app ingest --prompts` reads it: `prompts.jsonl` (id, prompt,
    image) beside the pictures the prompts "made" (in `made/`, drawn with `seed`)."""
    pictures = save_pictures(folder / "made", seed)
    path = folder / "prompts.jsonl"
    rows = [
        {"id": f"p-{i.color}-{i.shape}", "prompt": i.caption, "image": f"made/{p.name}"}
        for i, p in pictures.items()
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path
