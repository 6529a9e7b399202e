"""Word ``.docx`` files: paragraphs, then table rows (cells joined with `` | ``)."""

from __future__ import annotations

import io
import zipfile

from rag.readers.base import Extracted, PageProgress, SourceError, SourceTooLarge, no_progress

# A .docx is a zip; refuse archives that would inflate far beyond any real document.
MAX_INFLATED = 200 * 1024 * 1024


class DocxReader:
    """Word 2007+ documents (a zip holding ``word/document.xml``)."""

    format: str = "docx"
    suffixes: tuple[str, ...] = (".docx",)

    def sniff(self, data: bytes) -> bool:
        """A zip archive with a Word body inside."""
        if not data.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return "word/document.xml" in z.namelist()
        except zipfile.BadZipFile:
            return False

    def read(self, name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
        """The paragraphs and tables of the document, one block per paragraph or row."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                inflated = sum(info.file_size for info in z.infolist())
                names = z.namelist()
        except zipfile.BadZipFile as exc:
            raise SourceError(f"{name}: not a readable .docx file (not a zip archive)") from exc
        if inflated > MAX_INFLATED:
            raise SourceTooLarge(f"{name}: the .docx unpacks to {inflated / 1e6:.0f} MB; too large")
        if "word/document.xml" not in names:
            raise SourceError(f"{name}: a zip archive but not a Word .docx document")
        import docx

        try:
            document = docx.Document(io.BytesIO(data))
        except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors…
            raise SourceError(f"{name}: not a readable .docx file ({exc})") from exc
        parts = [p.text for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                parts.append(" | ".join(cell.text.strip() for cell in row.cells))
        text = "\n\n".join(p.strip() for p in parts if p.strip())
        return Extracted(text, self.format)
