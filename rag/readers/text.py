"""Plain text and markdown files: UTF-8 (a BOM allowed) or UTF-16 with a BOM."""

from __future__ import annotations

from rag.readers.base import Extracted, PageProgress, SourceError, no_progress

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(name: str, data: bytes) -> str:
    """Decode the bytes of a text file with a clear error for anything that is not text."""
    if not data.strip():
        raise SourceError(f"{name}: the file is empty")
    if b"\x00" in data[:4096] and not data.startswith(_UTF16_BOMS):
        raise SourceError(f"{name}: looks like a binary file, not text")
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    raise SourceError(f"{name}: not valid UTF-8 text; save it as UTF-8 and try again")


class TextReader:
    """``.txt`` and ``.md``: the file's text is the document (offsets are into the file)."""

    format: str = "text"
    suffixes: tuple[str, ...] = (".txt", ".md")

    def sniff(self, data: bytes) -> bool:
        """Any bytes that decode as text (tried last, after the binary formats)."""
        try:
            decode_text("file", data)
        except SourceError:
            return False
        return True

    def read(self, name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
        """The decoded text, unchanged, so ``raw[start:end]`` is the file's own characters."""
        text = decode_text(name, data)
        return Extracted(text, "markdown" if name.lower().endswith(".md") else "text")
