"""OCR of page images with Tesseract (Debian's ``tesseract-ocr`` with Kazakh, Russian, English).

Tesseract runs as a subprocess (no Python binding needed) and answers in TSV: one row per word
with its confidence, box and block / paragraph / line numbers, from which the page text is put
back together line by line. Each call is limited to one OpenMP thread: the machine has two
cores, and two single-threaded pages at once go faster than one page on two threads.

Latin and Cyrillic share many letter shapes, so each word is then made single-script and a
word of look-alikes takes its line's script (``rag.readers.script``). Kazakh data reads a Latin
name inside Kazakh text as its nearest Cyrillic shapes ("HAQ" as "НАО", every time at 300 dpi),
so Cyrillic words made only of look-alikes are read once more with English data alone, and the
Latin reading is kept where it sees a letter Cyrillic cannot have (BENCHMARKS.md § Documents
and OCR). A «!» inside a Cyrillic word, or ending one before text that goes on in lower case,
is a misread «і» and is written as one.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rag.readers import script
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


@dataclass(frozen=True)
class OcrWord:
    """One word of Tesseract's TSV: its text, confidence, box (pixels) and line."""

    text: str
    conf: float  # -1 when Tesseract gave none
    box: tuple[int, int, int, int]  # left, top, width, height
    line: tuple[int, int, int]  # block, paragraph, line


def words_from_tsv(tsv: str) -> list[OcrWord]:
    """The words of a TSV answer (level 5 rows with text), in reading order."""
    words: list[OcrWord] = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if row.get("level") != "5" or not word:
            continue
        box = (int(row["left"]), int(row["top"]), int(row["width"]), int(row["height"]))
        line = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        words.append(OcrWord(word, float(row["conf"]), box, line))
    return words


def repair_scripts(words: list[OcrWord]) -> list[OcrWord]:
    """Each word in one script, look-alike words in their line's (``rag.readers.script``)."""
    lines: dict[tuple[int, int, int], list[int]] = {}
    for i, w in enumerate(words):
        lines.setdefault(w.line, []).append(i)
    page = script.counts(" ".join(w.text for w in words))
    out = list(words)
    for idx in lines.values():
        fixed = script.repair_line([words[i].text for i in idx], page)
        for i, text in zip(idx, fixed, strict=True):
            if text != words[i].text:
                out[i] = replace(words[i], text=text)
    return out


def repair_marks(words: list[OcrWord]) -> list[OcrWord]:
    """«!» read for a Cyrillic «і» written back as «і» (``rag.readers.script.bang_as_i``).

    The word that follows counts only within the paragraph: after a paragraph's end a new
    sentence starts whatever its first character.
    """
    out = list(words)
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        following = nxt.text if nxt is not None and nxt.line[:2] == w.line[:2] else None
        fixed = script.bang_as_i(w.text, following)
        if fixed != w.text:
            out[i] = replace(w, text=fixed)
    return out


def lookalike_words(words: list[OcrWord]) -> list[int]:
    """Indexes of Cyrillic words drawn only with Latin look-alikes (two letters or more).

    Such a word may be a Latin name that Kazakh data read as Cyrillic ("HAQ" as "НАО"): the
    Cyrillic reading cannot have the Latin-only letter, so it put the nearest Cyrillic shape.
    """
    return [
        i
        for i, w in enumerate(words)
        if script.word_script(w.text) == script.CYRILLIC
        and script.twins_only(w.text)
        and script.counts(w.text)[1] >= 2
    ]


def text_from_words(words: list[OcrWord]) -> OcrPage:
    """Page text from words: joined into lines, paragraphs by a blank line."""
    lines: dict[tuple[int, int, int], list[str]] = {}
    confs: list[tuple[float, int]] = []
    for w in words:
        lines.setdefault(w.line, []).append(w.text)
        if w.conf >= 0:
            confs.append((w.conf, len(w.text)))
    out: list[str] = []
    last_par: tuple[int, int] | None = None
    for (block, par, _), line in lines.items():
        if last_par is not None and (block, par) != last_par:
            out.append("")
        out.append(" ".join(line))
        last_par = (block, par)
    weight = sum(n for _, n in confs)
    # Weighted by word length: a misread long word costs more than a misread one-letter one.
    confidence = sum(c * n for c, n in confs) / weight if weight else None
    return OcrPage("\n".join(out), confidence)


def _tesseract(args: list[str], stdin: bytes | None, name: str) -> str:
    """Run Tesseract on one thread; its stdout, or a SourceError naming ``name``."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            ["tesseract", *args],
            input=stdin,
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
    return done.stdout.decode("utf-8", errors="replace")


def reread_latin(image: Image.Image, words: list[OcrWord], name: str) -> list[OcrWord]:
    """Look-alike Cyrillic words read again with English data alone; kept Latin where it saw
    a letter the Cyrillic reading could not have.

    All the words of a page go to one Tesseract run (one image per word, listed in a file:
    Tesseract reads each as a page, ``--psm 8`` = one word), so the cost is one model load and
    a few small images. Where English sees the same shapes (РК read as PK) the line's script
    stands: the print cannot tell them apart.
    """
    todo = lookalike_words(words)
    if not todo or "eng" not in available_languages():
        return words
    out = list(words)
    with tempfile.TemporaryDirectory(prefix="kazrag-ocr-") as tmp:
        paths = []
        for n, i in enumerate(todo):
            left, top, width, height = words[i].box
            pad = max(2, height // 2)
            crop = image.crop((left - pad, top - pad, left + width + pad, top + height + pad))
            path = os.path.join(tmp, f"{n}.png")
            crop.convert("L").save(path)
            paths.append(path)
        listing = os.path.join(tmp, "words.txt")
        with open(listing, "w", encoding="utf-8") as fh:
            fh.write("\n".join(paths) + "\n")
        tsv = _tesseract([listing, "stdout", "-l", "eng", "--psm", "8", "tsv"], None, name)
    seen: dict[int, list[str]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") == "5" and text:
            seen.setdefault(int(row["page_num"]), []).append(text)
    for n, i in enumerate(todo, start=1):
        latin = "".join(seen.get(n, []))
        if script.differs_in_shape(words[i].text, latin):
            fixed = script.with_letters(words[i].text, latin)
            logger.debug("%s: %r read again as %r", name, words[i].text, fixed)
            out[i] = replace(words[i], text=fixed)
    return out


def ocr_image(image: Image.Image, name: str = "page") -> OcrPage:
    """Read one page image (any mode; greyscale PNG is sent to Tesseract on stdin)."""
    langs = require_ocr(name)
    buf = io.BytesIO()
    image.convert("L").save(buf, format="PNG")
    tsv = _tesseract(["stdin", "stdout", "-l", langs, "--psm", "3", "tsv"], buf.getvalue(), name)
    words = repair_scripts(words_from_tsv(tsv))
    return text_from_words(repair_marks(reread_latin(image, words, name)))
