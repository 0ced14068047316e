"""Reference-based answer metrics that run offline: EM/F1, BLEU, chrF, ROUGE, perplexity.

BLEU and chrF come from sacrebleu and ROUGE from rouge-score; what is written here is only what
those libraries do not offer:

* SQuAD v1.1's and KorQuAD v1.0's exact match and F1, re-implemented from their official
  evaluation scripts (which are scripts, not packages): SQuAD normalises (lower case, no
  punctuation, no articles) and scores word overlap; KorQuAD normalises (quotes and brackets
  removed) and scores character overlap, the only overlap that works for Korean particles.
  Answers whose references contain Hangul or Chinese characters are scored with KorQuAD's rule.
* A tokenizer that keeps Hangul and CJK: rouge-score's default keeps only [a-z0-9], so every
  Korean answer would score 0. Words are runs of letters and digits (a Korean eojeol is one
  word); each Chinese/Japanese ideograph is a word of its own, as sacrebleu's `zh` tokenizer
  splits them. BLEU uses it too whenever the texts hold Hangul or CJK, and sacrebleu's default
  `13a` otherwise (so English scores equal sacrebleu's published ones).
* Citation markers `[1]` that the answerers append are removed before scoring.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

CITATION = re.compile(r"\s*\[\d+\]")
_IDEOGRAPH = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN = re.compile(rf"[{_IDEOGRAPH}]|[^\W_{_IDEOGRAPH}]+")
CJK_OR_HANGUL = re.compile(rf"[{_IDEOGRAPH}\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")
KORQUAD_REMOVED = re.compile("['\"《》<>〈〉()‘’]")
PUNCTUATION = set(string.punctuation)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def strip_citations(answer: str) -> str:
    return CITATION.sub("", answer).strip()


def uses_cjk(text: str) -> bool:
    """True when the text holds Hangul or CJK ideographs (character-level rules apply)."""
    return CJK_OR_HANGUL.search(text) is not None


def tokens(text: str) -> list[str]:
    """Lower-cased words; Hangul words kept whole, each CJK ideograph a token of its own."""
    return TOKEN.findall(text.lower())


class UnicodeTokenizer:
    """The `tokenizer` object rouge-score accepts (it calls `.tokenize(text)`)."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


# SQuAD v1.1 (evaluate-v1.1.py)


def squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(SQUAD_ARTICLES.sub(" ", text).split())


def squad_f1(prediction: str, reference: str) -> float:
    predicted = squad_normalize(prediction).split()
    gold = squad_normalize(reference).split()
    return _overlap_f1(predicted, gold)


def squad_exact(prediction: str, reference: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(reference))


# KorQuAD v1.0 (evaluate-v1.0.py)


def korquad_normalize(text: str) -> str:
    text = KORQUAD_REMOVED.sub(" ", text).lower()
    return " ".join("".join(ch for ch in text if ch not in PUNCTUATION).split())


def korquad_f1(prediction: str, reference: str) -> float:
    """Character-level F1 of the normalised strings, spaces not counted."""
    predicted = list(korquad_normalize(prediction).replace(" ", ""))
    gold = list(korquad_normalize(reference).replace(" ", ""))
    return _overlap_f1(predicted, gold)


def korquad_exact(prediction: str, reference: str) -> float:
    return float(korquad_normalize(prediction) == korquad_normalize(reference))


def _overlap_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """Best over the references, with the rule of the references' language."""
    rule = korquad_exact if any(uses_cjk(r) for r in references) else squad_exact
    return max((rule(prediction, r) for r in references), default=0.0)


def f1(prediction: str, references: Sequence[str]) -> float:
    rule = korquad_f1 if any(uses_cjk(r) for r in references) else squad_f1
    return max((rule(prediction, r) for r in references), default=0.0)


# BLEU, chrF (sacrebleu) and ROUGE (rouge-score)


def _bleu_inputs(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]], str]:
    """Hypotheses, reference streams (padded by repetition) and the sacrebleu tokenizer name.

    Repeating a sentence's first reference to fill the streams changes neither BLEU (clipped
    counts and the closest length are maxima over references) nor chrF (best reference).
    """
    width = max((len(r) for r in references), default=1)
    streams = [[refs[min(i, len(refs) - 1)] for refs in references] for i in range(width)]
    texts = [*hypotheses, *(r for refs in references for r in refs)]
    if not any(uses_cjk(t) for t in texts):
        return list(hypotheses), streams, "13a"
    joined = [" ".join(tokens(h)) for h in hypotheses]
    return joined, [[" ".join(tokens(r)) for r in s] for s in streams], "none"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    import sacrebleu

    hyps, streams, tokenize = _bleu_inputs(hypotheses, references)
    return sacrebleu.corpus_bleu(hyps, streams, tokenize=tokenize).score


def sentence_bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence BLEU with exponential smoothing (sacrebleu's default for sentences)."""
    from sacrebleu.metrics import BLEU

    hyps, streams, tokenize = _bleu_inputs([hypothesis], [references])
    bleu = BLEU(tokenize=tokenize, effective_order=True)
    return bleu.sentence_score(hyps[0], [s[0] for s in streams]).score


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """chrF works on characters, so it needs no tokenizer for any language."""
    import sacrebleu

    width = max((len(r) for r in references), default=1)
    streams = [[refs[min(i, len(refs) - 1)] for refs in references] for i in range(width)]
    return sacrebleu.corpus_chrf(list(hypotheses), streams).score


def sentence_chrf(hypothesis: str, references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.sentence_chrf(hypothesis, list(references)).score


_ROUGE_SCORER = None


def rouge(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure, best over the references, on Unicode-aware tokens."""
    global _ROUGE_SCORER
    if _ROUGE_SCORER is None:
        from rouge_score.rouge_scorer import RougeScorer

        _ROUGE_SCORER = RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer())
    scores = _ROUGE_SCORER.score_multi(list(references), prediction)
    return {name: scores[name].fmeasure for name in ROUGE_TYPES}


# Perplexity


@dataclass(frozen=True)
class Perplexity:
    """exp(-mean log p) over the answer's tokens, or why it cannot be computed."""

    value: float | None
    reason: str | None = None


def perplexity(logprobs: Sequence[float] | None, why_absent: str) -> Perplexity:
    if not logprobs:
        return Perplexity(None, why_absent)
    return Perplexity(math.exp(-sum(logprobs) / len(logprobs)))
