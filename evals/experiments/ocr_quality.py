"""Scanned pages for the OCR study and the tests: typesetting, image-only PDFs, error rates.

The seed documents are typeset on A4 pages (DejaVu Sans 11 pt, as a printed report) at a
given resolution; :func:`scan_pdf` writes page images as a PDF with no text layer, and
:func:`cer` measures what OCR made of a page against the text typeset on it (white space
folded). The study itself — the seed corpus as scans at 150 and 300 dpi, indexed through
``kazrag index`` and evaluated with ``kazrag eval``, and the cost of uploading a 20-page scan —
is ``evals/experiments/scan_corpus.py``; its figures are BENCHMARKS.md § Documents and OCR.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
A4_INCHES = (8.27, 11.69)
MARGIN_INCHES = 1.0
FONT_POINTS = 11
LINE_SPACING = 1.45


def _font(dpi: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        raise SystemExit(f"{FONT} is missing (Debian's fonts-dejavu-core)")
    return ImageFont.truetype(str(FONT), round(FONT_POINTS * dpi / 72))


def _wrap(paragraph: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in paragraph.split():
        trial = f"{line} {word}" if line else word
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def typeset(text: str, dpi: int) -> tuple[list[Image.Image], list[str]]:
    """Lay ``text`` out on A4 pages at ``dpi``; the page images and the text on each page.

    Paragraphs are separated by a blank line; a paragraph may run onto the next page, as in
    print.
    """
    font = _font(dpi)
    width_px, height_px = (round(x * dpi) for x in A4_INCHES)
    margin = round(MARGIN_INCHES * dpi)
    line_h = round(FONT_POINTS * dpi / 72 * LINE_SPACING)
    per_page = (height_px - 2 * margin) // line_h
    lines: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if para.strip():
            lines += [*_wrap(para, font, width_px - 2 * margin), ""]
    pages: list[Image.Image] = []
    texts: list[str] = []
    for at in range(0, len(lines), per_page):
        chunk = lines[at : at + per_page]
        if not any(chunk):
            continue
        image = Image.new("L", (width_px, height_px), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(chunk):
            draw.text((margin, margin + i * line_h), line, font=font, fill=0)
        pages.append(image)
        texts.append("\n".join(chunk).strip())
    return pages, texts


def scan_pdf(pages: Sequence[Image.Image], dpi: int) -> bytes:
    """Page images as a PDF with no text layer (what a scanner writes)."""
    buf = io.BytesIO()
    first, *rest = [p.convert("L") for p in pages]
    first.save(buf, format="PDF", save_all=True, append_images=rest, resolution=float(dpi))
    return buf.getvalue()


def scanned_pdf(page_texts: Sequence[str], dpi: int = 300) -> bytes:
    """An image-only PDF with one page per text (a blank page for an empty text)."""
    images = []
    for text in page_texts:
        pages, _ = typeset(text, dpi) if text.strip() else ([], [])
        blank = Image.new("L", tuple(round(x * dpi) for x in A4_INCHES), 255)  # type: ignore[arg-type]
        images.append(pages[0] if pages else blank)
    return scan_pdf(images, dpi)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (pages are a few thousand characters)."""
    if not a or not b:
        return max(len(a), len(b))
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    prev = np.arange(len(b) + 1, dtype=np.int64)
    cols = np.arange(len(b) + 1, dtype=np.int64)
    for i, ch in enumerate(a, start=1):
        cost = (bb != ord(ch)).astype(np.int64)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        # Insertions run along the row: cur[j] = min_k (cur[k] + j - k).
        cur = np.minimum.accumulate(cur - cols) + cols
        prev = cur
    return int(prev[-1])


def fold_space(text: str) -> str:
    """``text`` with every run of white space made one space (OCR lays lines out its own way)."""
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (white space folded)."""
    ref, hyp = fold_space(reference), fold_space(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def tesseract_version() -> str:
    """The installed Tesseract's version ("?" if it does not say)."""
    import subprocess

    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[-1] if first else "?"
