"""Deterministic stand-ins for plumbing tests: a hash-seeded embedder, a scripted chat model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[^\W_]+")


class HashEmbedder:
    """Bag of hashed word prefixes: texts that share words get similar vectors. Not a model."""

    def __init__(self, dim: int = 64, name: str = "hash-embedder") -> None:
        self.name = name
        self._dim = dim
        self.calls = 0
        self.embedded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for w in _WORD.findall(text.lower()):
            h = hashlib.md5(w[:5].encode()).digest()
            v[int.from_bytes(h[:4], "little") % self._dim] += 1.0
        if not v.any():
            v[0] = 1.0
        return v / np.linalg.norm(v)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return (
            np.stack([self._vec(t) for t in texts])
            if texts
            else np.zeros((0, self._dim), np.float32)
        )

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        return self.embed_queries(texts)


class CountingEmbedder(HashEmbedder):
    """A :class:`HashEmbedder` that appends every passage it encodes to a log file.

    Ingestion runs it in other processes (Ray workers), so its counts are kept on disk: one
    line ``<pid>\\t<sha1 of the text>`` per text encoded. ``delay`` seconds per call make a
    run slow enough to be killed in the middle.
    """

    def __init__(self, log: str, delay: float = 0.0, dim: int = 64) -> None:
        super().__init__(dim=dim)
        self.log = log
        self.delay = delay

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        import os
        import time

        if self.delay:
            time.sleep(self.delay)
        vectors = super().embed_passages(texts, show_progress)
        with open(self.log, "a", encoding="utf-8") as f:
            f.writelines(f"{os.getpid()}\t{hashlib.sha1(t.encode()).hexdigest()}\n" for t in texts)
        return vectors


def counted(log: str) -> list[tuple[int, str]]:
    """The (pid, text hash) lines a :class:`CountingEmbedder` logged."""
    try:
        with open(log, encoding="utf-8") as f:
            return [(int(p), h) for p, h in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []
