"""The generator seam: what turns retrieved passages into an answer.

Every generator (the offline evidence-first composer, a language model) takes one
:class:`GenerationRequest` and streams the answer text, returning one :class:`Generated`; the
pipeline picks one when the engine is made and never asks which it has. Generators never import
the pipeline: what they need arrives in the request or in their constructor.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.schema import Citation, Hit

if TYPE_CHECKING:
    from rag.conversation import Turn
    from rag.index import CorpusIndex


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """One question to answer from its retrieved passages.

    ``question`` is the question as asked (cleaned), ``query`` its standalone form used for
    retrieval (they differ for a resolved follow-up); ``index`` is the index the hits come from
    (its stored sentence vectors spare re-embedding); ``query_vector`` is ``query`` embedded,
    when the caller already has it.
    """

    question: str
    query: str
    language: str
    hits: tuple[Hit, ...]
    index: CorpusIndex
    history: tuple[Turn, ...] = ()
    query_vector: np.ndarray | None = None


@dataclass(frozen=True)
class Generated:
    """A generator's answer: its text, whether it abstained, its citations.

    ``note`` tells the reader something about how the answer was made (a language model's
    answer replaced by the evidence-first one, unsupported sentences removed); ``support`` is
    the composer's calibrated support score (``None`` when no composer scored the answer).
    """

    text: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    note: str | None = None
    support: float | None = None


class AnswerGenerator(Protocol):
    """Writes the answer for a request, streaming its text."""

    def standalone_question(self, question: str, history: Sequence[Turn], fallback: str) -> str:
        """The follow-up ``question`` rewritten to stand alone; ``fallback`` (the offline
        resolution) when this generator cannot do better."""
        ...

    def generate(self, request: GenerationRequest) -> Generator[str, None, Generated]:
        """Yield pieces of the answer text as they are ready; return the final answer."""
        ...
