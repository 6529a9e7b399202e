"""Loading source documents and cleaning PDF-extracted text without losing raw offsets.

The seed texts were extracted from PDFs: sentences run across hard line breaks and blank lines,
words are hyphenated at line ends (``жан-\\n\\nжақты``, ``қа-\\nлып``), spaces are doubled, and
some files carry markdown headings and links. Search and display want clean paragraphs; citations
want the original characters. So the cleaner never rewrites text in place: it *selects* raw
characters (and a few separators) and records, for every clean character, the raw offset it came
from. ``Document.raw_span`` then maps any clean span back to the raw file.
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.readers import SUPPORTED_SUFFIXES, Extracted, cached_extract, decode_text, file_key
from rag.readers.base import SourceError, SourceTooLarge
from rag.schema import Document, Page

__all__ = ["SUPPORTED_SUFFIXES", "SourceError", "SourceTooLarge"]

logger = logging.getLogger(__name__)

# A line ending in one of these closes a sentence; a following capitalised line starts a new
# paragraph. PDF extraction breaks lines mid-sentence, so anything else is joined with a space.
_SENTENCE_END = tuple('.!?:;»"”)')
_BULLET = re.compile(r"^(?:[-–—•*]|\d{1,3}[.)]|[а-яәғқңөұүһіa-z][.)])\s")
_HEADING = re.compile(r"^(#{1,6})\s+")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_PAGE_NUMBER = re.compile(r"^\s*(?:\d{1,3}|-\s*\d{1,3}\s*-)\s*$")
_HYPHEN_BREAK = re.compile(r"(\w+)-$")
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# Characters that carry no text: zero-width spaces/joiners, BOM, soft hyphen, replacement char.
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ufffd"}


@dataclass(frozen=True)
class Skipped:
    """A file of a corpus folder that could not be read, and why (the rest is still indexed)."""

    name: str
    reason: str


# (file name, what is happening): per file, and per page of a PDF.
CorpusProgress = Callable[[str, str], None]


@dataclass
class _Builder:
    """Accumulates clean characters together with the raw offset of each."""

    chars: list[str]
    offsets: list[int]

    def add(self, text: str, raw_pos: int) -> None:
        for i, ch in enumerate(text):
            self.chars.append(ch)
            self.offsets.append(raw_pos + i)

    def add_sep(self, sep: str, raw_pos: int) -> None:
        # Separators stand for raw whitespace (a line break); they point at that raw char.
        for ch in sep:
            self.chars.append(ch)
            self.offsets.append(raw_pos)

    def ends_with(self, s: str) -> bool:
        return "".join(self.chars[-len(s) :]) == s if self.chars else False


@dataclass(frozen=True)
class _Line:
    text: str  # the line with markdown syntax removed, whitespace collapsed
    offsets: tuple[int, ...]  # raw offset of each char of ``text``
    heading: bool
    blank_before: bool
    end_raw: int  # raw offset of the line break after the line


def _scan_line(raw: str, start: int, end: int) -> tuple[str, list[int], bool]:
    """Clean one raw line: drop markdown heading marks and link targets, collapse spaces."""
    line = raw[start:end]
    keep = [True] * len(line)
    heading = False
    m = _HEADING.match(line)
    if m:
        heading = True
        for i in range(m.end()):
            keep[i] = False
    for m in _MD_LINK.finditer(line):
        inner_start, inner_end = m.span(1)
        for i in range(m.start(), m.end()):
            if not inner_start <= i < inner_end:
                keep[i] = False
    chars: list[str] = []
    offs: list[int] = []
    for i, ch in enumerate(line):
        if not keep[i] or ch in _INVISIBLE:
            continue
        cat = unicodedata.category(ch)
        if ch.isspace() or cat in ("Zs", "Cc"):
            if chars and chars[-1] != " ":
                chars.append(" ")
                offs.append(start + i)
            continue
        if cat in ("Cf", "Co", "Cs"):
            continue
        chars.append(ch)
        offs.append(start + i)
    while chars and chars[-1] == " ":
        chars.pop()
        offs.pop()
    return "".join(chars), offs, heading


def _lines(raw: str) -> list[_Line]:
    out: list[_Line] = []
    blank = False
    pos = 0
    for piece in raw.splitlines(keepends=True):
        # splitlines also breaks at \v, \f, \x1c-\x1e, \x85, \u2028, \u2029: strip any of them.
        body = piece.splitlines()[0]
        text, offs, heading = _scan_line(raw, pos, pos + len(body))
        line_end = pos + len(body)
        pos += len(piece)
        if not text or _PAGE_NUMBER.match(text) or (not _LETTER.search(text) and len(text) < 3):
            blank = True
            continue
        out.append(_Line(text, tuple(offs), heading, blank, line_end))
        blank = False
    return out


_LINE_BREAK_HYPHEN = re.compile(r"[^\W\d_]+-[ \t]*\r?\n\s*[^\W\d_]+")
_COMPOUND = re.compile(r"[^\W\d_]+-[^\W\d_]+")


def _known_words(texts: Iterable[str]) -> set[str]:
    """The corpus vocabulary that decides line-end hyphens: words and hyphenated compounds.

    Fragments around a line-end hyphen (``талқы-`` / ``ланатын``) are left out, or they would
    look like words and vouch for themselves.
    """
    vocab: set[str] = set()
    for t in texts:
        body = _LINE_BREAK_HYPHEN.sub(" ", t)
        vocab.update(w.casefold() for w in _WORD.findall(body))
        vocab.update(c.casefold() for c in _COMPOUND.findall(body))
    # Word beginnings, marked with ^, tell a possible word from a suffix-like fragment.
    vocab.update({f"^{w[:4]}" for w in vocab if len(w) >= 4 and "-" not in w})
    return vocab


def _keep_hyphen(left: str, right: str, vocabulary: set[str]) -> bool:
    """Decide whether a line-end hyphen is a real one (``жан-жақты``) or a word break (``қа-лып``).

    ``left`` is the word fragment before the hyphen, ``right`` the next line. The corpus itself
    is the dictionary: if the joined word occurs elsewhere it was a break; if both halves are
    words on their own it is a compound. Digits (``1-ші``) always keep it.
    """
    right_word = _WORD.findall(right)
    if not left or not right_word or left[-1].isdigit() or not right[0].isalpha():
        return True
    lw, rw = left.casefold(), right_word[0].casefold()
    if f"{lw}-{rw}" in vocabulary:
        return True
    if lw + rw in vocabulary:
        return False
    if right[:1].isupper():
        return True
    # Unknown either way: a second half that could begin a word («шағымына») makes a compound
    # («арыз-шағымына»); a suffix-like one («ланатын», «дар», «нелтті») continues the first.
    return len(lw) > 2 and len(rw) > 3 and f"^{rw[:4]}" in vocabulary


def _blank_lines_are_breaks(lines: list[_Line]) -> bool:
    """Web/markdown text uses blank lines between paragraphs; PDF text puts them anywhere.

    Decide per document: if most lines after a blank line follow a sentence end, blank lines
    mean paragraph breaks there.
    """
    after_blank = [(p, ln) for p, ln in itertools.pairwise(lines) if ln.blank_before]
    if not after_blank:
        return False
    ended = sum(p.text.endswith(_SENTENCE_END) or p.heading for p, _ in after_blank)
    return ended / len(after_blank) >= 0.6


def _starts_paragraph(prev: _Line, line: _Line, blank_breaks: bool) -> bool:
    if prev.heading or line.heading:
        return True
    if blank_breaks and line.blank_before and not line.text[0].islower():
        return True
    first = line.text[0]
    if first in "–—" and len(prev.text) < 40:
        return True
    if _BULLET.match(line.text):
        return True
    if first in '«"“–—-•':
        return prev.text.endswith(_SENTENCE_END) or prev.blank_before or line.blank_before
    if prev.text.endswith(_SENTENCE_END) and (first.isupper() or first.isdigit()):
        return True
    # A short line with no final punctuation followed by a capital is a title or a label line.
    return len(prev.text) < 40 and (first.isupper() or first.isdigit())


def clean_text(raw: str, vocabulary: set[str] | None = None) -> tuple[str, tuple[int, ...]]:
    """Clean PDF-extracted text; return the clean text and the raw offset of each clean char.

    The returned offsets tuple has ``len(clean) + 1`` entries, the last being ``len(raw)``.
    Paragraphs are separated by a blank line; lines inside a paragraph are joined with a space;
    words hyphenated at a line end are rejoined (keeping the hyphen of real compounds).
    """
    vocab = vocabulary if vocabulary is not None else _known_words([raw])
    b = _Builder([], [])
    prev: _Line | None = None
    lines = _lines(raw)
    blank_breaks = _blank_lines_are_breaks(lines)
    for line in lines:
        text, offs = line.text, list(line.offsets)
        if prev is not None:
            m = _HYPHEN_BREAK.search(prev.text)
            if m and not prev.heading and not line.heading and _LETTER.match(text):
                if not _keep_hyphen(m.group(1), text, vocab):
                    # Drop the hyphen already emitted for the previous line.
                    b.chars.pop()
                    b.offsets.pop()
            elif _starts_paragraph(prev, line, blank_breaks):
                b.add_sep("\n\n", prev.end_raw)
            else:
                b.add_sep(" ", prev.end_raw)
        for ch, off in zip(text, offs, strict=True):
            b.chars.append(ch)
            b.offsets.append(off)
        prev = line
    clean = "".join(b.chars)
    return clean, (*tuple(b.offsets), len(raw))


_GENERIC_HEADINGS = re.compile(r"мазмұны|содержание|content|мәлімет", re.IGNORECASE)


# How far from the top of a document without markup a title in capitals is looked for.
_TITLE_WINDOW = 3000


def _capitals_headings(text: str) -> list[str]:
    """Runs of lines set all in capitals, three words or more each run, not generic rubrics.

    Lines of the text as read, not cleaned paragraphs: OCR and cleaning often join a title
    and the author line under it into one paragraph. Blank lines do not end a run (a wrapped
    title may be parted by one); a line holding a digit (a classification code, a date) is
    not part of a title and ends the run.
    """
    runs: list[list[str]] = [[]]
    for line in text.splitlines():
        words = _WORD.findall(line)
        if not line.strip():
            continue
        if words and all(w.isupper() for w in words) and not any(c.isdigit() for c in line):
            runs[-1].append(line.strip())
        elif runs[-1]:
            runs.append([])
    out = []
    for run in runs:
        title = " ".join(run)
        if 3 <= len(_WORD.findall(title)) <= 20 and not _GENERIC_HEADINGS.search(title):
            out.append(title)
    return out


def _title(raw: str, clean: str, fallback: str) -> str:
    """The most specific heading, else a title in capitals near the top, else the first paragraph.

    In markdown files the article title is the most specific heading near the top (the first
    ones are often a table of contents or a section rubric).
    """
    headings = [
        (len(m.group(1)), m.group(2).strip())
        for m in re.finditer(r"^(#{1,6})\s+(.+)$", raw, re.MULTILINE)
    ][:6]
    headings = [(lvl, h) for lvl, h in headings if not _GENERIC_HEADINGS.search(h)]
    if headings:
        deepest = max(lvl for lvl, _ in headings)
        return next(h for lvl, h in headings if lvl == deepest)
    # Without markup (plain text, a scan read by OCR) a printed title is set in capitals: the
    # last such line near the top is the most specific one, as the deepest heading is above.
    capitals = _capitals_headings(raw[:_TITLE_WINDOW])
    if capitals:
        return capitals[-1]
    for para in clean.split("\n\n"):
        words = _WORD.findall(para)
        if len(words) >= 3:
            title = para.strip()
            return title if len(title) <= 120 else title[:117].rsplit(" ", 1)[0] + "…"
    return fallback


def read_text(path: Path) -> str:
    """Read a text file as UTF-8 (a BOM is allowed) with a clear error for anything else."""
    return decode_text(path.name, path.read_bytes())


def make_document(
    doc_id: str,
    raw: str,
    vocabulary: set[str] | None = None,
    title: str | None = None,
    *,
    pages: tuple[Page, ...] = (),
    format: str = "text",
    file_sha256: str | None = None,
) -> Document:
    """Build a :class:`Document` (clean text + offsets) from raw (or extracted) text."""
    clean, offsets = clean_text(raw, vocabulary)
    if not clean.strip():
        raise SourceError(f"{doc_id}: no text left after cleaning")
    return Document(
        doc_id=doc_id,
        title=title or _title(raw, clean, doc_id),
        raw=raw,
        clean=clean,
        offsets=offsets,
        pages=pages,
        format=format,
        file_sha256=file_sha256,
    )


def document_from(
    doc_id: str, extracted: Extracted, sha256: str, vocabulary: set[str] | None = None
) -> Document:
    """The :class:`Document` of a file a reader has extracted."""
    return make_document(
        doc_id,
        extracted.text,
        vocabulary,
        pages=extracted.pages,
        format=extracted.format,
        file_sha256=sha256,
    )


def load_document(path: Path, cache: Path | None = None) -> Document:
    """Load one file of any supported format (see ``rag/readers``); its id is the file name."""
    data = path.read_bytes()
    return document_from(path.name, cached_extract(path.name, data, cache), file_key(data))


def corpus_files(corpus: Path) -> list[Path]:
    """The document files of a corpus folder, sorted by name (question sets are skipped)."""
    if not corpus.is_dir():
        raise SourceError(f"corpus folder not found: {corpus}")
    return sorted(
        p
        for p in corpus.iterdir()
        if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")
    )


def _per_page(report: CorpusProgress, name: str) -> Callable[[int, int, str], None]:
    def page(_done: int, _total: int, message: str) -> None:
        report(name, message)

    return page


def read_corpus(
    corpus: Path, cache: Path | None = None, progress: CorpusProgress | None = None
) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file of a folder; a file that cannot be read is skipped, not fatal.

    ``cache`` is an index's ``texts/`` folder: PDFs (and Word, HTML files) whose bytes it has
    seen are not extracted (or OCR'd) again. The hyphenation dictionary spans the corpus.
    """
    files = corpus_files(corpus)
    report = progress or (lambda _name, _message: None)
    read: dict[str, tuple[Extracted, str]] = {}
    skipped: list[Skipped] = []
    for path in files:
        report(path.name, "reading")
        try:
            data = path.read_bytes()
            extracted = cached_extract(path.name, data, cache, _per_page(report, path.name))
        except (SourceError, OSError) as exc:
            reason = str(exc) if isinstance(exc, SourceError) else f"{path.name}: {exc}"
            logger.info("skipping %s", reason)  # callers report what was skipped
            skipped.append(Skipped(path.name, reason))
            continue
        read[path.name] = (extracted, file_key(data))
    vocab = _known_words(e.text for e, _ in read.values())
    docs = []
    for name, (extracted, sha) in read.items():
        try:
            docs.append(document_from(name, extracted, sha, vocab))
        except SourceError as exc:
            logger.info("skipping %s", exc)
            skipped.append(Skipped(name, str(exc)))
    return docs, skipped


def load_corpus(corpus: Path, cache: Path | None = None) -> list[Document]:
    """Load every supported file of a folder (unreadable ones are logged and skipped)."""
    docs, skipped = read_corpus(corpus, cache)
    if not docs:
        why = "; ".join(s.reason for s in skipped) if skipped else "no documents"
        raise SourceError(
            f"no readable documents ({', '.join(SUPPORTED_SUFFIXES)}) in {corpus}: {why}"
        )
    for item in skipped:
        logger.warning("skipping %s", item.reason)
    return docs


# --- finding a quote in a document -------------------------------------------------------


def _skeleton(text: str) -> tuple[str, list[int]]:
    """Letters and digits only, casefolded, with the index of each in ``text``."""
    chars: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        if ch.isalnum():
            for c in ch.casefold():
                chars.append(c)
                idx.append(i)
    return "".join(chars), idx


def locate(doc: Document, quote: str) -> tuple[int, int] | None:
    """Find ``quote`` in ``doc`` ignoring case, spacing, punctuation and line-end hyphens.

    Returns the raw span ``(start, end)`` or ``None``. Used to check evidence quotes of the
    question set and the quotes a language model claims to cite.
    """
    q, _ = _skeleton(quote)
    if not q:
        return None
    sk, idx = _skeleton(doc.clean)
    at = sk.find(q)
    if at < 0:
        return None
    clean_start, clean_end = idx[at], idx[at + len(q) - 1] + 1
    return doc.raw_span(clean_start, clean_end)
