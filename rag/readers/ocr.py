"""OCR of page images with Tesseract (Debian's ``tesseract-ocr`` with Kazakh and Russian data).

Tesseract runs as a subprocess (no Python binding needed) and answers in TSV: one row per word
with its confidence and its block / paragraph / line numbers, from which the page text is put
back together line by line. Each call is limited to one OpenMP thread: the machine has two
cores, and two single-threaded pages at once go faster than one page on two threads.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.readers.base import SourceError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# Kazakh first: its data also covers the Russian letters, Russian adds Russian words.
LANGUAGES = ("kaz", "rus", "eng")
# Mean word confidence under which a page is flagged: clean 300-dpi prints score 85-95, and
# below ~70 about one word in five is wrong (BENCHMARKS.md § Documents and OCR).
LOW_CONFIDENCE = 70.0
TIMEOUT_S = 120


@dataclass(frozen=True)
class OcrPage:
    """The text Tesseract read from one page image, with its mean word confidence (0-100)."""

    text: str
    confidence: float | None  # None when no word was found

    @property
    def low_confidence(self) -> bool:
        """True when the page's text should not be trusted without a look."""
        return self.confidence is None or self.confidence < LOW_CONFIDENCE


@functools.lru_cache(maxsize=1)
def available_languages() -> tuple[str, ...]:
    """The wanted languages whose data is installed (empty when Tesseract is not)."""
    exe = shutil.which("tesseract")
    if exe is None:
        return ()
    out = subprocess.run(
        [exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    return tuple(lang for lang in LANGUAGES if lang in out)


def require_ocr(name: str) -> str:
    """The ``-l`` argument for Tesseract; a clear error when it (or Kazakh data) is missing."""
    langs = available_languages()
    if "kaz" not in langs:
        raise SourceError(
            f"{name}: has scanned pages (no text layer) and OCR is not available; install "
            "tesseract-ocr with tesseract-ocr-kaz and tesseract-ocr-rus (`make setup` does)"
        )
    return "+".join(langs)


def text_from_tsv(tsv: str) -> OcrPage:
    """Rebuild page text from Tesseract's TSV: words joined into lines, paragraphs by a blank line."""
    lines: dict[tuple[int, int, int], list[str]] = {}
    confs: list[tuple[float, int]] = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if row.get("level") != "5" or not word:
            continue
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        lines.setdefault(key, []).append(word)
        conf = float(row["conf"])
        if conf >= 0:
            confs.append((conf, len(word)))
    out: list[str] = []
    last_par: tuple[int, int] | None = None
    for (block, par, _), words in lines.items():
        if last_par is not None and (block, par) != last_par:
            out.append("")
        out.append(" ".join(words))
        last_par = (block, par)
    weight = sum(n for _, n in confs)
    # Weighted by word length: a misread long word costs more than a misread one-letter one.
    confidence = sum(c * n for c, n in confs) / weight if weight else None
    return OcrPage("\n".join(out), confidence)


def ocr_image(image: Image.Image, name: str = "page") -> OcrPage:
    """Read one page image (any mode; greyscale PNG is sent to Tesseract on stdin)."""
    langs = require_ocr(name)
    buf = io.BytesIO()
    image.convert("L").save(buf, format="PNG")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", langs, "--psm", "3", "tsv"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"{name}: OCR took over {TIMEOUT_S} s and was stopped") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise SourceError(f"{name}: OCR failed ({message[0]})")
    return text_from_tsv(done.stdout.decode("utf-8", errors="replace"))
