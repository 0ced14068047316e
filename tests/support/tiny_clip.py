"""A tiny CLIP trained in seconds on synthetic shapes, so image search is tested offline.

No CLIP weights exist on the test machine (no model hub, none in any package), so the tests
train a `CLIPModel` with a small config on the coloured shapes of `rag_lab.shapes`,
save it with `save_pretrained` together with a word-level tokenizer and a CLIP image
processor, and load it through rag_app's own loading code by path.
"""

from __future__ import annotations

import random
from pathlib import Path

from rag_lab.shapes import COLORS, IMAGE_SIZE, SHAPES, classes, draw

PER_CLASS = 2
SPECIALS = ("[PAD]", "[BOS]", "[UNK]", "[EOS]")
#: The seed of the pictures the model is tested on (training draws with seed 0).
HELD_OUT_SEED = 1234


def vocabulary() -> list[str]:
    words = {"a", "an", "the", "photo", "of", *COLORS, *SHAPES}
    return [*SPECIALS, *sorted(words)]


def save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 1), ("[EOS]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        unk_token="[UNK]",
        model_max_length=16,
    )
    tokenizer.save_pretrained(path)


def train_tiny_clip(path: Path, steps: int = 300, seed: int = 0) -> Path:
    """Train and save the model at `path` (seconds on one CPU core); returns `path`."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    rng = random.Random(seed)
    save_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor.save_pretrained(path)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocabulary()),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 3,
        },
        vision_config={
            "image_size": IMAGE_SIZE,
            "patch_size": 4,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        },
        projection_dim=32,
    )
    model = CLIPModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    items = classes()
    text = tokenizer([i.caption for i in items], padding=True, return_tensors="pt")
    labels = torch.arange(len(items)).repeat(PER_CLASS)
    # Each caption has PER_CLASS pictures in a batch: its target spreads over all of them.
    text_targets = torch.nn.functional.one_hot(labels, len(items)).T.float() / PER_CLASS
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    model.train()
    # One thread: tiny matmuls gain nothing from more, and two pytest workers each spinning
    # two threads on a busy 2-core machine took the training from 22 s to over 600 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(steps):
        pictures = [draw(i, rng) for _ in range(PER_CLASS) for i in items]
        pixels = processor(pictures, return_tensors="pt")["pixel_values"]
        out = model(**text, pixel_values=pixels)
        loss = (
            torch.nn.functional.cross_entropy(out.logits_per_image, labels)
            + torch.nn.functional.cross_entropy(out.logits_per_text, text_targets)
        ) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

    torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(path)
    return path
