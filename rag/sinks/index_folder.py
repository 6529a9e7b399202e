"""A :class:`~rag.rows.RowSink` for today's store: rows staged on disk, the index folder at the end.

Each written document becomes two files in ``.{index}.rows/`` beside the index folder:
``<key>.<sha256>.npz`` (its vectors) and then ``<key>.<sha256>.json`` (its record, chunks and
sentences), each renamed into place; the JSON goes last, so a document counts as stored only
once both are whole, and a run killed mid-write writes it again. A run killed and started again
therefore re-embeds only the documents it had not finished.

Documents the current index already holds, unchanged (same content hash, built with the same
model, backend, chunking and BM25 settings), count as stored too and their rows are taken from
the index: a distributed run over an indexed corpus embeds only what is new or changed.

:meth:`IndexFolderSink.finish` writes the index folder atomically (the same files
``rag.index.build_index`` writes) and then drops the staging folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.index import (
    MANIFEST,
    TEXTS,
    CorpusIndex,
    IndexUnavailable,
    load_index,
)
from rag.ingest import IndexMeta, assemble_index
from rag.rows import DocumentRows
from rag.schema import Chunk, Sentence

logger = logging.getLogger(__name__)


def _key(doc_id: str) -> str:
    """A file-name-safe key for a document id (ids are file names, which may hold anything)."""
    return hashlib.sha1(doc_id.encode()).hexdigest()[:20]


def _replace_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class IndexFolderSink:
    """Stages document rows durably and writes the FAISS index folder from them at the end."""

    def __init__(self, folder: Path, meta: IndexMeta) -> None:
        self.folder = folder.resolve()
        self.meta = meta
        self.staging = self.folder.parent / f".{self.folder.name}.rows"
        self._index: CorpusIndex | bool | None = False  # False: not looked at yet
        self._removed: set[str] = set()

    # --- what is already there ------------------------------------------------------------

    def _staged(self) -> dict[str, str]:
        """key -> sha256 of every document whose rows are whole in the staging folder."""
        if not self.staging.is_dir():
            return {}
        out = {}
        for p in self.staging.iterdir():
            parts = p.name.split(".")
            if len(parts) == 3 and parts[2] == "json":
                out[parts[0]] = parts[1]
        return out

    def _current_index(self) -> CorpusIndex | None:
        """The index in the folder, if built with this run's settings (else its rows are not used)."""
        if self._index is False:
            try:
                index = load_index(
                    self.folder,
                    self.meta.model,
                    self.meta.chunking,
                    self.meta.lexical,
                    self.meta.store,
                )
                same = (
                    index.manifest.get("backend", "torch") == self.meta.backend
                    and index.manifest.get("dimension") == self.meta.dimension
                )
                self._index = index if same else None
            except IndexUnavailable as exc:
                logger.info("no reusable index at %s (%s)", self.folder, exc)
                self._index = None
        return self._index if isinstance(self._index, CorpusIndex) else None

    def _indexed(self) -> dict[str, str]:
        index = self._current_index()
        if index is None:
            return {}
        return {
            str(d["doc_id"]): str(d.get("sha256"))
            for d in index.documents
            if d["doc_id"] not in self._removed
        }

    def stored(self, documents: Mapping[str, str]) -> set[str]:
        """Documents (doc_id -> sha256) staged whole or held unchanged by the current index."""
        staged = self._staged()
        indexed = self._indexed()
        return {
            doc_id
            for doc_id, sha in documents.items()
            if staged.get(_key(doc_id)) == sha or indexed.get(doc_id) == sha
        }

    # --- writing --------------------------------------------------------------------------

    def _drop(self, key: str, keep: str | None = None) -> None:
        if not self.staging.is_dir():
            return
        for p in self.staging.glob(f"{key}.*"):
            if keep is None or not p.name.startswith(f"{key}.{keep}."):
                p.unlink(missing_ok=True)

    def write(self, rows: Sequence[DocumentRows]) -> None:
        """Upsert documents: vectors first, then the record that marks the document whole."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for doc in rows:
            key = _key(doc.doc_id)
            self._drop(key, keep=doc.sha256)  # older versions of the document
            base = f"{key}.{doc.sha256}"
            buf = _npz_bytes(doc.chunk_vectors, doc.sentence_vectors)
            _replace_bytes(self.staging / f"{base}.npz", buf)
            body = {
                "doc_id": doc.doc_id,
                "record": dict(doc.record),
                "chunks": [c.to_json() for c in doc.chunks],
                "sentences": [[s.text, s.start, s.end] for s in doc.sentences],
                "extracted": doc.extracted,
            }
            _replace_bytes(
                self.staging / f"{base}.json", json.dumps(body, ensure_ascii=False).encode()
            )
            self._removed.discard(doc.doc_id)

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Forget documents: their staged rows are deleted and the index's are not carried over."""
        for doc_id in doc_ids:
            self._drop(_key(doc_id))
            self._removed.add(doc_id)

    # --- reading back and finishing -------------------------------------------------------

    def _read_staged(self, doc_id: str, sha: str) -> DocumentRows:
        base = self.staging / f"{_key(doc_id)}.{sha}"
        body: dict[str, Any] = json.loads(Path(f"{base}.json").read_text(encoding="utf-8"))
        with np.load(Path(f"{base}.npz"), allow_pickle=False) as z:
            vectors, svectors = z["chunks"], z["sentences"]
        return DocumentRows(
            doc_id=doc_id,
            record=body["record"],
            chunks=tuple(Chunk.from_json(r) for r in body["chunks"]),
            chunk_vectors=vectors,
            sentences=tuple(Sentence(t, int(s), int(e)) for t, s, e in body["sentences"]),
            sentence_vectors=svectors,
            extracted=body.get("extracted"),
        )

    def _read_indexed(self, doc_ids: set[str]) -> dict[str, DocumentRows]:
        """The rows of these documents as the current index holds them."""
        index = self._current_index()
        if index is None or not doc_ids:
            return {}
        rows: dict[str, list[int]] = {}
        for i, c in enumerate(index.chunks):
            if c.doc_id in doc_ids:
                rows.setdefault(c.doc_id, []).append(i)
        srows: dict[str, list[int]] = {}
        for j, k in enumerate(index.sentence_keys):
            if k.doc_id in doc_ids:
                srows.setdefault(k.doc_id, []).append(j)
        sentences = json.loads((index.folder / "sentences.json").read_text(encoding="utf-8"))
        out = {}
        for record in index.documents:
            doc_id = str(record["doc_id"])
            if doc_id not in doc_ids:
                continue
            ci, si = rows.get(doc_id, []), srows.get(doc_id, [])
            sha = record.get("file_sha256")
            out[doc_id] = DocumentRows(
                doc_id=doc_id,
                record=record,
                chunks=tuple(index.chunks[i] for i in ci),
                chunk_vectors=index.vectors[ci],
                sentences=tuple(
                    Sentence(sentences[j][3], sentences[j][1], sentences[j][2]) for j in si
                ),
                sentence_vectors=index.sentence_vectors[si],
                extracted=self._extracted_text(index, sha) if sha else None,
            )
        return out

    @staticmethod
    def _extracted_text(index: CorpusIndex, file_sha256: str) -> str | None:
        path = index.folder / TEXTS / f"{file_sha256}.json"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def finish(
        self,
        documents: Mapping[str, str],
        embedded: Mapping[str, int] | None = None,
        started: float | None = None,
    ) -> CorpusIndex:
        """Write the index folder of ``documents`` (doc_id -> sha256, in corpus order).

        Every document must be stored (staged, or unchanged in the current index); the
        staging folder is removed once the index is in place.
        """
        staged = self._staged()
        from_index = {d for d, sha in documents.items() if staged.get(_key(d)) != sha}
        missing = from_index - {d for d, sha in self._indexed().items() if documents.get(d) == sha}
        if missing:
            raise RuntimeError(
                f"{len(missing)} documents have no stored rows (e.g. {sorted(missing)[:3]}); "
                "run the ingestion again to finish them"
            )
        old = self._read_indexed(from_index)
        rows = [
            old[d] if d in from_index else self._read_staged(d, sha) for d, sha in documents.items()
        ]
        index = assemble_index(rows, self.folder, self.meta, embedded, started)
        self._index = False  # the folder now holds another index
        shutil.rmtree(self.staging, ignore_errors=True)
        logger.info("wrote %s from %d documents", self.folder / MANIFEST, len(rows))
        return index


def _npz_bytes(chunks: np.ndarray, sentences: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(
        buf,
        chunks=np.ascontiguousarray(chunks, np.float32),
        sentences=np.ascontiguousarray(sentences, np.float32),
    )
    return buf.getvalue()
