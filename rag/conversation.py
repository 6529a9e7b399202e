"""Follow-up questions: resolve «Ал оның төрағасы кім болған?» against the previous turns.

Offline there is no model to rewrite the question, so a follow-up (a short question, or one that
refers back with a pronoun or an opening «Ал…» / «А…» / "And…") is searched together with the
content words of the previous question. With a language model configured, ``rag/llm.py`` asks it
for a standalone rewrite instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_REFERS_BACK = re.compile(
    r"^(ал|ал енді|сонда|а|и|and|so|also)\b|"
    r"\b(оның|олардың|ол|олар|оны|оған|онда|одан|сол|соның|осы|бұл|бұның|мұның|"
    r"его|её|ее|их|он|она|они|оно|этот|эта|это|этого|этой|там|тогда|"
    r"it|its|they|them|their|he|she|his|her|that|this|there|then)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Turn:
    """One exchange of a chat: the user's question and the bot's answer text."""

    question: str
    answer: str = ""


def is_followup(question: str) -> bool:
    """True when the question depends on the previous turn to make sense."""
    words = _WORD.findall(question)
    return len(words) <= 4 or bool(_REFERS_BACK.search(question.strip()))


def resolve(question: str, history: Sequence[Turn]) -> str:
    """The text to search with: the question, plus the previous question if this is a follow-up."""
    turns = [t for t in history if t.question.strip()]
    if not turns or not is_followup(question):
        return question
    # The previous question may itself be a follow-up: resolve it against the turns before it.
    previous = resolve(turns[-1].question, turns[-3:-1])
    return f"{previous.strip()} {question.strip()}"
