"""Sentence-aware chunking of cleaned documents, keeping raw offsets for every sentence.

Sentences are found in the clean text (Kazakh and Russian abbreviations, initials, numbered
lists and «quotes» taken into account), then packed into chunks of about ``target_chars``
characters that prefer to end at paragraph breaks, with ``overlap`` sentences repeated between
neighbours so that an answer on a boundary is whole in at least one chunk. The sizes are chosen
by measuring retrieval on the project's question set (see BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from rag.schema import Chunk, Document, Sentence

# Words after which a period does not end a sentence. Lower-cased, without the final period.
ABBREVIATIONS = frozenset(
    [
        "т.б",
        "т.с.с",
        "т.с",
        "т.т",
        "б.з.б",
        "з.ғ.м",
        "з.ғ.д",
        "т.ғ.к",
        "т.ғ.д",
        "ф.ғ.к",
        "ф.ғ.д",
        "э.ғ.к",
        "э.ғ.д",
        "п.ғ.к",
        "п.ғ.д",
        "ж",
        "жж",
        "ғ",
        "ғғ",
        "млн",
        "млрд",
        "мың",
        "трлн",
        "обл",
        "ауд",
        "қ",
        "көш",
        "үй",
        "пәт",
        "бет",
        "бб",
        "сур",
        "кесте",
        "ескерту",
        "т.е",
        "т.к",
        "т.п",
        "т.д",
        "др",
        "пр",
        "им",
        "ул",
        "г",
        "гг",
        "в",
        "вв",
        "стр",
        "см",
        "рис",
        "д.ю.н",
        "к.ю.н",
        "проф",
        "доц",
        "акад",
        "e.g",
        "i.e",
        "etc",
        "vs",
        "mr",
        "mrs",
        "dr",
        "prof",
        "no",
    ]
)

_END = re.compile(r"[.!?…]+[»\"”)]*")
_ROMAN = re.compile(r"^[IVXLC]+$")


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into chunks; recorded in the index manifest."""

    # Chosen on the dev split (evals/experiments/tune_retrieval.py, BENCHMARKS.md): 1400-char
    # chunks beat 400-1000 on hit@1/MRR and stay under ~370 e5 tokens (the model reads 512).
    target_chars: int = 1400
    max_chars: int = 1800
    overlap: int = 1  # sentences shared with the previous chunk

    def to_json(self) -> dict[str, int]:
        """A JSON-ready copy for the manifest."""
        return asdict(self)


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``text[dot]`` belongs to an abbreviation or an initial."""
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    if not word:
        return False
    if len(word) == 1 and word.isupper():
        return True  # an initial: «Т. А. Ә.»
    if _ROMAN.match(word):
        return True  # «IV. Секция»
    return word.lower() in ABBREVIATIONS


def _boundaries(para: str) -> Iterator[int]:
    """Yield end offsets of sentences inside one paragraph (the last one is ``len(para)``)."""
    depth = 0
    last = 0
    i = 0
    while i < len(para):
        ch = para[i]
        if ch == "«":
            depth += 1
        elif ch == "»":
            depth = max(0, depth - 1)
        m = _END.match(para, i) if ch in ".!?…" else None
        if m:
            end = m.end()
            nxt = para[end : end + 2].lstrip()[:1]
            closing_quote = "»" in m.group()
            if closing_quote:
                depth = max(0, depth - m.group().count("»"))
            starts_new = nxt == "" or nxt.isupper() or nxt.isdigit() or nxt in '«"–—-•('
            long_quote = depth > 0 and end - last > 400
            # A period between digits is part of a number: a date («23.10.20»), a decimal,
            # a section number («2.1»); it never ends a sentence.
            in_number = (
                ch == "." and i > 0 and para[i - 1].isdigit() and para[end : end + 1].isdigit()
            )
            if (
                starts_new
                and not in_number
                and (depth == 0 or long_quote)
                and not (ch == "." and m.group() == "." and _is_abbreviation(para, i))
                and not (ch == "." and para[last:i].strip().isdigit())  # «1.» of a list
            ):
                yield end
                last = end
            i = end
            continue
        i += 1
    if last < len(para):
        yield len(para)


def split_sentences(doc: Document) -> list[Sentence]:
    """Split a document's clean text into sentences with their raw spans."""
    out: list[Sentence] = []
    seen: set[str] = set()
    pos = 0
    for para in doc.clean.split("\n\n"):
        start = 0
        for end in _boundaries(para):
            raw_seg = para[start:end]
            lead = len(raw_seg) - len(raw_seg.lstrip())
            text = raw_seg.strip()
            key = "".join(ch for ch in text.casefold() if ch.isalnum())
            # Web pages repeat body sentences as pull-quotes: keep the first copy only.
            if text and not (len(key) > 40 and key in seen):
                seen.add(key)
                a = pos + start + lead
                b = a + len(text)
                rs, re_ = doc.raw_span(a, b)
                out.append(Sentence(text, rs, re_))
            start = end
        pos += len(para) + 2
    return out


def _split_long(sentence: Sentence, doc: Document, max_chars: int) -> list[Sentence]:
    """Cut an over-long sentence (a table row, a run-on list) at spaces near ``max_chars``."""
    if len(sentence.text) <= max_chars:
        return [sentence]
    # Locate the sentence in clean text through its raw start to keep offsets exact.
    clean_start = doc.offsets.index(sentence.start)
    pieces: list[Sentence] = []
    text = sentence.text
    offset = 0
    while offset < len(text):
        cut = (
            len(text)
            if len(text) - offset <= max_chars
            else text.rfind(" ", offset, offset + max_chars)
        )
        if cut <= offset:
            cut = min(len(text), offset + max_chars)
        part = text[offset:cut].strip()
        if part:
            lead = len(text[offset:cut]) - len(text[offset:cut].lstrip())
            a = clean_start + offset + lead
            rs, re_ = doc.raw_span(a, a + len(part))
            pieces.append(Sentence(part, rs, re_))
        offset = cut
    return pieces


def chunk_id(doc_id: str, text: str) -> str:
    """A content hash, so a rebuilt index keeps its ids and evaluation files can point at chunks."""
    return hashlib.sha1(f"{doc_id}\x00{text}".encode()).hexdigest()[:16]


def _paragraph_starts(doc: Document) -> set[int]:
    starts = {doc.offsets[0]} if doc.clean else set()
    for m in re.finditer(r"\n\n", doc.clean):
        if m.end() < len(doc.clean):
            starts.add(doc.offsets[m.end()])
    return starts


def _make_chunk(doc: Document, sentences: list[Sentence]) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    text = " ".join(s.text for s in sentences)
    return Chunk(
        chunk_id=chunk_id(doc.doc_id, text),
        doc_id=doc.doc_id,
        title=doc.title,
        text=text,
        start=start,
        end=end,
        sentences=tuple(sentences),
    )


def chunk_document(doc: Document, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Cut one document into overlapping, sentence-aligned chunks."""
    cfg = config or ChunkingConfig()
    sentences = [p for s in split_sentences(doc) for p in _split_long(s, doc, cfg.max_chars)]
    para_starts = _paragraph_starts(doc)
    chunks: list[Chunk] = []
    current: list[Sentence] = []
    size = 0
    for sent in sentences:
        at_paragraph = sent.start in para_starts
        full = size + len(sent.text) > cfg.target_chars
        # Break early at a paragraph start once the chunk is half full: topics change there.
        if current and (full or (at_paragraph and size >= cfg.target_chars // 2)):
            chunks.append(_make_chunk(doc, current))
            keep = current[-cfg.overlap :] if cfg.overlap and not at_paragraph else []
            if sum(len(s.text) for s in keep) + len(sent.text) > cfg.max_chars:
                keep = []
            current, size = list(keep), sum(len(s.text) + 1 for s in keep)
        current.append(sent)
        size += len(sent.text) + 1
    if current:
        chunks.append(_make_chunk(doc, current))
    return chunks


def chunk_corpus(docs: Iterable[Document], config: ChunkingConfig | None = None) -> list[Chunk]:
    """Chunk every document; chunk ids are unique (a repeated passage is kept once)."""
    seen: set[str] = set()
    out: list[Chunk] = []
    for doc in docs:
        for ch in chunk_document(doc, config):
            if ch.chunk_id not in seen:
                seen.add(ch.chunk_id)
                out.append(ch)
    return out
