"""Tokens of an answer: the counts behind OpenAI's ``usage`` and the cut behind ``max_tokens``.

Counts use the tokenizer of the model that wrote the answer. The extractive composer writes
nothing of its own: it picks sentences with the embedding model, so its answers are counted
with the embedding model's tokenizer (``multilingual-e5-small``: XLM-R's sentencepiece). The
language-model generators run behind an OpenAI-compatible server whose tokenizer is not
available here, so their answers are counted with the same embedding tokenizer: an estimate,
documented in docs/llm.md. An embedder without a tokenizer (the tests' hash embedder) is
counted in words and signs.

A cut keeps whole sentences when at least one fits, otherwise as many tokens as allowed, and
never leaves half a citation marker behind: the citations of a cut answer are exactly the
markers that remain in its text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from rag.schema import MARKER_RE, Citation

_WORD_OR_SIGN = re.compile(r"\w+|[^\w\s]")
# Where a sentence of an answer ends: after a citation marker, at a line break (the bullet
# lists of Russian and English answers), or after sentence punctuation before a space.
_SENTENCE_END = re.compile(r"\[\d{1,3}\]|\n|[.!?…](?=\s)")
# A marker that the token cut split in two: "[1" or "[" at the very end.
_PARTIAL_MARKER = re.compile(r"\[\d{0,3}$")


class Tokenizer(Protocol):
    """What usage and ``max_tokens`` need: the character span of every token of a text."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Half-open character spans of the tokens of ``text``, in order (no special tokens)."""
        ...


class WordTokenizer:
    """Words and signs: the fallback when the embedder has no tokenizer of its own."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of the words and punctuation signs of ``text``."""
        return [m.span() for m in _WORD_OR_SIGN.finditer(text)]


def tokenizer_of(embedder: object) -> Tokenizer:
    """The embedder's own tokenizer when it has one (``token_spans``), else words and signs."""
    spans = getattr(embedder, "token_spans", None)
    if callable(spans):
        return embedder  # type: ignore[return-value]  # it has token_spans: a Tokenizer
    return WordTokenizer()


def count(tokenizer: Tokenizer, text: str) -> int:
    """The number of tokens of ``text``."""
    return len(tokenizer.token_spans(text)) if text else 0


def cut(tokenizer: Tokenizer, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` within ``max_tokens`` tokens, or ``text`` when it fits.

    Whole sentences are kept when at least one fits; otherwise the text is cut after the last
    token that fits. A trailing, partly kept citation marker is dropped either way.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if count(tokenizer, text) <= max_tokens:
        return text
    best = ""
    for m in _SENTENCE_END.finditer(text):
        prefix = text[: m.end()].rstrip()
        if count(tokenizer, prefix) > max_tokens:
            break  # counts grow with the prefix: no later sentence end fits either
        best = prefix
    if best:
        return best
    spans = tokenizer.token_spans(text)
    kept = text[: spans[max_tokens - 1][1]] if spans else ""
    return _PARTIAL_MARKER.sub("", kept).rstrip()


def cited(text: str, citations: Sequence[Citation]) -> tuple[Citation, ...]:
    """The citations whose marker appears in ``text`` (all of them for an uncut answer)."""
    markers = {int(n) for n in MARKER_RE.findall(text)}
    return tuple(c for c in citations if c.marker in markers)
