"""Ingestion one document at a time: what a worker (local or on a Ray cluster) does with a file.

:func:`document_rows` turns documents into :class:`~rag.rows.DocumentRows` (chunked, paged,
chunks embedded as ``search_text``, each sentence once); :func:`extract_file` and
:func:`documents_from` split reading into the two steps a cluster needs, because cleaning
depends on the whole corpus (the hyphenation vocabulary decides line-end hyphens) and so the
vocabulary is gathered between them; :func:`assemble_index` writes rows as the index folder
that :func:`rag.index.build_index` would have written for the same documents.

The local build keeps its own path (``build_index``): it embeds the whole corpus in one call,
and an encoder's floats can depend, in the last bits, on which texts share a padded batch
(different matrix shapes round differently), so routing it through the per-batch path here
could change today's vectors. With a deterministic per-text encoder (the tests' hash embedder)
the two paths give byte-identical index files (tests/test_ray_ingest.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import ChunkingConfig, chunk_document
from rag.embedding import Embedder
from rag.index import (
    CorpusIndex,
    SentenceKey,
    _embed_cached,
    _extracted_record,
    _with_pages,
    _write_atomically,
    document_record,
    index_manifest,
    search_text,
)
from rag.lexical import BM25Index, LexicalConfig
from rag.readers import Extracted, cached_extract, file_key
from rag.rows import DocumentRows
from rag.schema import Chunk, Document, Sentence
from rag.sources import SourceError, _known_words, corpus_files, document_from
from rag.stores import store_class

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[[], Embedder]
"""Builds the encoder where it runs (once per worker): a picklable callable, e.g.
``functools.partial(rag.embedding.make_embedder, model, backend)``."""


@dataclass(frozen=True)
class ExtractedFile:
    """One file read (and, for PDFs, Word and HTML, extracted) but not yet cleaned.

    ``words`` is the file's share of the corpus vocabulary (see ``rag.sources._known_words``;
    the union over files is the corpus's), ``sha256`` the hash of the extracted text (the
    document's content hash), ``file_sha256`` the hash of the file's bytes.
    """

    doc_id: str
    extracted: Extracted
    file_sha256: str
    sha256: str
    words: frozenset[str]


def extract_file(path: Path, cache: Path | None = None) -> ExtractedFile:
    """Read one corpus file (``SourceError`` if it cannot be read); its id is its name."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path.name}: {exc}") from exc
    extracted = cached_extract(path.name, data, cache)
    return ExtractedFile(
        doc_id=path.name,
        extracted=extracted,
        file_sha256=file_key(data),
        sha256=hashlib.sha256(extracted.text.encode()).hexdigest(),
        words=frozenset(_known_words([extracted.text])),
    )


def corpus_paths(corpus: Path, uploads: Path | None = None) -> list[Path]:
    """The files of a corpus folder, then the uploads whose names the corpus does not hold.

    The same documents, in the same order, as ``rag.index.read_documents``.
    """
    files = corpus_files(corpus)
    if uploads is not None and uploads.is_dir():
        known = {p.name for p in files}
        files += [p for p in corpus_files(uploads) if p.name not in known]
    return files


def documents_from(files: Iterable[ExtractedFile], vocabulary: set[str]) -> list[Document]:
    """Clean extracted files into documents with the corpus vocabulary (as ``read_corpus``)."""
    return [document_from(f.doc_id, f.extracted, f.file_sha256, vocabulary) for f in files]


def _chunks(doc: Document, chunking: ChunkingConfig) -> tuple[Chunk, ...]:
    seen: set[str] = set()
    unique = []
    for c in chunk_document(doc, chunking):
        if c.chunk_id not in seen:  # a passage repeated in a document is kept once
            seen.add(c.chunk_id)
            unique.append(c)
    return tuple(_with_pages(unique, [doc]))


def _sentences(chunks: Sequence[Chunk]) -> tuple[Sentence, ...]:
    """Each sentence once, in the order ``build_index`` keys them (first chunk holding it)."""
    seen: set[tuple[int, int]] = set()
    out = []
    for c in chunks:
        for s in c.sentences:
            if (s.start, s.end) not in seen:
                seen.add((s.start, s.end))
                out.append(s)
    return tuple(out)


def document_rows(
    docs: Sequence[Document],
    embedder: Embedder,
    chunking: ChunkingConfig | None = None,
    cache: dict[str, np.ndarray] | None = None,
    show_progress: bool = False,
    source: str | None = None,
) -> list[DocumentRows]:
    """Chunk and embed documents into rows: one encoder call for their chunks, one for sentences.

    ``cache`` (text hash -> vector, as ``rag.index._embed_cached`` keys it) spares texts whose
    vectors are known; it is filled with the new ones. ``source`` (``upload``) is recorded in
    each document's record.
    """
    chunking = chunking or ChunkingConfig()
    cache = {} if cache is None else cache
    dim = embedder.dim
    chunks = [_chunks(d, chunking) for d in docs]
    sentences = [_sentences(c) for c in chunks]
    flat_chunks = [c for cs in chunks for c in cs]
    vectors, _ = _embed_cached(
        [search_text(c) for c in flat_chunks],
        cache,
        lambda texts: embedder.embed_passages(texts, show_progress=show_progress),
        dim,
    )
    svectors, _ = _embed_cached(
        [s.text for ss in sentences for s in ss], cache, embedder.embed_passages, dim
    )
    out = []
    at = sat = 0
    for doc, cs, ss in zip(docs, chunks, sentences, strict=True):
        extracted = (
            _extracted_record(doc)
            if doc.file_sha256 and doc.format not in ("text", "markdown")
            else None
        )
        out.append(
            DocumentRows(
                doc_id=doc.doc_id,
                record=document_record(doc, len(cs)) | ({"source": source} if source else {}),
                chunks=cs,
                chunk_vectors=vectors[at : at + len(cs)],
                sentences=ss,
                sentence_vectors=svectors[sat : sat + len(ss)],
                extracted=extracted,
            )
        )
        at += len(cs)
        sat += len(ss)
    return out


# --- rows <-> plain columns (what travels between Ray workers and the driver) -------------


def rows_to_record(rows: DocumentRows) -> dict[str, Any]:
    """A flat, Arrow-friendly record of one document's rows (JSON text and float32 bytes)."""
    return {
        "doc_id": rows.doc_id,
        "record": json.dumps(dict(rows.record), ensure_ascii=False),
        "chunks": json.dumps([c.to_json() for c in rows.chunks], ensure_ascii=False),
        "chunk_vectors": np.ascontiguousarray(rows.chunk_vectors, np.float32).tobytes(),
        "sentences": json.dumps(
            [[s.text, s.start, s.end] for s in rows.sentences], ensure_ascii=False
        ),
        "sentence_vectors": np.ascontiguousarray(rows.sentence_vectors, np.float32).tobytes(),
        "extracted": rows.extracted or "",
    }


def rows_from_record(record: Mapping[str, Any], dim: int) -> DocumentRows:
    """Inverse of :func:`rows_to_record`."""
    chunks = tuple(Chunk.from_json(r) for r in json.loads(record["chunks"]))
    sentences = tuple(Sentence(t, int(s), int(e)) for t, s, e in json.loads(record["sentences"]))
    vectors = np.frombuffer(bytes(record["chunk_vectors"]), np.float32).reshape(-1, dim)
    svectors = np.frombuffer(bytes(record["sentence_vectors"]), np.float32).reshape(-1, dim)
    return DocumentRows(
        doc_id=str(record["doc_id"]),
        record=json.loads(record["record"]),
        chunks=chunks,
        chunk_vectors=vectors.copy(),
        sentences=sentences,
        sentence_vectors=svectors.copy(),
        extracted=str(record["extracted"]) or None,
    )


# --- rows -> the index folder ------------------------------------------------------------


@dataclass(frozen=True)
class IndexMeta:
    """What an index folder records about how its rows were made (its manifest's settings)."""

    model: str
    backend: str
    dimension: int
    chunking: ChunkingConfig
    lexical: LexicalConfig
    store: str = "faiss"
    kind: str = "auto"
    corpus: Path | None = None


def assemble_index(
    documents: Sequence[DocumentRows],
    folder: Path,
    meta: IndexMeta,
    embedded: Mapping[str, int] | None = None,
    started: float | None = None,
) -> CorpusIndex:
    """Write rows (in corpus order) as an index folder, atomically, as ``build_index`` does.

    The chunks, vectors, sentences and manifest records are those ``build_index`` writes for
    the same documents; ``embedded`` is how many chunks and sentences this run encoded.
    """
    t0 = started if started is not None else time.perf_counter()
    chunks = [c for d in documents for c in d.chunks]
    if not chunks:
        raise ValueError("the corpus produced no chunks: are the documents empty?")
    vectors = np.vstack([d.chunk_vectors for d in documents]).astype(np.float32, copy=False)
    keys = [SentenceKey(d.doc_id, s.start, s.end) for d in documents for s in d.sentences]
    texts = [s.text for d in documents for s in d.sentences]
    svectors = np.vstack(
        [d.sentence_vectors.reshape(-1, meta.dimension) for d in documents]
    ).astype(np.float32, copy=False)
    dense = store_class(meta.store).build(vectors, meta.kind)
    bm25 = BM25Index.build([search_text(c) for c in chunks], meta.lexical)
    manifest = index_manifest(
        [d.record for d in documents],
        model=meta.model,
        backend=meta.backend,
        dimension=meta.dimension,
        store=meta.store,
        store_kind=dense.kind,
        chunking=meta.chunking,
        lexical=meta.lexical,
        corpus=meta.corpus,
        n_chunks=len(chunks),
        n_sentences=len(keys),
        embedded=embedded or {"chunks": 0, "sentences": 0},
        started=t0,
    )
    extracted = {
        str(d.record["file_sha256"]): d.extracted
        for d in documents
        if d.extracted and d.record.get("file_sha256")
    }
    _write_atomically(
        folder, chunks, vectors, dense, bm25, keys, texts, svectors, manifest, extracted
    )
    return CorpusIndex(folder, manifest, chunks, vectors, dense, bm25, keys, svectors)
