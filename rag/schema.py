"""The typed boundaries between the steps of the pipeline.

Every step hands the next one a small frozen dataclass: a source document, a chunk of it, a
retrieval hit, a citation, an answer. Offsets are always *character* offsets into the raw file
text as read from disk (UTF-8), so ``raw[start:end]`` is the original span a citation can
highlight, whatever cleaning was applied for search.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field
from typing import Any

# The citation contract: an answer cites with ``[n]`` (n = 1..999, the Citation.marker); every
# producer writes markers with ``marker_text`` and every reader finds them with ``MARKER_RE``.
MARKER_RE = re.compile(r"\[(\d{1,3})\]")


def marker_text(n: int) -> str:
    """The marker that cites citation ``n`` in an answer's text."""
    return f"[{n}]"


@dataclass(frozen=True)
class Page:
    """One page of a paged document (a PDF): where it starts in the raw text and how it was read.

    ``start`` is the raw offset of the page's first character; ``ocr`` says the page had no
    usable text layer and was read by OCR, with ``confidence`` its mean word confidence (0-100).
    """

    number: int  # 1-based, as a PDF viewer counts
    start: int
    ocr: bool = False
    confidence: float | None = None
    low_confidence: bool = False


def page_span(pages: tuple[Page, ...], start: int, end: int) -> tuple[int | None, int | None]:
    """The page a raw span starts on and, if it runs onto a later page, the page it ends on."""
    if not pages:
        return None, None
    starts = [p.start for p in pages]
    first = pages[max(0, bisect.bisect_right(starts, start) - 1)].number
    last = pages[max(0, bisect.bisect_right(starts, max(start, end - 1)) - 1)].number
    return first, (last if last != first else None)


@dataclass(frozen=True)
class Document:
    """A source document: its raw text as read from disk and its cleaned text for search.

    ``offsets[i]`` is the raw offset of ``clean[i]``; ``offsets[len(clean)]`` is ``len(raw)``,
    so a clean span ``[a, b)`` maps to the raw span ``[offsets[a], offsets[b - 1] + 1)``.
    For a PDF, Word or HTML file ``raw`` is the text extracted from it (kept in the index
    folder), ``pages`` its page starts (PDF only) and ``format`` what the file was read as.
    """

    doc_id: str
    title: str
    raw: str
    clean: str
    offsets: tuple[int, ...]
    pages: tuple[Page, ...] = ()
    format: str = "text"
    file_sha256: str | None = None

    def raw_span(self, clean_start: int, clean_end: int) -> tuple[int, int]:
        """Map a half-open span of the clean text to the raw text."""
        if not 0 <= clean_start <= clean_end <= len(self.clean):
            raise ValueError(
                f"clean span {clean_start}:{clean_end} outside 0:{len(self.clean)} of {self.doc_id}"
            )
        if clean_start == clean_end:
            pos = self.offsets[clean_start]
            return pos, pos
        return self.offsets[clean_start], self.offsets[clean_end - 1] + 1


@dataclass(frozen=True)
class Sentence:
    """One sentence of a document: cleaned text and its raw span."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A passage that is embedded and indexed; ``raw[start:end]`` is where it came from."""

    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    sentences: tuple[Sentence, ...] = ()
    # Paged documents only: the page the chunk starts on, and the last one if it runs over.
    page: int | None = None
    page_end: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (the index stores chunks as JSON Lines, never pickle)."""
        record = asdict(self)
        record["sentences"] = [[s.text, s.start, s.end] for s in self.sentences]
        for key in ("page", "page_end"):
            if record[key] is None:
                del record[key]  # unpaged documents keep the records they always had
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Chunk:
        """Inverse of :meth:`to_json`."""
        sentences = tuple(Sentence(t, s, e) for t, s, e in record.get("sentences", []))
        return cls(
            chunk_id=record["chunk_id"],
            doc_id=record["doc_id"],
            title=record["title"],
            text=record["text"],
            start=int(record["start"]),
            end=int(record["end"]),
            sentences=sentences,
            page=record.get("page"),
            page_end=record.get("page_end"),
        )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever scores behind it."""

    chunk: Chunk
    score: float
    rank: int
    dense: float | None = None
    lexical: float | None = None
    # For a question about two subjects («A мен B»): which subject's document this chunk was
    # found for (0 or 1), ``None`` otherwise (rag.retriever.Retriever.subject_rankings).
    subject: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``retrieved`` entry of the answer object."""
        return {
            "rank": self.rank,
            "doc_id": self.chunk.doc_id,
            "chunk_id": self.chunk.chunk_id,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "score": round(float(self.score), 6),
            "text": self.chunk.text,
            "page": self.chunk.page,
            "page_end": self.chunk.page_end,
        }


@dataclass(frozen=True)
class Citation:
    """What a marker ``[n]`` in the answer points at: an exact span of a raw source file."""

    marker: int
    doc_id: str
    title: str
    chunk_id: str
    start: int
    end: int
    quote: str
    # Paged documents: the page the quote is on (1-based); ``page_end`` if it runs onto the next.
    page: int | None = None
    page_end: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``citations`` entry of the answer object."""
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """The one answer object that the CLI, the HTTP API, the chat and the evaluation share."""

    question: str
    answer: str
    language: str
    abstained: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[Hit, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    id: str | None = None
    note: str | None = None
    # The question's own language when it is none of kk/ru/en (the answer is then English).
    asked_language: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape documented in the README (issue 2)."""
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "language": self.language,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "retrieved": [h.to_json() for h in self.retrieved],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.note:
            out["note"] = self.note
        if self.asked_language:
            out["asked_language"] = self.asked_language
        return out
