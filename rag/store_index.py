"""An index that lives in a shared store (Milvus) instead of a folder: stateless replicas.

A replica keeps no index files. What it holds in memory is loaded from the store and keyed by
the store's *generation* (a token every write or removal changes, through any replica):

- the chunk list (text, offsets, titles; no vectors), which maps Milvus hits to rows and feeds
  the evidence-first composer (its document sentences and term IDF);
- the BM25 index, rebuilt from those chunk texts by kazrag's own Kazakh analyzer, so IDF and
  average length are always those of the current collection: the statistics cannot go stale
  because they are recomputed from the store when its generation changes (see
  :meth:`StoreIndex.current`), whichever replica changed it;
- sentence vectors, fetched from Milvus per document when the composer first needs them.

Dense search runs in Milvus (``MilvusDense``); lexical search and the fusion of the two lists
run in kazrag (:class:`rag.retriever.Retriever`, the same code as the FAISS path), which is
what makes the top-5 the same as the FAISS path's.

This is the first step, honestly: every replica materialises the chunk list and a BM25 index
of the whole collection (≈ the chunk texts: ~1.5 kB a chunk, so ~1.5 GB per million chunks, and
a rebuild of BM25 after each change). docs/deploy.md says what the next step is at scale
(BM25 candidates from the ``terms`` sparse field in Milvus, rescored with aggregated statistics).

Writing: :func:`document_rows` turns documents into :class:`rag.rows.DocumentRows` (chunked and
embedded), :func:`index_into_store` is ``kazrag index --store URI``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag import ingest
from rag.chunking import ChunkingConfig
from rag.embedding import Embedder
from rag.index import (
    FORMAT_VERSION,
    CorpusIndex,
    IndexMismatch,
    IndexMissing,
    IndexSpec,
    corpus_documents,
    open_index,
    search_text,
    term_idf,
)
from rag.lexical import BM25Index, LexicalConfig
from rag.rows import DocumentRows
from rag.schema import Document, Sentence
from rag.stores import store_kind
from rag.stores.milvus import MilvusDense, MilvusStore, StoreMismatch

logger = logging.getLogger(__name__)

# Documents embedded and written per store write: a killed run loses at most this many.
WRITE_BATCH = 16


def expected_metadata(spec: IndexSpec, embedder: Embedder) -> dict[str, Any]:
    """What a replica requires of a store: the settings that shape the vectors and BM25."""
    return {
        "format_version": FORMAT_VERSION,
        "model": embedder.name,
        "dimension": embedder.dim,
        "chunking": spec.chunking.to_json(),
        "lexical": spec.lexical.to_json(),
    }


def _raw_sha(doc: Document) -> str:
    return hashlib.sha256(doc.raw.encode()).hexdigest()


def document_rows(
    docs: Sequence[Document],
    embedder: Embedder,
    chunking: ChunkingConfig,
    show_progress: bool = False,
    source: str | None = None,
) -> list[DocumentRows]:
    """Chunk and embed ``docs`` into rows for a :class:`rag.rows.RowSink` (the one producer of
    rows, :func:`rag.ingest.document_rows`, which a Ray worker runs too)."""
    return ingest.document_rows(
        docs, embedder, chunking, show_progress=show_progress, source=source
    )


def rows_from_index(index: CorpusIndex) -> list[DocumentRows]:
    """The rows of a folder index, vectors included: FAISS -> Milvus without embedding again.

    ``kazrag index --store URI --from-index FOLDER`` writes them (a migration); the store then
    answers exactly as the folder index did (tests/test_milvus_store.py).
    """
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(index.chunks):
        by_doc.setdefault(c.doc_id, []).append(i)
    out = []
    for record in index.documents:
        doc_id = str(record["doc_id"])
        rows = by_doc.get(doc_id, [])
        sents = tuple(s for s, _ in index.doc_sentences.get(doc_id, []))
        vecs = [index.sentence_vector(doc_id, s.start, s.end) for s in sents]
        if any(v is None for v in vecs):
            raise IndexMissing(f"index at {index.folder} lacks sentence vectors of {doc_id}")
        out.append(
            DocumentRows(
                doc_id=doc_id,
                record=dict(record),
                chunks=tuple(index.chunks[i] for i in rows),
                chunk_vectors=index.vectors[rows] if rows else index.vectors[:0],
                sentences=sents,
                sentence_vectors=(
                    np.stack([v for v in vecs if v is not None])
                    if vecs
                    else np.zeros((0, index.vectors.shape[1]), dtype=np.float32)
                ),
            )
        )
    return out


def migrate(index: CorpusIndex, spec: IndexSpec, replace: bool = False) -> dict[str, Any]:
    """Copy a folder index (chunks, vectors, sentence vectors, records) into the store of
    ``spec`` with its own metadata, so replicas with the same model accept it."""
    t0 = time.perf_counter()
    m = index.manifest
    store = _open_store(spec)
    if replace:
        store.drop()
    meta = {
        "format_version": m["format_version"],
        "model": m["model"],
        "dimension": m["dimension"],
        "chunking": m["chunking"],
        "lexical": m["lexical"],
        "backend": m.get("backend", "torch"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "migrated_from": str(index.folder),
    }
    try:
        store.create(meta)
    except StoreMismatch as exc:
        raise IndexMismatch(str(exc)) from exc
    rows = rows_from_index(index)
    for i in range(0, len(rows), WRITE_BATCH):
        store.write(rows[i : i + WRITE_BATCH])
    wanted = {r.doc_id for r in rows}
    gone = sorted(str(r["doc_id"]) for r in store.documents() if r["doc_id"] not in wanted)
    store.remove(gone)
    counts = store.counts()
    return {
        "store": spec.store,
        **counts,
        "written": len(rows),
        "written_chunks": sum(len(r.chunks) for r in rows),
        "unchanged": 0,
        "removed": len(gone),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _span(s: Sentence) -> tuple[int, int]:
    return (s.start, s.end)


def _open_store(spec: IndexSpec) -> MilvusStore:
    return MilvusStore(spec.store)


def store_sink(spec: IndexSpec, embedder: Embedder, replace: bool = False) -> MilvusStore:
    """The store of ``spec`` ready to take rows from ``embedder`` (created when empty).

    ``replace`` drops it first. A store built with another model is refused
    (:class:`~rag.index.IndexMismatch`). Local and Ray ingestion both write through it.
    """
    store = _open_store(spec)
    if replace:
        store.drop()
    meta = {
        **expected_metadata(spec, embedder),
        "backend": str(getattr(embedder, "backend", "torch")),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        store.create(meta)
    except StoreMismatch as exc:
        raise IndexMismatch(str(exc)) from exc
    return store


def stale_documents(store: MilvusStore, wanted: dict[str, str]) -> list[str]:
    """Stored documents no longer in the corpus (``wanted``); uploads live only in the store."""
    return sorted(
        str(r["doc_id"])
        for r in store.documents()
        if r["doc_id"] not in wanted and r.get("source") != "upload"
    )


def index_into_store(
    spec: IndexSpec,
    embedder: Embedder,
    docs: Sequence[Document],
    replace: bool = False,
    show_progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``kazrag index --store URI``: bring the store to exactly ``docs`` (plus its uploads).

    Documents already stored with the same text are skipped (not embedded again); changed and
    new ones are written in batches of :data:`WRITE_BATCH`; stored documents that are no longer
    in ``docs`` are removed, except those uploaded through the chat or the API (they live only
    in the store). ``replace`` drops the store first (another model, or a clean rebuild).
    """
    t0 = time.perf_counter()
    store = store_sink(spec, embedder, replace)
    wanted = {d.doc_id: _raw_sha(d) for d in docs}
    done = store.stored(wanted)
    todo = [d for d in docs if d.doc_id not in done]
    gone = stale_documents(store, wanted)
    chunks = 0
    for i in range(0, len(todo), WRITE_BATCH):
        rows = document_rows(todo[i : i + WRITE_BATCH], embedder, spec.chunking, show_progress)
        store.write(rows)
        chunks += sum(len(r.chunks) for r in rows)
        if report is not None:
            report(f"{min(i + WRITE_BATCH, len(todo))}/{len(todo)} documents written")
    store.remove(gone)
    counts = store.counts()
    return {
        "store": spec.store,
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "sentences": counts["sentences"],
        "written": len(todo),
        "written_chunks": chunks,
        "unchanged": len(done),
        "removed": len(gone),
        "seconds": round(time.perf_counter() - t0, 3),
    }


@dataclass
class StoreIndex(CorpusIndex):
    """A :class:`CorpusIndex` loaded from a Milvus store at one generation (module doc)."""

    store: MilvusStore | None = None
    spec: IndexSpec | None = None
    generation: str = ""
    _doc_vectors: dict[str, dict[tuple[int, int], np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @functools.cached_property
    def term_idf(self) -> dict[str, float]:
        """Computed from the store's chunks (``folder`` may hold an unrelated folder index)."""
        return term_idf(self.chunks, self.lexical.config)

    @classmethod
    def load(cls, store: MilvusStore, spec: IndexSpec) -> StoreIndex:
        """Read the store's documents and chunks and build the in-memory BM25 index."""
        t0 = time.perf_counter()
        generation = store.generation()  # read first: a write after it triggers a reload
        meta = store.metadata() or {}
        documents = store.documents()
        chunks = store.chunks()
        lexical = LexicalConfig.from_json(meta.get("lexical", {}))
        bm25 = BM25Index.build([search_text(c) for c in chunks], lexical)
        dim = int(meta.get("dimension", 0))
        manifest = {
            **meta,
            "store": "milvus",
            "store_uri": store.uri,
            "store_kind": "flat",
            "corpus": None,
            "documents": documents,
            "n_chunks": len(chunks),
            "generation": generation,
        }
        logger.info(
            "loaded %d chunks of %d documents from %s in %.2fs",
            len(chunks),
            len(documents),
            store.uri,
            time.perf_counter() - t0,
        )
        return cls(
            folder=spec.folder,
            manifest=manifest,
            chunks=chunks,
            vectors=np.zeros((0, dim), dtype=np.float32),
            dense=MilvusDense(store, [c.chunk_id for c in chunks]),
            lexical=bm25,
            sentence_keys=[],
            sentence_vectors=np.zeros((0, dim), dtype=np.float32),
            store=store,
            spec=spec,
            generation=generation,
        )

    def current(self) -> StoreIndex:
        """This index if the store has not changed since it was loaded, else a fresh load.

        One small read of the store per call (its generation): a replica sees documents added
        or removed through another replica on its next question.
        """
        assert self.store is not None and self.spec is not None
        if self.store.generation() == self.generation:
            return self
        logger.info("the store %s changed; reloading", self.store.uri)
        return StoreIndex.load(self.store, self.spec)

    def sentence_vector(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        """The stored vector of a chunk sentence, fetched from Milvus with its document's."""
        assert self.store is not None
        vectors = self._doc_vectors.get(doc_id)
        if vectors is None:
            got = self.store.sentence_vectors([doc_id])
            vectors = {(s, e): v for (_, s, e), v in got.items()}
            self._doc_vectors[doc_id] = vectors
        return vectors.get((start, end))


def open_store_index(spec: IndexSpec, embedder: Embedder, build_empty: bool = True) -> StoreIndex:
    """Connect to the store of ``spec.store``, check it was built like this replica, load it.

    An empty store is filled from ``spec.corpus`` (and the uploads) when ``build_empty``; a
    store built with another model, dimension, chunking or analyzer is refused
    (:class:`rag.index.IndexMismatch`, with what differs).
    """
    store = _open_store(spec)
    try:
        meta = store.check(expected_metadata(spec, embedder))
    except StoreMismatch as exc:
        raise IndexMismatch(str(exc)) from exc
    if meta is None or not store.documents():
        if not build_empty or spec.corpus is None or not spec.corpus.is_dir():
            raise IndexMissing(
                f"the Milvus store at {spec.store} is empty; fill it with: "
                f"kazrag index --store {spec.store} --corpus FOLDER"
            )
        logger.warning("the Milvus store at %s is empty; indexing %s", spec.store, spec.corpus)
        index_into_store(spec, embedder, corpus_documents(spec))
    return StoreIndex.load(store, spec)


def open_any(spec: IndexSpec, embedder: Embedder, rebuild: bool = True) -> CorpusIndex:
    """The index of ``spec`` wherever it lives: a folder (:func:`rag.index.open_index`: load,
    build or rebuild) or a shared Milvus store (:func:`open_store_index`)."""
    if store_kind(spec.store) == "milvus":
        return open_store_index(spec, embedder, build_empty=rebuild)
    return open_index(spec, embedder, rebuild=rebuild)
