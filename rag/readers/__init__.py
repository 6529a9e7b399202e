"""Document readers: one file per format, chosen by what the bytes are, not only the name.

Every door that takes documents (``kazrag index`` on a folder, uploads in the chat and the API)
reads them through :func:`read_document`, which picks a :class:`~rag.readers.base.Reader`:

- ``pdf.py``  — ``.pdf``: text layer per page, OCR (Tesseract) for scanned pages, page starts;
- ``docx.py`` — ``.docx``: paragraphs and tables;
- ``html.py`` — ``.html`` / ``.htm``: visible text only;
- ``text.py`` — ``.txt`` / ``.md``: the file itself.

The extension says what a file claims to be; the content decides. A ``.txt`` that is really a
PDF is read as a PDF (with a note); a ``.pdf`` or ``.docx`` whose bytes are not one is refused
with a message naming what it is. The text a reader extracts is what citation offsets point
into; the index keeps it (``texts/<sha256>.json``) so a PDF is not OCR'd again on every build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from rag.readers.base import (
    Extracted,
    PageProgress,
    Reader,
    SourceError,
    SourceTooLarge,
    no_progress,
)
from rag.readers.docx import DocxReader
from rag.readers.html import HtmlReader
from rag.readers.pdf import PdfReader
from rag.readers.text import TextReader, decode_text

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Extracted",
    "PageProgress",
    "Reader",
    "SourceError",
    "SourceTooLarge",
    "cached_extract",
    "decode_text",
    "file_key",
    "read_document",
    "reader_for",
]

logger = logging.getLogger(__name__)

_TEXT = TextReader()
# Binary formats first: text sniffing accepts anything that decodes, so it goes last.
READERS: tuple[Reader, ...] = (PdfReader(), DocxReader(), HtmlReader(), _TEXT)
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(
    s for r in (*READERS[-1:], *READERS[:-1]) for s in r.suffixes
)
TEXT_FORMATS = ("text", "markdown")


def _suffix(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.strip(".") else ""


def reader_for(name: str, data: bytes) -> tuple[Reader, str | None]:
    """The reader for these bytes and, when the extension lied, a note saying so."""
    suffix = _suffix(name)
    claimed = next((r for r in READERS if suffix in r.suffixes), None)
    if claimed is None:
        raise SourceError(
            f"{name}: unsupported file type ({suffix or 'no extension'}); "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not data.strip():
        raise SourceError(f"{name}: the file is empty")
    for reader in READERS[:-1]:
        if reader.sniff(data):
            if reader is claimed:
                return reader, None
            note = f"{name}: the file is a {reader.format.upper()} document, not {suffix}; read as such"
            logger.warning(note)
            return reader, note
    if claimed.format in ("pdf", "docx"):
        kind = "plain text" if _TEXT.sniff(data) else "not a format kazrag reads"
        if kind == "plain text" or claimed.format == "pdf":
            raise SourceError(
                f"{name}: not a readable {suffix} file (its content is {kind}); "
                "check the file, or rename it to what it is"
            )
    return claimed, None


def read_document(name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
    """The text of a file of any supported format (see the module docstring)."""
    reader, note = reader_for(name, data)
    extracted = reader.read(name, data, progress)
    if note:
        return Extracted(
            extracted.text, extracted.format, extracted.pages, (note, *extracted.notes)
        )
    return extracted


def file_key(data: bytes) -> str:
    """The content key of a file: the extraction cache and the manifest use it."""
    return hashlib.sha256(data).hexdigest()


# The last few extractions in this process: an upload is read once to check it and again by
# the index rebuild that follows; OCR must not run twice for it.
_MEMO: OrderedDict[str, Extracted] = OrderedDict()
_MEMO_SIZE = 8
_MEMO_LOCK = threading.Lock()


def cached_extract(
    name: str, data: bytes, cache: Path | None = None, progress: PageProgress = no_progress
) -> Extracted:
    """:func:`read_document` unless this content was read before (in this process or by the
    index in ``cache``); plain text is always read again (it costs nothing)."""
    key = f"{file_key(data)}:{_suffix(name)}"
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    stored = cache / f"{file_key(data)}.json" if cache is not None else None
    if stored is not None and stored.is_file():
        try:
            extracted = Extracted.from_json(json.loads(stored.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable extraction cache %s (%s)", stored, exc)
        else:
            _remember(key, extracted)
            return extracted
    extracted = read_document(name, data, progress)
    if extracted.format not in TEXT_FORMATS:
        _remember(key, extracted)
    return extracted


def _remember(key: str, extracted: Extracted) -> None:
    with _MEMO_LOCK:
        _MEMO[key] = extracted
        _MEMO.move_to_end(key)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
