"""The document library: list, upload and remove documents of the running bot's corpus.

Uploads (``.txt``, ``.md``, ``.pdf``, ``.docx``) are turned into UTF-8 text files in
``settings.uploads`` (the original bytes are not kept: citations point into the saved text), and
the index is rebuilt from the corpus plus the uploads. ``build_index`` reuses the vectors of every
chunk it has seen before, so an upload only embeds the new document's chunks, and it replaces the
index folder atomically; the running engine then swaps the new index in. An upload is checked
completely (type, size, extraction, cleaning) *before* anything is written, and the text file is
taken back out if the index build fails, so a rejected upload leaves corpus and index unchanged.

Seed documents (``settings.corpus``, tracked in git) cannot be removed here: the chat and the API
refuse with a message saying so. Only uploaded documents can be removed.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.embedding import Embedder
from rag.index import CorpusIndex, build, corpus_documents
from rag.sources import SourceError, make_document, read_text

if TYPE_CHECKING:
    from rag.pipeline import Engine
    from rag.settings import Settings

logger = logging.getLogger(__name__)

ALLOWED_SUFFIXES = (".txt", ".md", ".pdf", ".docx")
# 10 MB of file is ~100 pages of a text-heavy PDF; larger collections belong in `kazrag index`.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Extracted text above this is refused: the CPU embedder indexes about 1.5 k characters a
# second (chunks and their sentences), so 400 k characters already takes minutes in the chat.
MAX_TEXT_CHARS = 400_000
MAX_PDF_PAGES = 500
# A .docx is a zip; refuse archives that would inflate far beyond any real document.
MAX_DOCX_INFLATED = 200 * 1024 * 1024
MAX_NAME_CHARS = 80

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
    """The name an upload is saved under: ``.md`` stays markdown, everything else is ``.txt``."""
    name = safe_name(filename)
    stem, _, suffix = name.rpartition(".")
    check_type(filename)
    return f"{stem}.md" if suffix == "md" else f"{stem}.txt"


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


def check_size(filename: str, size: int) -> None:
    """Raise :class:`UploadTooLarge` for files over :data:`MAX_UPLOAD_BYTES`."""
    if size > MAX_UPLOAD_BYTES:
        raise UploadTooLarge(
            f"{filename}: the file is {size / 1e6:.1f} MB; the limit is "
            f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB"
        )


def _pdf_text(filename: str, data: bytes) -> str:
    from pypdf import PdfReader

    # pypdf raises many exception types on damaged or hostile files; any of them means "not a
    # readable PDF" to the person uploading it.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:  # an empty user password opens many "protected" PDFs
                opened = reader.decrypt("") != 0
            except Exception:
                opened = False
            if not opened:
                raise SourceError(
                    f"{filename}: the PDF is password-protected; remove the password and retry"
                )
        pages = len(reader.pages)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{filename}: not a readable PDF ({exc})") from exc
    if pages > MAX_PDF_PAGES:
        raise UploadTooLarge(f"{filename}: {pages} pages; the limit is {MAX_PDF_PAGES} pages")
    try:
        texts = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise SourceError(f"{filename}: the PDF's text could not be extracted ({exc})") from exc
    text = "\n\n".join(t.strip("\n") for t in texts)
    if not text.strip():
        raise SourceError(
            f"{filename}: the PDF has no text layer (a scan?); upload a text PDF or a .txt file"
        )
    return text


def _docx_text(filename: str, data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            inflated = sum(info.file_size for info in z.infolist())
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{filename}: not a readable .docx file (not a zip archive)") from exc
    if inflated > MAX_DOCX_INFLATED:
        raise UploadTooLarge(f"{filename}: the .docx unpacks to {inflated / 1e6:.0f} MB; too large")
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors…
        raise SourceError(f"{filename}: not a readable .docx file ({exc})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(p.strip() for p in parts if p.strip())


def _plain_text(filename: str, data: bytes) -> str:
    # read_text holds the project's rules for text files (UTF-8 or a UTF-16 BOM, not binary);
    # it reads a path, so the bytes go to a private temporary folder, never the uploads folder.
    with tempfile.TemporaryDirectory(prefix="kazrag-upload-") as tmp:
        path = Path(tmp) / (safe_name(filename) or "upload.txt")
        path.write_bytes(data)
        text = read_text(path)
    # Saved with "\n" only, so the offsets of the saved file are the offsets of this text.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_text(filename: str, data: bytes) -> str:
    """The text of an uploaded file; raises a :class:`LibraryError` or :class:`SourceError`."""
    suffix = check_type(filename)
    check_size(filename, len(data))
    if not data.strip():
        raise SourceError(f"{filename}: the file is empty")
    if suffix == ".pdf":
        text = _pdf_text(filename, data)
    elif suffix == ".docx":
        text = _docx_text(filename, data)
    else:
        text = _plain_text(filename, data)
    text = text.replace("\x00", "")
    if len(text) > MAX_TEXT_CHARS:
        raise UploadTooLarge(
            f"{filename}: {len(text):,} characters of text; the limit is {MAX_TEXT_CHARS:,}"
        )
    return text


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
    """The raw text of a document: what citation offsets point into."""
    return read_text(document_path(settings, doc_id))


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


def add_document(
    engine: Engine, filename: str, data: bytes, progress: Progress | None = None
) -> DocumentInfo:
    """Add (or replace) an uploaded document and update the index incrementally.

    A document with the same stored name as an earlier upload replaces it; one that would
    shadow a seed document is refused. Nothing is written unless the whole upload is valid.
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
    text = extract_text(filename, data)
    report(0.2, "cleaning")
    doc = make_document(name, text)  # SourceError if nothing is left after cleaning
    if not re.search(r"[^\W\d_]", doc.clean):
        raise SourceError(f"{filename}: the file has no words to index")
    from rag.chunking import chunk_corpus

    if not chunk_corpus([doc], settings.chunking):
        raise SourceError(f"{filename}: no passages could be made from the text")
    with _LOCK:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        previous = target.read_bytes() if target.is_file() else None
        tmp = folder / f".{name}.part"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        try:
            index = _rebuild(engine, report)
        except BaseException:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(previous)
            raise
    logger.info("added %s (%d characters) from %s", name, len(text), filename)
    info = next(d for d in list_documents(settings, index) if d.doc_id == name)
    return info


def remove_document(engine: Engine, doc_id: str, progress: Progress | None = None) -> None:
    """Remove an uploaded document and update the index; seeds are refused."""
    report = progress or _noop
    settings = engine.settings
    if doc_id in _seed_ids(settings):
        raise DocumentProtected(
            f"{doc_id} is part of the built-in corpus ({settings.corpus.name}/) and cannot be "
            "removed here; only uploaded documents can be removed"
        )
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
