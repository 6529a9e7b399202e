"""The vector-store seam: what the index needs from a dense-vector backend.

Modelled on txtai's ``ANN`` verbs and Haystack's ``DocumentStore`` Protocol: a store holds unit
vectors under integer ids and answers top-k inner-product searches. Ids are row positions
``0 .. count() - 1``, aligned with the index's ``chunks.jsonl`` (row ``i`` is chunk ``i``), so
hits map to chunks without a lookup table; :meth:`VectorStore.delete` renumbers the rows after
the deleted ones, as deleting from the chunk list does.

Each backend is one file in this package, registered by one line in ``rag/stores/__init__.py``
and chosen by the ``store`` setting; nothing outside its file imports the backend's library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class StoreUnreachable(RuntimeError):
    """A store behind a network (a Milvus server) cannot be reached now; the API answers 503.

    Retrying later may work: the store's client connects again on the next call.
    """


class VectorStore(Protocol):
    """Dense vectors under row ids, searched by inner product (cosine on unit vectors)."""

    @property
    def kind(self) -> str:
        """The backend's index type, recorded in the manifest (``flat``, ``hnsw``, …)."""
        ...

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> VectorStore:
        """A store holding ``vectors`` (already L2-normalised) as rows ``0 .. n-1``.

        ``kind`` is a backend hint; ``auto`` lets the backend choose from the row count.
        An empty ``(0, dim)`` matrix gives an empty store to :meth:`add` to.
        """
        ...

    def add(self, vectors: np.ndarray) -> None:
        """Append rows; they take the ids after the current last one."""
        ...

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (id, score) pairs, best first; never padding entries."""
        ...

    def delete(self, ids: Sequence[int]) -> None:
        """Remove rows; the rows after them move down (ids stay ``0 .. count() - 1``)."""
        ...

    def count(self) -> int:
        """How many rows the store holds."""
        ...

    def save(self, folder: Path) -> None:
        """Write the store's files into ``folder`` (an index folder being built)."""
        ...

    @classmethod
    def load(cls, folder: Path) -> VectorStore:
        """Read (or connect to) the store saved in ``folder``.

        Raises ``OSError``, ``ValueError`` or ``RuntimeError`` when it is missing or damaged.
        """
        ...

    @classmethod
    def set_threads(cls, threads: int) -> None:
        """Cap the CPU threads the backend searches with in this process (a no-op for a
        client of a server)."""
        ...
