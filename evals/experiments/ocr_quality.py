"""How well do scanned documents read? OCR quality, its cost to answers, and its speed.

    python -m evals.experiments.ocr_quality [--dpi 150 300] [--write BENCHMARKS.md]

1. **Character error rate**: every seed document is typeset onto A4 pages (DejaVu Sans 11 pt,
   as a printed report), each page rasterised at 150 and 300 dpi the way a scanner would
   (greyscale image, no text layer) into a PDF, and that PDF read back through the product's
   own reader (``rag/readers/pdf.py``: pypdfium2 render, Tesseract kaz+rus). CER is the
   edit distance between the page's OCR text and the text typeset on it (white space folded),
   over the length of the latter.
2. **Answers from scans**: the seed corpus is indexed from the 300-dpi scans instead of the
   text files (same document ids), and the project's question set is run through it beside
   the text index; the evidence quotes are found in the OCR text by approximate matching
   (an exact quote would miss any misread letter).
3. **Speed**: OCR pages per second on this machine (2 workers, one Tesseract thread each),
   and the end-to-end cost of uploading a 20-page scan through ``rag.library.add_document``
   (OCR, cleaning, embedding, index swap) into a copy of the seed corpus.

Figures go to stdout and, with ``--write``, to the ``ocr`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rag.schema import Document

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


def _fold(text: str) -> str:
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (white space folded)."""
    ref, hyp = _fold(reference), _fold(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


@dataclass(frozen=True)
class ScanRun:
    """The OCR of one corpus at one resolution."""

    dpi: int
    pages: int
    seconds: float
    cer: float  # over all pages (total edits / total characters)
    cer_pages: tuple[float, ...]
    low_confidence: int
    documents: tuple[Document, ...]


def ocr_corpus(docs: Sequence[Document], dpi: int) -> ScanRun:
    """Typeset and scan every document at ``dpi``, read the scans back, measure the errors."""
    from rag.readers import file_key
    from rag.readers.pdf import PdfReader
    from rag.sources import document_from

    reader = PdfReader()
    edits = chars = 0
    per_page: list[float] = []
    out: list[Document] = []
    seconds = 0.0
    n_pages = low = 0
    for doc in docs:
        images, texts = typeset(doc.clean, dpi)
        data = scan_pdf(images, dpi)
        t0 = time.perf_counter()
        extracted = reader.read(doc.doc_id, data)
        seconds += time.perf_counter() - t0
        starts = [p.start for p in extracted.pages] + [len(extracted.text)]
        for i, ref in enumerate(texts):
            got = extracted.text[starts[i] : starts[i + 1]]
            d = edit_distance(_fold(ref), _fold(got))
            edits += d
            chars += len(_fold(ref))
            per_page.append(d / max(1, len(_fold(ref))))
        n_pages += len(texts)
        low += sum(p.low_confidence for p in extracted.pages)
        out.append(document_from(doc.doc_id, extracted, file_key(data)))
        print(f"  {dpi} dpi {doc.doc_id}: {len(texts)} pages", file=sys.stderr)
    return ScanRun(dpi, n_pages, seconds, edits / max(1, chars), tuple(per_page), low, tuple(out))


def _approximate_span(doc: Document, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` sits in an OCR'd document: the longest exact run anchors it."""
    from rag.sources import _skeleton, locate

    exact = locate(doc, quote)
    if exact is not None:
        return exact
    q, _ = _skeleton(quote)
    sk, idx = _skeleton(doc.clean)
    if len(q) < 8 or not sk:
        return None
    match = difflib.SequenceMatcher(None, sk, q, autojunk=False).find_longest_match(
        0, len(sk), 0, len(q)
    )
    if match.size < min(20, len(q) // 3):
        return None
    lo = max(0, match.a - match.b)
    hi = min(len(sk), lo + len(q)) - 1
    return doc.raw_span(idx[lo], idx[hi] + 1)


def answers_from(docs: Sequence[Document], folder: Path, settings: Any, embedder: Any) -> dict:
    """Question-set figures over an index of ``docs`` built in ``folder``."""
    from evals.evaluation import (
        DEFAULT_QUESTIONS,
        EvidenceLocator,
        load_questions,
        run_questions,
        warm_up,
    )
    from evals.metrics import figures
    from rag.index import build_index
    from rag.pipeline import make_engine

    class ApproximateLocator(EvidenceLocator):
        def spans(self, row: Mapping[str, Any]) -> tuple[tuple[Any, ...], int]:
            found, missing = [], 0
            for ev in row.get("evidence") or []:
                doc = self.docs.get(str(ev.get("doc_id")))
                span = _approximate_span(doc, str(ev.get("text", ""))) if doc else None
                if span is None:
                    missing += 1
                else:
                    found.append((doc.doc_id, span[0], span[1]))  # type: ignore[union-attr]
            return tuple(found), missing

    build_index(docs, folder, embedder, settings.chunking, corpus=None)
    # corpus = a path that is no folder: the engine must not "update" this index from seeds/.
    engine = make_engine(
        settings.replace(index=folder, corpus=folder / "none", uploads=None), embedder=embedder
    )
    rows = load_questions(DEFAULT_QUESTIONS)
    warm_up(engine)
    results = run_questions(rows, rows, engine, docs, ApproximateLocator(docs, engine.index))
    figs = figures([rec for rec, _ in results])
    return {**figs, "unlocated": sum(rec.unlocated for rec, _ in results)}


def upload_cost(settings: Any, embedder: Any, text: str, pages: int = 20) -> dict[str, float]:
    """Seconds to upload a ``pages``-page 300-dpi scan into a copy of the seed corpus."""
    from rag import library
    from rag.pipeline import make_engine

    images, _ = typeset(text, 300)
    data = scan_pdf(images[:pages], 300)
    with tempfile.TemporaryDirectory(prefix="kazrag-ocr-upload-") as tmp:
        root = Path(tmp)
        shutil.copytree(settings.index, root / "index")
        engine = make_engine(
            settings.replace(index=root / "index", uploads=root / "uploads"), embedder=embedder
        )
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        def progress(_fraction: float, message: str) -> None:
            marks.setdefault(message.split(":")[0].split(" (")[0], time.perf_counter() - t0)

        info = library.add_document(engine, "scan20.pdf", data, progress)
        total = time.perf_counter() - t0
    ocr_done = marks.get("cleaning", total)
    return {
        "pages": float(info.pages or 0),
        "bytes": float(len(data)),
        "total_s": total,
        "ocr_s": ocr_done,
        "index_s": total - ocr_done,
        "chunks": float(info.chunks),
    }


def _keyfacts(figs: Mapping[str, Any]) -> float:
    return float(figs["answer"]["keyfacts_all"])


def report(
    runs: Sequence[ScanRun],
    text: Mapping[str, Any],
    scans: Mapping[str, Any],
    upload: Mapping[str, float],
) -> str:
    """The ``ocr`` section of BENCHMARKS.md."""
    import platform

    day = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [
        "## Documents and OCR (`python -m evals.experiments.ocr_quality`)",
        "",
        f"Measured {day} on {os.cpu_count()} cores **while about six engineers shared the "
        "machine** (speed figures are pessimistic; quality figures do not depend on load). "
        f"Tesseract {_tesseract_version()} (kaz+rus+eng, LSTM), pypdfium2 render at 300 dpi, "
        f"Python {platform.python_version()}. Seed documents typeset on A4 (DejaVu Sans "
        f"{FONT_POINTS} pt), rasterised at each resolution into image-only PDFs, read back "
        "through `rag/readers/pdf.py`.",
        "",
        "| scan resolution | pages | CER (all pages) | CER median / worst page | pages flagged low confidence | OCR pages/s (2 workers) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.dpi} dpi | {r.pages} | {r.cer:.4f} | {np.median(r.cer_pages):.4f} / "
            f"{max(r.cer_pages):.4f} | {r.low_confidence} | {r.pages / r.seconds:.2f} |"
        )
    best = max(runs, key=lambda r: r.dpi)
    lines += [
        "",
        "Project question set (`seeds/questions.jsonl`, both splits: retrieval over the "
        f"{text['retrieval']['n']} questions with evidence, key facts over the "
        f"{text['answer']['n']} answerable ones) over the corpus read from the {best.dpi}-dpi "
        "scans, beside the same corpus read from the text files (evidence quotes found in the "
        f"OCR text by approximate matching; {scans['unlocated']} of them could not be placed, "
        f"{text['unlocated']} in the text files):",
        "",
        "| figure | text files | scans | difference | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, get in (
        ("retrieval hit@5", lambda f: f["retrieval"]["hit@5"]),
        ("retrieval MRR@10", lambda f: f["retrieval"]["mrr@10"]),
        ("answers holding all key facts", _keyfacts),
    ):
        a, b = float(get(text)), float(get(scans))
        ok = "✓" if abs(a - b) <= 0.03 else "✗"
        lines.append(f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} | within 0.03 {ok} |")
    lines += [
        "",
        f"Uploading a {int(upload['pages'])}-page 300-dpi scan ({upload['bytes'] / 1e6:.1f} MB) "
        f"into the seed corpus through `rag.library.add_document`: **{upload['total_s']:.0f} s** "
        f"end to end ({upload['ocr_s']:.0f} s rendering and OCR, {upload['index_s']:.0f} s "
        f"cleaning, embedding {int(upload['chunks'])} chunks and their sentences, swapping the "
        "index), on the shared machine.",
    ]
    return "\n".join(lines) + "\n"


def _tesseract_version() -> str:
    import subprocess

    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[-1] if first else "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study; print the section, and write it into BENCHMARKS.md with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 300])
    parser.add_argument("--write", type=Path, help="BENCHMARKS.md to update (ocr section)")
    parser.add_argument("--skip-questions", action="store_true")
    args = parser.parse_args(argv)

    from evals.bench import write_section
    from rag.pipeline import get_engine
    from rag.settings import from_env
    from rag.sources import load_corpus

    settings = from_env()
    engine = get_engine(settings)
    docs = load_corpus(settings.corpus)
    runs = [ocr_corpus(docs, dpi) for dpi in sorted(args.dpi)]
    for r in runs:
        print(f"{r.dpi} dpi: {r.pages} pages, CER {r.cer:.4f}, {r.pages / r.seconds:.2f} pages/s")
    best = max(runs, key=lambda r: r.dpi)
    with tempfile.TemporaryDirectory(prefix="kazrag-ocr-") as tmp:
        text_figs = answers_from(docs, Path(tmp) / "text", settings, engine.embedder)
        scan_figs = answers_from(best.documents, Path(tmp) / "scan", settings, engine.embedder)
    upload = upload_cost(settings, engine.embedder, "\n\n".join(d.clean for d in docs))
    body = report(runs, text_figs, scan_figs, upload)
    print(body)
    if args.write:
        write_section(args.write, body, name="ocr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
