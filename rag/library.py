"""The document library: list, upload and remove documents of the running bot's corpus.

Uploads (``.txt``, ``.md``, ``.pdf``, ``.docx``, ``.html``) are read by ``rag/readers`` (the
same readers as ``kazrag index``; scanned PDF pages through OCR) and kept in ``settings.uploads``
as they came (text files as UTF-8 text), so the chat can open a PDF at the cited page; the text
extracted from them is kept in the index (``texts/``). The index is rebuilt from the corpus plus
the uploads. ``build_index`` reuses the vectors of every
chunk it has seen before, so an upload only embeds the new document's chunks, and it replaces the
index folder atomically; the running engine then swaps the new index in. An upload is checked
completely (type, size, extraction, cleaning) *before* anything is written, and the text file is
taken back out if the index build fails, so a rejected upload leaves corpus and index unchanged.

Seed documents (``settings.corpus``, tracked in git) cannot be removed here: the chat and the API
refuse with a message saying so. Only uploaded documents can be removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from rag.embedding import Embedder
from rag.index import TEXTS, CorpusIndex, build, corpus_documents
from rag.readers import SUPPORTED_SUFFIXES, Extracted, cached_extract, file_key, reader_for
from rag.readers.base import SourceTooLarge
from rag.rows import RowSink
from rag.schema import Document
from rag.sources import SourceError, document_from
from rag.stores import store_kind

if TYPE_CHECKING:
    from rag.pipeline import Engine
    from rag.settings import Settings

logger = logging.getLogger(__name__)

ALLOWED_SUFFIXES = SUPPORTED_SUFFIXES
# 10 MB of file is ~100 pages of a text-heavy PDF; larger collections belong in `kazrag index`.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# A scan's bytes are pixels, not text: a 20-page greyscale 300-dpi scan is ~13 MB, a colour one
# about twice that, while bilevel G4 is ~1 MB (BENCHMARKS.md § Documents and OCR). PDFs get
# more room; MAX_TEXT_CHARS and the page limit still bound the work an upload can cause.
MAX_PDF_UPLOAD_BYTES = 40 * 1024 * 1024
# Extracted text above this is refused: the CPU embedder indexes about 1.5 k characters a
# second (chunks and their sentences), so 400 k characters already takes minutes in the chat.
MAX_TEXT_CHARS = 400_000
MAX_NAME_CHARS = 80
# What the browser is told a kept original is (``GET /api/documents/{id}/file``).
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}

Progress = Callable[[float, str], None]


class LibraryError(ValueError):
    """A library operation that was refused; ``status`` is the matching HTTP status code."""

    status = 422


class UploadTooLarge(LibraryError):
    """The file is over :data:`MAX_UPLOAD_BYTES` (or its text over :data:`MAX_TEXT_CHARS`)."""

    status = 413


class UnsupportedType(LibraryError):
    """The file is not one of :data:`ALLOWED_SUFFIXES`."""

    status = 415


class DocumentNotFound(LibraryError):
    """No document with this id in the corpus."""

    status = 404


class DocumentProtected(LibraryError):
    """A seed document: it belongs to the built-in corpus and is not removed from the chat."""

    status = 409


@dataclass(frozen=True)
class DocumentInfo:
    """One document of the corpus as the chat and ``GET /api/documents`` list it."""

    doc_id: str
    title: str
    chars: int
    chunks: int
    source: str  # "seed" or "upload"
    removable: bool
    format: str = "text"  # what the file was read as: text, markdown, pdf, docx, html
    pages: int | None = None  # paged documents (PDF) only
    ocr_pages: tuple[int, ...] = ()  # pages read by OCR (no text layer)
    low_confidence_pages: tuple[int, ...] = ()  # OCR pages whose text should be checked

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return asdict(self)


# One library change at a time per process: two uploads rebuilding the index at once would race.
_LOCK = threading.Lock()


def _noop(_fraction: float, _message: str) -> None:
    return None


def safe_name(filename: str) -> str:
    """A file name that is safe to create in the uploads folder (letters of any script kept).

    Directory parts are dropped (``../../x.txt`` -> ``x.txt``), anything but letters, digits,
    ``-``, ``_`` and ``.`` becomes ``_``, and a leading dot is removed so the file is not hidden.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^\w\-.]+", "_", stem, flags=re.UNICODE).strip("._ ")
    stem = stem[:MAX_NAME_CHARS] or "document"
    suffix = re.sub(r"[^\w]+", "", suffix).lower()
    return f"{stem}.{suffix}" if suffix else stem


def stored_name(filename: str) -> str:
    """The name an upload is saved under: a safe name with its (lower-cased) extension."""
    check_type(filename)
    return safe_name(filename)


def check_type(filename: str) -> str:
    """The lower-cased suffix of an allowed file; :class:`UnsupportedType` otherwise."""
    suffix = Path(filename.replace("\\", "/")).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        shown = suffix or "no extension"
        raise UnsupportedType(
            f"{Path(filename).name or 'the file'}: unsupported file type ({shown}); "
            f"upload one of {', '.join(ALLOWED_SUFFIXES)}"
        )
    return suffix


def upload_limit(filename: str) -> int:
    """The largest upload of this name: :data:`MAX_PDF_UPLOAD_BYTES` for a PDF (scans are
    large), else :data:`MAX_UPLOAD_BYTES`."""
    return MAX_PDF_UPLOAD_BYTES if Path(filename).suffix.lower() == ".pdf" else MAX_UPLOAD_BYTES


def megabytes(n: int) -> str:
    """``n`` bytes as the limits are quoted ("10 MB", "40 MB")."""
    return f"{n / (1024 * 1024):.0f} MB"


def check_size(filename: str, size: int) -> None:
    """Raise :class:`UploadTooLarge` for files over their :func:`upload_limit`."""
    limit = upload_limit(filename)
    if size > limit:
        raise UploadTooLarge(
            f"{filename}: the file is {size / 1e6:.1f} MB; the limit is {megabytes(limit)}"
            + (
                f" ({megabytes(MAX_PDF_UPLOAD_BYTES)} for a PDF)"
                if limit < MAX_PDF_UPLOAD_BYTES
                else ""
            )
        )


def extract(filename: str, data: bytes, progress: Progress | None = None) -> Extracted:
    """Read an upload with the document readers; :class:`LibraryError` / :class:`SourceError`.

    ``progress`` hears about each page of a PDF (reading it, or OCR) between 0.1 and 0.3.
    """
    check_type(filename)
    check_size(filename, len(data))
    report = progress or _noop

    def pages(done: int, total: int, message: str) -> None:
        report(0.1 + 0.2 * done / max(total, 1), message)

    try:
        extracted = cached_extract(filename, data, None, pages)
    except SourceTooLarge as exc:
        raise UploadTooLarge(str(exc)) from exc
    if extracted.format in ("text", "markdown"):
        # Saved with "\n" only, so the offsets of the saved file are the offsets of this text.
        text = extracted.text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        extracted = Extracted(text, extracted.format, extracted.pages, extracted.notes)
    if len(extracted.text) > MAX_TEXT_CHARS:
        raise UploadTooLarge(
            f"{filename}: {len(extracted.text):,} characters of text; the limit is "
            f"{MAX_TEXT_CHARS:,}"
        )
    return extracted


def extract_text(filename: str, data: bytes) -> str:
    """The text of an uploaded file; raises a :class:`LibraryError` or :class:`SourceError`."""
    return extract(filename, data).text


def _seed_ids(settings: Settings) -> set[str]:
    from rag.sources import corpus_files

    return {p.name for p in corpus_files(settings.corpus)} if settings.corpus.is_dir() else set()


def _upload_folder(settings: Settings) -> Path:
    if settings.uploads is None:
        raise LibraryError("uploads are disabled (no uploads folder configured)")
    return settings.uploads


def list_documents(settings: Settings, index: CorpusIndex) -> list[DocumentInfo]:
    """The documents of the index, seeds first, each marked seed or upload."""
    seeds = _seed_ids(settings)
    out = []
    for d in index.documents:
        is_seed = d["doc_id"] in seeds
        out.append(
            DocumentInfo(
                doc_id=d["doc_id"],
                title=d.get("title") or d["doc_id"],
                chars=int(d.get("chars", 0)),
                chunks=int(d.get("chunks", 0)),
                source="seed" if is_seed else "upload",
                removable=not is_seed,
                format=str(d.get("format", "text")),
                pages=len(d["pages"]) if d.get("pages") else None,
                ocr_pages=tuple(d.get("ocr_pages", ())),
                low_confidence_pages=tuple(d.get("low_confidence_pages", ())),
            )
        )
    return out


def document_path(settings: Settings, doc_id: str) -> Path:
    """The file behind a document id (seeds first); :class:`DocumentNotFound` if none.

    Only plain file names are accepted, so an id can never reach outside the two folders.
    """
    if not doc_id or doc_id != Path(doc_id).name or doc_id.startswith(".") or "\\" in doc_id:
        raise DocumentNotFound(f"no document {doc_id!r}")
    for folder in (settings.corpus, settings.uploads):
        if folder is not None and (folder / doc_id).is_file():
            return folder / doc_id
    raise DocumentNotFound(f"no document {doc_id!r}")


def document_text(settings: Settings, doc_id: str) -> str:
    """The raw text of a document: what citation offsets point into.

    For a text file that is the file; for a PDF, Word or HTML file the text extracted from it,
    which the index keeps (a PDF is never OCR'd again just to show a quote).
    """
    path = document_path(settings, doc_id)
    return cached_extract(path.name, path.read_bytes(), settings.index / TEXTS).text


def document_file(settings: Settings, doc_id: str) -> tuple[Path, str]:
    """The original file of a document and its media type (what its content is, not its name)."""
    path = document_path(settings, doc_id)
    reader, _ = reader_for(path.name, path.read_bytes())
    fmt = reader.format
    if fmt == "text" and path.suffix.lower() == ".md":
        fmt = "markdown"
    return path, MEDIA_TYPES.get(fmt, "application/octet-stream")


class _ReportingEmbedder:
    """Passes batches to the real embedder and reports each one, so an upload shows progress.

    ``build`` embeds what it has not seen before in two calls: the new chunks, then their
    new sentences (about ten per chunk, the longer part); they share the 0.4–0.95 stretch.
    """

    BATCH = 64
    STAGES = (("embedding new passages", 0.4, 0.5), ("embedding new sentences", 0.5, 0.95))

    def __init__(self, inner: Embedder, report: Progress) -> None:
        self.inner = inner
        self.report = report
        self.name = inner.name
        self.calls = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        label, lo, hi = self.STAGES[min(self.calls, len(self.STAGES) - 1)]
        self.calls += 1
        parts = []
        for i in range(0, len(texts), self.BATCH):
            parts.append(self.inner.embed_passages(texts[i : i + self.BATCH]))
            done = min(i + self.BATCH, len(texts))
            self.report(lo + (hi - lo) * done / len(texts), f"{label}: {done}/{len(texts)}")
        if not parts:
            return self.inner.embed_passages(texts)
        return np.concatenate(parts)


def _rebuild(engine: Engine, progress: Progress) -> CorpusIndex:
    spec = engine.settings.index_spec
    progress(0.3, "reading the corpus")
    docs = corpus_documents(spec)
    progress(0.4, "updating the index")
    index = build(spec, _ReportingEmbedder(engine.embedder, progress), docs)
    progress(0.97, "loading the new index")
    engine.reload(index)
    progress(1.0, "done")
    return index


UploadStatus = Literal["added", "replaced", "unchanged"]


def add_document(
    engine: Engine, filename: str, data: bytes, progress: Progress | None = None
) -> DocumentInfo:
    """Add (or replace) an uploaded document and update the index incrementally.

    A document with the same stored name as an earlier upload replaces it; one that would
    shadow a seed document is refused. Nothing is written unless the whole upload is valid.
    """
    return put_document(engine, filename, data, progress)[0]


def put_document(
    engine: Engine, filename: str, data: bytes, progress: Progress | None = None
) -> tuple[DocumentInfo, UploadStatus]:
    """:func:`add_document`, also saying whether the document was added, replaced or unchanged.

    An upload whose text equals the stored one changes nothing (no rebuild): the API answers it
    with 200 "unchanged" rather than 201 as if it were new.
    """
    report = progress or _noop
    settings = engine.settings
    folder = _upload_folder(settings)
    report(0.0, "checking the file")
    name = stored_name(filename)
    if name in _seed_ids(settings):
        raise DocumentProtected(
            f"{name}: a built-in document already has this name; rename the file and retry"
        )
    report(0.1, "extracting the text")
    extracted = extract(filename, data, report)
    report(0.3, "cleaning")
    # SourceError if nothing is left after cleaning
    doc = document_from(name, extracted, file_key(data))
    if not re.search(r"[^\W\d_]", doc.clean):
        raise SourceError(f"{filename}: the file has no words to index")
    from rag.chunking import chunk_corpus

    if not chunk_corpus([doc], settings.chunking):
        raise SourceError(f"{filename}: no passages could be made from the text")
    if store_kind(settings.store) == "milvus":
        return _put_in_store(engine, name, doc, report)
    with _LOCK:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        previous = target.read_bytes() if target.is_file() else None
        indexed = {d["doc_id"] for d in engine.index.documents}
        # Text formats are stored as normalised UTF-8, every other format as the original bytes
        # (the chat opens a PDF at the cited page): "unchanged" compares what would be stored.
        stored = (
            extracted.text.encode("utf-8") if extracted.format in ("text", "markdown") else data
        )
        if previous == stored and name in indexed:
            report(1.0, "unchanged")
            info = next(d for d in list_documents(settings, engine.index) if d.doc_id == name)
            return info, "unchanged"
        tmp = folder / f".{name}.part"
        tmp.write_bytes(stored)
        os.replace(tmp, target)
        try:
            index = _rebuild(engine, report)
        except BaseException:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(previous)
            raise
    logger.info("added %s (%d characters) from %s", name, len(extracted.text), filename)
    info = next(d for d in list_documents(settings, index) if d.doc_id == name)
    return info, "added" if previous is None else "replaced"


def remove_document(engine: Engine, doc_id: str, progress: Progress | None = None) -> None:
    """Remove an uploaded document and update the index; seeds are refused."""
    report = progress or _noop
    settings = engine.settings
    if doc_id in _seed_ids(settings):
        raise DocumentProtected(
            f"{doc_id} is part of the built-in corpus ({settings.corpus.name}/) and cannot be "
            "removed here; only uploaded documents can be removed"
        )
    if store_kind(settings.store) == "milvus":
        _remove_from_store(engine, doc_id, report)
        return
    folder = _upload_folder(settings)
    path = document_path(settings, doc_id)
    if path.parent.resolve() != folder.resolve():
        raise DocumentNotFound(f"no uploaded document {doc_id!r}")
    with _LOCK:
        kept = path.read_bytes()
        path.unlink()
        try:
            _rebuild(engine, report)
        except BaseException:
            path.write_bytes(kept)
            raise
    logger.info("removed %s", doc_id)


# --- a shared store (Milvus): the document goes to the store, which every replica reads --------


def _put_in_store(
    engine: Engine, name: str, doc: Document, report: Progress
) -> tuple[DocumentInfo, UploadStatus]:
    """Write one uploaded document to the shared store (no index folder, no uploads file).

    Only this document is chunked and embedded; the other replicas see it on their next request
    (the store's generation changed). The record says ``source: upload`` so that
    ``kazrag index --store`` keeps it although no corpus folder holds it.
    """
    from rag.store_index import document_rows

    with _LOCK:
        engine.refresh()
        before = {d["doc_id"]: d.get("sha256") for d in engine.index.documents}
        sha = hashlib.sha256(doc.raw.encode()).hexdigest()
        if before.get(name) == sha:
            report(1.0, "unchanged")
            return _info(engine, name), "unchanged"
        report(0.4, "embedding")
        rows = document_rows(
            [doc],
            _ReportingEmbedder(engine.embedder, report),
            engine.settings.chunking,
            source="upload",
        )
        report(0.95, "writing to the store")
        _store_of(engine).write(rows)
        engine.refresh()
    report(1.0, "done")
    logger.info("added %s (%d characters) to %s", name, len(doc.raw), engine.settings.store)
    return _info(engine, name), "added" if name not in before else "replaced"


def _remove_from_store(engine: Engine, doc_id: str, report: Progress) -> None:
    """Delete an uploaded document's rows from the shared store (any replica may do it)."""
    with _LOCK:
        engine.refresh()
        if doc_id not in {d["doc_id"] for d in engine.index.documents}:
            raise DocumentNotFound(f"no uploaded document {doc_id!r}")
        _store_of(engine).remove([doc_id])
        engine.refresh()
    report(1.0, "done")
    logger.info("removed %s from %s", doc_id, engine.settings.store)


def _store_of(engine: Engine) -> RowSink:
    store = getattr(engine.index, "store", None)
    if store is None:
        raise LibraryError("the index is not in a shared store")
    return cast("RowSink", store)


def _info(engine: Engine, doc_id: str) -> DocumentInfo:
    return next(d for d in list_documents(engine.settings, engine.index) if d.doc_id == doc_id)
