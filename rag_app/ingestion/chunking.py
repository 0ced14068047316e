"""Split documents into chunks that fit the embedding model, keeping character offsets.

LlamaIndex's SentenceSplitter does the splitting (sentences first, then sub-sentence pieces for
long sentences), counting tokens with the embedding model's own tokenizer, so a chunk is never
longer than what the model embeds (all-MiniLM-L6-v2 reads 256 word pieces and silently drops
the rest). Each chunk keeps its start and end character offsets in its document.

The default chunk fills the model (up to 512 tokens): on XQuAD en, chunks of at most 128, 192
and 250 MiniLM tokens give keyword hit@1 0.871, 0.919, 0.938 and dense 0.774, 0.824, 0.844 -
the more of a paragraph a chunk holds, the more of the question's context it matches.

Large documents are split a section at a time (`iter_split`): the splitter tokenizes its whole
input at every level of its recursion, so a 5 MB single-line file cost about a gigabyte and no
chunk came out before all of it was split. Sections of at most SECTION_CHARS characters, cut
at the best boundary near the limit (paragraph, line, sentence end, space), bound that memory
and let chunks stream into embedding; the only change for a large document is that no chunk
overlaps a section cut. Documents shorter than a section are split exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer
from llama_index.core.schema import TextNode

#: Room for the model's special tokens ([CLS], [SEP], ...).
SPECIAL_TOKENS = 6
MAX_DEFAULT_CHUNK_TOKENS = 512
#: Metadata that is embedded and keyword-indexed with each chunk (LlamaIndex's "embed" mode):
#: the document title tells which article a chunk belongs to.
SEARCHED_METADATA = ("title",)
#: Characters handed to the splitter at once (about 60 chunks of English at 250 tokens).
SECTION_CHARS = 50_000
#: Where a section may end, best first; searched in the last quarter of the section only.
SECTION_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?。！？]\s*"),
    re.compile(r"\s"),
)


#: Sentence ends NLTK's punkt (English) misses: Chinese / Japanese full stops, which need no
#: space after them, and a Hangul syllable followed by . ? or ! (Korean sentences end in a
#: verb ending such as 다 or 요 and are often written without a space after the stop). Closing
#: quotes and brackets stay with their sentence; the whitespace after a sentence too, as punkt
#: keeps it, so the pieces always join back to the text.
_CJK_SENTENCE_END = re.compile(r"(?:[。！？]|(?<=[\uac00-\ud7a3])[.?!])[\"'”’」』）)\]]*\s*")


def split_sentences(text: str, punkt: Callable[[str], list[str]] | None = None) -> list[str]:
    """Sentences of `text` in order, joining back to `text`: punkt's, then cut at CJK ends."""
    sentences: list[str] = []
    for piece in (punkt or _punkt())(text):
        cuts = [m.end() for m in _CJK_SENTENCE_END.finditer(piece) if m.end() < len(piece)]
        bounds = [0, *cuts, len(piece)]
        sentences.extend(piece[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a)
    return sentences


_PUNKT: list[Callable[[str], list[str]]] = []


def _punkt() -> Callable[[str], list[str]]:
    """LlamaIndex's NLTK punkt splitter, created once (it loads a model)."""
    if not _PUNKT:
        _PUNKT.append(split_by_sentence_tokenizer())
    return _PUNKT[0]


def default_chunk_size(model_max_tokens: int) -> int:
    return min(model_max_tokens - SPECIAL_TOKENS, MAX_DEFAULT_CHUNK_TOKENS)


class Chunker:
    """Chunks of at most `chunk_size` tokens with `chunk_overlap` tokens of overlap."""

    def __init__(self, chunk_size: int, chunk_overlap: int, tokenize) -> None:
        if chunk_overlap >= chunk_size:
            from rag_app.errors import ConfigError

            raise ConfigError(
                f"RAG_CHUNK_OVERLAP={chunk_overlap} must be smaller than the chunk size "
                f"{chunk_size} (RAG_CHUNK_SIZE)."
            )
        self.chunk_size = chunk_size
        self._splitter = SentenceSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            tokenizer=tokenize,
            paragraph_separator="\n\n",
            chunking_tokenizer_fn=split_sentences,
            include_metadata=True,
            include_prev_next_rel=False,
        )

    def split(self, document: Document) -> list[TextNode]:
        """All chunks of one document (see `iter_split`)."""
        return list(self.iter_split(document))

    def iter_split(self, document: Document) -> Iterator[TextNode]:
        """Chunks of one document in order, with `start_char_idx` / `end_char_idx` set, one
        section of the text at a time.

        The SEARCHED_METADATA keys are embedded with every chunk, so the splitter leaves room
        for them within the chunk size.
        """
        searched = {k: v for k, v in document.metadata.items() if k in SEARCHED_METADATA}
        for offset, text in sections(document.text, SECTION_CHARS):
            yield from self._split_section(document.doc_id, text, offset, searched)

    def _split_section(
        self, doc_id: str, text: str, offset: int, searched: dict[str, object]
    ) -> list[TextNode]:
        plain = Document(
            id_=doc_id, text=text, metadata=searched, metadata_template="{key}: {value}"
        )
        nodes = self._splitter.get_nodes_from_documents([plain])
        cursor = 0
        for node in nodes:
            if node.start_char_idx is None or node.end_char_idx is None:
                start = text.find(node.text, cursor)
                node.start_char_idx = max(start, 0)
                node.end_char_idx = node.start_char_idx + len(node.text)
            cursor = node.start_char_idx
            node.start_char_idx += offset
            node.end_char_idx += offset
        return nodes


def sections(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """(offset, text) pieces of at most `limit` characters, cut at the best boundary found in
    the last quarter of each piece (a hard cut if there is none)."""
    start = 0
    while len(text) - start > limit:
        end = start + limit
        window = text[end - limit // 4 : end]
        cuts = (_last_end(boundary, window) for boundary in SECTION_BOUNDARIES)
        cut = next((c for c in cuts if c is not None), None)
        if cut is not None:
            end = end - limit // 4 + cut
        yield start, text[start:end]
        start = end
    yield start, text[start:]


def _last_end(boundary: re.Pattern[str], text: str) -> int | None:
    """Where the last match of `boundary` in `text` ends, if any."""
    ends = [m.end() for m in boundary.finditer(text)]
    return ends[-1] if ends else None
