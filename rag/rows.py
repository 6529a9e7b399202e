"""What one document becomes before it is stored: the typed boundary between ingestion and stores.

Ingestion (local, or on the workers of a Ray cluster) reads, cleans, chunks and embeds a document
into :class:`DocumentRows`; a :class:`RowSink` (a store that takes whole documents, such as the
Milvus store) upserts them. Ids are content hashes (``Chunk.chunk_id`` hashes the document id and
the chunk text; a document is known by its ``sha256``), so writing the same document twice gives
the same rows, and a run that is stopped and started again skips what is already stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rag.schema import Chunk, Sentence


@dataclass(frozen=True)
class DocumentRows:
    """One document, chunked and embedded, ready to be written to a store.

    ``record`` is the per-document record of an index manifest (``doc_id``, ``title``,
    ``sha256`` of the raw text, ``chars``, ``chunks``, and for PDFs / Word / HTML the source
    fields: ``format``, ``file_sha256``, ``pages``…). ``chunk_vectors[i]`` is the unit vector of
    ``rag.index.search_text(chunks[i])``; ``sentences`` are the document's chunk sentences,
    each once, in document order, and ``sentence_vectors[j]`` is the unit vector of
    ``sentences[j].text``. ``extracted`` is the text record kept for a non-text source (what
    ``rag.index`` writes to ``texts/<file_sha256>.json``), else ``None``.
    """

    doc_id: str
    record: Mapping[str, Any]
    chunks: tuple[Chunk, ...]
    chunk_vectors: np.ndarray
    sentences: tuple[Sentence, ...]
    sentence_vectors: np.ndarray
    extracted: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.chunk_vectors) != len(self.chunks):
            raise ValueError(
                f"{self.doc_id}: {len(self.chunks)} chunks but {len(self.chunk_vectors)} vectors"
            )
        if len(self.sentence_vectors) != len(self.sentences):
            raise ValueError(
                f"{self.doc_id}: {len(self.sentences)} sentences "
                f"but {len(self.sentence_vectors)} vectors"
            )

    @property
    def sha256(self) -> str:
        """The content hash of the document's raw text (from its record)."""
        return str(self.record["sha256"])


class RowSink(Protocol):
    """A store that takes whole documents: upserts keyed by content hashes."""

    def stored(self, documents: Mapping[str, str]) -> set[str]:
        """Which of ``documents`` (doc_id -> sha256) the sink already holds complete and unchanged.

        A document counts as stored only once all its rows are written (the sink writes the
        document's record last), so a document cut off mid-write is written again.
        """
        ...

    def write(self, rows: Sequence[DocumentRows]) -> None:
        """Upsert these documents, replacing every earlier row of the same ``doc_id``."""
        ...

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Delete every row of these documents (unknown ids are ignored)."""
        ...
