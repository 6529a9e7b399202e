"""The FAISS folder store: ``vectors.faiss`` inside the index folder (the first VectorStore).

Exact inner-product search (``IndexFlatIP``) below :data:`HNSW_THRESHOLD` rows, HNSW above.
The only module of the project that imports ``faiss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

FILE = "vectors.faiss"
# Below this many chunks an exact flat index is both faster to build and fast enough to search
# (measured in BENCHMARKS.md: flat search at 100k x 384 takes ~6 ms a query on one core, 3 ms at
# 50k); above it
# HNSW keeps query latency flat at a small recall cost.
HNSW_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_SEARCH = 128


class FaissStore:
    """A FAISS index over unit vectors: exact below :data:`HNSW_THRESHOLD`, HNSW above."""

    name = "faiss"

    def __init__(self, index: faiss.Index) -> None:
        self.faiss = index

    @property
    def kind(self) -> str:
        """``flat`` or ``hnsw``."""
        return "hnsw" if isinstance(self.faiss, faiss.IndexHNSWFlat) else "flat"

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> FaissStore:
        """Build from row vectors (already L2-normalised)."""
        n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
        if kind == "auto":
            kind = "hnsw" if n >= HNSW_THRESHOLD else "flat"
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = 80
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            index: faiss.Index = hnsw
        elif kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown index kind {kind!r} (auto, flat or hnsw)")
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (FAISS numbers them after the existing ones)."""
        self.faiss.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (row, cosine) per query; FAISS pads short lists with -1, which are dropped."""
        if self.faiss.ntotal == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        scores, rows = self.faiss.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [(int(r), float(s)) for r, s in zip(rr, ss, strict=True) if r >= 0]
            for rr, ss in zip(rows, scores, strict=True)
        ]

    def delete(self, ids: Sequence[int]) -> None:
        """Remove rows by rebuilding from the kept ones.

        HNSW cannot remove vectors in place and a flat index's ``remove_ids`` would renumber in
        the same way, so one path serves both: the kept rows are read back and re-added.
        """
        gone = {int(i) for i in ids}
        n = self.faiss.ntotal
        keep = [i for i in range(n) if i not in gone]
        if len(keep) == n:
            return
        vectors = self.faiss.reconstruct_n(0, n)[keep] if n else np.zeros((0, self.faiss.d))
        rebuilt = FaissStore.build(
            np.asarray(vectors, dtype=np.float32).reshape(-1, self.faiss.d), self.kind
        )
        self.faiss = rebuilt.faiss

    def count(self) -> int:
        """How many rows the index holds."""
        return int(self.faiss.ntotal)

    def nbytes(self) -> int:
        """Size of the serialised index (what ``vectors.faiss`` takes on disk)."""
        return int(faiss.serialize_index(self.faiss).nbytes)

    def save(self, folder: Path) -> None:
        """Write ``vectors.faiss`` into ``folder``."""
        faiss.write_index(self.faiss, str(folder / FILE))

    @classmethod
    def load(cls, folder: Path) -> FaissStore:
        """Read ``vectors.faiss`` from ``folder`` (FAISS raises RuntimeError on a bad file)."""
        index = faiss.read_index(str(folder / FILE))
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index)

    @classmethod
    def set_threads(cls, threads: int) -> None:
        """Cap FAISS's OpenMP pool for this process."""
        faiss.omp_set_num_threads(threads)


def omp_threads() -> int:
    """FAISS's current OpenMP thread count (the benchmark reports and restores it)."""
    return int(faiss.omp_get_max_threads())
