"""What every document reader shares: the result type, the reader Protocol, the errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rag.schema import Page

# (pages done, pages in all, what is happening) — called once per page of a paged document.
PageProgress = Callable[[int, int, str], None]


class SourceError(ValueError):
    """A source file that cannot be read as a document (wrong type, encoding, or empty)."""


class SourceTooLarge(SourceError):
    """A file over a reader's limit (a PDF of too many pages, a Word file that unpacks too far)."""


def no_progress(_done: int, _total: int, _message: str) -> None:
    """The progress callback that reports nowhere."""
    return None


@dataclass(frozen=True)
class Extracted:
    """The text of a file as a reader found it, before cleaning.

    ``text`` is what citation offsets point into (for a .txt file, the file itself); ``pages``
    says where each page starts in it (PDF only); ``notes`` are things a person should know
    (an extension that lied, pages read by OCR).
    """

    text: str
    format: str  # "text", "markdown", "pdf", "docx", "html"
    pages: tuple[Page, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (the index keeps extracted text as JSON, never pickle)."""
        return {
            "text": self.text,
            "format": self.format,
            "pages": [
                [p.number, p.start, p.ocr, p.confidence, p.low_confidence] for p in self.pages
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Extracted:
        """Inverse of :meth:`to_json`."""
        pages = tuple(
            Page(int(n), int(s), bool(o), None if c is None else float(c), bool(low))
            for n, s, o, c, low in record.get("pages", [])
        )
        return cls(
            str(record["text"]), str(record["format"]), pages, tuple(record.get("notes", []))
        )


class Reader(Protocol):
    """Reads one file format. Chosen by :func:`rag.readers.reader_for` from the file's bytes."""

    format: str
    suffixes: tuple[str, ...]

    def sniff(self, data: bytes) -> bool:
        """True when the bytes look like this format (whatever the file's extension says)."""
        ...

    def read(self, name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
        """The file's text; :class:`SourceError` with a message a person can act on otherwise."""
        ...
