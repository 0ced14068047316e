"""Image and prompt search on every backend with a tiny CLIP trained for the session, and the
image collection's ingest guarantees (dedup, replace, delete, interruption, model mismatch)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from rag_app.app import RagApp
from rag_app.errors import EmbeddingMismatchError, RagAppError
from rag_app.ingestion.pipeline import Ingestor
from rag_lab.shapes import Shape, classes, draw, save_pictures, save_prompts
from tests.conftest import cli_env, rag_app_command
from tests.support.openai_server import running_openai_server
from tests.support.tiny_clip import HELD_OUT_SEED


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prompts with ids and the (other) pictures they made, as the book's prompt dataset."""
    return save_prompts(tmp_path_factory.mktemp("prompts"), HELD_OUT_SEED + 1)


@pytest.fixture
def image_app(make_app: Callable[..., RagApp], tiny_clip: Path) -> Iterator[RagApp]:
    app = make_app(image_embed_model=str(tiny_clip))
    yield app
    app.images.drop()


def test_text_to_image_and_image_to_prompt_top1_on_every_backend(
    image_app: RagApp, held_out: dict[Shape, Path], prompts_file: Path
) -> None:
    folder = next(iter(held_out.values())).parent
    report = image_app.ingest([folder])
    assert len(report.added) == len(held_out) and report.images_embedded == len(held_out)
    assert image_app.documents() == []  # images live in their own collection
    prompts = image_app.ingest_prompts(prompts_file)
    assert len(prompts.added) == len(held_out) and prompts.ok

    text_hits = sum(
        image_app.search_images(item.caption, top_k=1)[0].path == str(path)
        for item, path in held_out.items()
    )
    prompt_hits = sum(
        image_app.search_prompts(path, top_k=1)[0].prompt_id == f"p-{item.color}-{item.shape}"
        for item, path in held_out.items()
    )
    assert text_hits / len(held_out) >= 0.9, text_hits
    assert prompt_hits / len(held_out) >= 0.9, prompt_hits
    like = image_app.search_images(held_out[Shape("red", "circle")], top_k=1)[0]
    assert like.path == str(held_out[Shape("red", "circle")]) and like.score > 0.99


@pytest.mark.parametrize("backend_name", ["memory"])
def test_reingest_embeds_nothing_changes_replace_delete_and_prune(
    image_app: RagApp, tmp_path: Path
) -> None:
    pictures = save_pictures(tmp_path / "pics", 7)
    image_app.ingest([tmp_path / "pics"])
    again = image_app.ingest([tmp_path / "pics"])
    assert again.images_embedded == 0 and len(again.unchanged) == len(pictures)

    red = pictures[Shape("red", "circle")]
    draw(Shape("blue", "triangle"), random.Random(3)).save(red)
    changed = image_app.ingest([red])
    assert changed.replaced == ["pics/red-circle.png"] and changed.images_embedded == 1
    assert image_app.images.images.count() == len(pictures)

    assert image_app.delete([str(red)]) == []
    assert "pics/red-circle.png" not in {r.doc_id for r in image_app.images.documents()}
    assert image_app.images.images.count() == len(pictures) - 1

    pictures[Shape("blue", "ring")].unlink()
    kept = image_app.ingest([tmp_path / "pics"])
    assert kept.gone == ["pics/blue-ring.png"] and not kept.pruned
    pruned = image_app.ingest([tmp_path / "pics"], prune=True)
    assert pruned.pruned == ["pics/blue-ring.png"]  # red-circle came back with `kept`
    assert image_app.images.images.count() == len(pictures) - 1


@pytest.mark.parametrize("backend_name", ["memory"])
def test_interrupted_image_ingest_is_finished_by_a_rerun(
    image_app: RagApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pictures = save_pictures(tmp_path / "pics", 8)

    def killed(self, unfinished) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Ingestor, "_checkpoint", killed)
        with pytest.raises(KeyboardInterrupt):
            image_app.ingest([tmp_path / "pics"])
    assert not any(r.complete for r in image_app.images.documents())
    rerun = image_app.ingest([tmp_path / "pics"])
    assert len(rerun.replaced) == len(pictures) and rerun.images_embedded == 0  # cached
    records = image_app.images.documents()
    assert all(r.complete for r in records) and len(records) == len(pictures)
    assert image_app.images.images.count() == len(pictures)


@pytest.mark.parametrize("backend_name", ["memory"])
def test_another_clip_model_is_refused_before_it_loads(
    image_app: RagApp,
    make_app: Callable[..., RagApp],
    tiny_clip: Path,
    held_out: dict[Shape, Path],
    tmp_path: Path,
) -> None:
    image_app.ingest([held_out[Shape("red", "circle")]])
    other = make_app(image_embed_model=str(tmp_path / "another-clip"))
    with pytest.raises(EmbeddingMismatchError, match="RAG_IMAGE_EMBED_MODEL=") as refused:
        other.search_images("a red circle")
    assert str(tiny_clip) in str(refused.value)
    with pytest.raises(EmbeddingMismatchError):
        other.ingest([held_out[Shape("blue", "ring")]])


def test_cli_ingests_images_and_prompts_and_searches_both(
    make_settings, tiny_clip: Path, held_out: dict[Shape, Path], prompts_file: Path
) -> None:
    settings = make_settings(image_embed_model=str(tiny_clip))
    env = cli_env(settings)
    folder = next(iter(held_out.values())).parent

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            rag_app_command(*args), env=env, capture_output=True, text=True, timeout=180
        )

    ingested = run("ingest", str(folder), "--prompts", str(prompts_file))
    assert ingested.returncode == 0, ingested.stderr
    assert "30 added" in ingested.stdout and "15 images" in ingested.stdout
    found = run("retrieve", "--images", "a green triangle", "--top-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["path"] == str(held_out[Shape("green", "triangle")])
    prompts = run("search-prompts", str(held_out[Shape("yellow", "ring")]), "--json")
    assert json.loads(prompts.stdout)[0]["prompt"] == "a yellow ring"
    shutil.rmtree(settings.data_dir)


@pytest.mark.parametrize("backend_name", ["memory"])
def test_a_missing_or_broken_image_is_one_clear_error(image_app: RagApp, tmp_path: Path) -> None:
    with pytest.raises(RagAppError, match="nowhere.png"):
        image_app.search_prompts(tmp_path / "nowhere.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    report = image_app.ingest([broken])
    assert [p.path for p in report.skipped] == [str(broken)]
    assert "cannot read this image" in report.skipped[0].reason


@pytest.mark.parametrize("backend_name", ["memory"])
def test_reimagine_generates_from_description_original_and_found_prompt(
    make_app: Callable[..., RagApp], tiny_clip: Path, prompts_file: Path, tmp_path: Path
) -> None:
    made = prompts_file.parent / "made" / "red-circle.png"
    with running_openai_server() as url:
        app = make_app(image_embed_model=str(tiny_clip), openai_api_key="k", openai_base_url=url)
        app.ingest_prompts(prompts_file)
        result = app.reimagine(made, tmp_path / "out")
    app.images.drop()
    assert result.original_prompt == "a red circle"
    assert result.found_prompt != result.original_prompt
    assert result.found_prompt in {item.caption for item in classes()}
    assert result.description.startswith("ECHO: Describe") and "[image " in result.description
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["description.png", "found.png", "original.png", "sheet.png"]
    with Image.open(result.files["original"]) as original, Image.open(result.sheet) as sheet:
        assert sheet.size == (4 * 256, 256 + 24)
        assert sheet.getpixel((2 * 256 + 8, 8)) == original.getpixel((0, 0))  # 3rd tile


@pytest.mark.parametrize("backend_name", ["memory"])
def test_zero_shot_classification_top1_and_probabilities(
    image_app: RagApp, held_out: dict[Shape, Path]
) -> None:
    captions = [item.caption for item in classes()]
    results = {
        item: image_app.classify_image(path, captions, "{label}") for item, path in held_out.items()
    }
    correct = sum(ranked[0][0] == item.caption for item, ranked in results.items())
    assert correct / len(held_out) >= 0.9, correct
    for ranked in results.values():
        assert sorted(label for label, _ in ranked) == sorted(captions)
        assert sum(p for _, p in ranked) == pytest.approx(1.0, abs=1e-6)
        assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)
    assert "images" not in image_app.__dict__  # no image store was opened
    with pytest.raises(RagAppError, match="at least two labels"):
        image_app.classify_image(held_out[Shape("red", "circle")], ["a red circle"])
    with pytest.raises(RagAppError, match="has no \\{label\\}"):
        image_app.classify_image(held_out[Shape("red", "circle")], captions, "a photo")


def test_cli_classify_prints_probabilities_and_refuses_one_label(
    make_settings, tiny_clip: Path, held_out: dict[Shape, Path]
) -> None:
    env = cli_env(make_settings(image_embed_model=str(tiny_clip)))
    image = str(held_out[Shape("green", "triangle")])
    labels = ["green triangle", "green circle", "blue triangle", "yellow ring"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            rag_app_command("classify", image, *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    done = run(
        *(a for label in labels for a in ("--label", label)), "--template", "a {label}", "--json"
    )
    assert done.returncode == 0, done.stderr
    ranked = json.loads(done.stdout)
    assert ranked[0]["label"] == "green triangle"
    assert sum(r["probability"] for r in ranked) == pytest.approx(1.0, abs=1e-6)
    refused = run("--label", "green triangle")
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    assert "at least two labels" in refused.stderr and refused.stderr.count("\n") == 1
