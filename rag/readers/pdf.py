"""PDF files: the text layer page by page, OCR for pages without one, page starts kept.

A page whose text layer has fewer than :data:`MIN_LAYER_LETTERS` letters (a scan, a photo of
a signed paper) is rendered to an image with pypdfium2 at :data:`OCR_DPI` and read by Tesseract
(``rag/readers/ocr.py``). Lines repeated at the top or bottom of most pages (running headers,
footers, "Page 3 of 20") are dropped before the pages are joined, so they neither pollute
passages nor break sentences that run across a page break.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from rag.readers.base import Extracted, PageProgress, SourceError, SourceTooLarge, no_progress
from rag.readers.ocr import OcrPage, ocr_image, require_ocr
from rag.schema import Page

logger = logging.getLogger(__name__)

# A long report is a few hundred pages; 1,000 pages of OCR would take the better part of an
# hour on two cores, and 1,000 pages of text are better split into several documents.
MAX_PAGES = 1000
MIN_LAYER_LETTERS = 20
# 300 dpi is what OCR engines are tuned for; 150 dpi loses small print (BENCHMARKS.md).
OCR_DPI = 300
OCR_WORKERS = 2
PAGE_SEPARATOR = "\n\n"
_LETTER = re.compile(r"[^\W\d_]")


def _letters(text: str) -> int:
    return len(_LETTER.findall(text))


def _line_key(line: str) -> str:
    # Page numbers change from page to page: "Бет 3" and "Бет 4" are the same running line.
    return re.sub(r"\d+", "#", " ".join(line.split())).casefold()


def strip_running_lines(pages: list[str]) -> list[str]:
    """Drop header and footer lines repeated at the top or bottom of most pages (3 pages or more)."""
    if len(pages) < 3:
        return pages
    edges: list[list[str]] = []
    counts: Counter[str] = Counter()
    for text in pages:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        edge = lines[:2] + lines[-2:]
        edges.append(edge)
        counts.update({_line_key(ln) for ln in edge})
    need = max(3, round(0.6 * len(pages)))
    running = {k for k, n in counts.items() if n >= need}
    if not running:
        return pages
    out = []
    for text in pages:
        lines = text.splitlines()
        body = [i for i, ln in enumerate(lines) if ln.strip()]
        at_edge = set(body[:2] + body[-2:])
        out.append(
            "\n".join(
                ln for i, ln in enumerate(lines) if i not in at_edge or _line_key(ln) not in running
            )
        )
    return out


def _open(name: str, data: bytes):  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    # pypdf raises many exception types on damaged or hostile files; any of them means "not a
    # readable PDF" to the person who has it.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:  # an empty user password opens many "protected" PDFs
                opened = reader.decrypt("") != 0
            except Exception:
                opened = False
            if not opened:
                raise SourceError(
                    f"{name}: the PDF is password-protected; remove the password and retry"
                )
        count = len(reader.pages)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{name}: not a readable PDF ({exc})") from exc
    if count == 0:
        raise SourceError(f"{name}: the PDF has no pages")
    if count > MAX_PAGES:
        raise SourceTooLarge(
            f"{name}: {count:,} pages; the limit is {MAX_PAGES:,} pages (split the file)"
        )
    return reader, count


# PDFium is not thread-safe: two OCR workers rendering at once crashed the process (a
# segfault in FPDF_RenderPageBitmap). Rendering takes turns; Tesseract, the slow part, still
# runs on every worker at once.
_PDFIUM = threading.Lock()


def render_page(data: bytes, index: int, dpi: int = OCR_DPI):  # type: ignore[no-untyped-def]
    """Page ``index`` (0-based) as a PIL image at ``dpi`` (one render at a time per process)."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        pdf = pdfium.PdfDocument(data, password="")
        try:
            page = pdf[index]
            image = page.render(scale=dpi / 72).to_pil()
            image.load()  # own the pixels before the document goes
            return image.copy()
        finally:
            pdf.close()


class PdfReader:
    """``.pdf``: text layer where there is one, OCR where there is not."""

    format: str = "pdf"
    suffixes: tuple[str, ...] = (".pdf",)

    def __init__(self, dpi: int = OCR_DPI, workers: int = OCR_WORKERS) -> None:
        self.dpi = dpi
        self.workers = workers

    def sniff(self, data: bytes) -> bool:
        """``%PDF-`` in the first kilobyte (some writers put junk before it)."""
        return b"%PDF-" in data[:1024]

    def read(self, name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
        """Every page's text, OCR'd where needed; page starts recorded."""
        reader, count = _open(name, data)
        texts: list[str] = []
        for i, page in enumerate(reader.pages):
            try:
                texts.append((page.extract_text() or "").replace("\x00", "").strip("\n"))
            except Exception as exc:
                logger.warning(
                    "%s: page %d text layer unreadable (%s); OCR instead", name, i + 1, exc
                )
                texts.append("")
            progress(i + 1, count, f"reading page {i + 1}/{count}")
        scanned = [i for i, t in enumerate(texts) if _letters(t) < MIN_LAYER_LETTERS]
        ocr: dict[int, OcrPage] = {}
        if scanned:
            require_ocr(name)
            ocr = self._ocr(name, data, scanned, progress)
            for i, read in ocr.items():
                if _letters(read.text) >= _letters(texts[i]):
                    texts[i] = read.text
        texts = strip_running_lines(texts)
        parts: list[str] = []
        pages: list[Page] = []
        pos = 0
        for i, text in enumerate(texts):
            if parts:
                parts.append(PAGE_SEPARATOR)
                pos += len(PAGE_SEPARATOR)
            result = ocr.get(i)
            pages.append(
                Page(
                    number=i + 1,
                    start=pos,
                    ocr=result is not None,
                    confidence=None
                    if result is None or result.confidence is None
                    else round(result.confidence, 1),
                    low_confidence=result is not None and result.low_confidence,
                )
            )
            parts.append(text)
            pos += len(text)
        full = "".join(parts)
        if _letters(full) == 0:
            what = "no text layer, and OCR found no text either" if scanned else "no text"
            raise SourceError(f"{name}: the PDF has {what} (blank or image-only pages)")
        notes = []
        if scanned:
            low = [p.number for p in pages if p.low_confidence]
            notes.append(f"{len(scanned)} of {count} pages read by OCR")
            if low:
                notes.append(f"low OCR confidence on pages {', '.join(map(str, low))}")
        return Extracted(full, self.format, tuple(pages), tuple(notes))

    def _ocr(
        self, name: str, data: bytes, indices: list[int], progress: PageProgress
    ) -> dict[int, OcrPage]:
        def one(i: int) -> OcrPage:
            try:
                image = render_page(data, i, self.dpi)
            except Exception as exc:  # pdfium errors on damaged pages
                raise SourceError(
                    f"{name}: page {i + 1} could not be rendered for OCR ({exc})"
                ) from exc
            return ocr_image(image, f"{name} page {i + 1}")

        out: dict[int, OcrPage] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for n, (i, result) in enumerate(zip(indices, pool.map(one, indices), strict=True)):
                out[i] = result
                progress(n + 1, len(indices), f"OCR page {i + 1} ({n + 1}/{len(indices)} scanned)")
        return out
