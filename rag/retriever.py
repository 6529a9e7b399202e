"""Hybrid retrieval (dense + Kazakh-aware BM25, fused), also exposed as a LangChain retriever.

The LangChain adapter (:class:`KazakhRetriever`) lives in rag/langchain_retriever.py and is
imported only when asked for: importing LangChain costs ~1 s, a third of a CLI cold start.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rag.embedding import Embedder
from rag.fusion import fuse
from rag.index import CorpusIndex
from rag.schema import Hit

logger = logging.getLogger(__name__)


class Retriever:
    """Dense and lexical search over one :class:`CorpusIndex`, fused into ranked hits."""

    def __init__(
        self,
        index: CorpusIndex,
        embedder: Embedder,
        candidates: int = 30,
        lexical_weight: float = 1.5,
        method: str = "minmax",
        rrf_k: int = 60,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.lexical_weight = lexical_weight
        self.method = method
        self.rrf_k = rrf_k

    def lexical_weight_for(self, query: str) -> float:
        """Scale the BM25 weight by how many query terms the corpus vocabulary knows.

        An English question over a Kazakh corpus shares almost no terms with it: its BM25 list
        is noise, so it should not pull good dense hits down. A Kazakh question keeps the full
        weight.
        """
        return self.lexical_weight * self.index.lexical.coverage(query)

    def search(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        query_vector: np.ndarray | None = None,
        lexical_query: str | None = None,
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``: ``mode`` is ``hybrid``, ``dense`` or ``lexical``.

        ``query_vector`` saves a second encoding when the caller already embedded the query;
        ``lexical_query`` (default ``query``) is what BM25 reads, e.g. with the respellings
        of a Latin-typed question that the corpus could not rule out.
        """
        lex_q = lexical_query or query
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        if not query.strip() or k <= 0:
            return []
        n = max(k, self.candidates)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if mode in ("hybrid", "dense"):
            qv = (
                query_vector[None, :]
                if query_vector is not None
                else self.embedder.embed_queries([query])
            )
            dense = self.index.dense.search(qv, n)[0]
        if mode in ("hybrid", "lexical"):
            lexical = self.index.lexical.search(lex_q, n)
        if mode == "dense":
            fused = dense
        elif mode == "lexical":
            fused = lexical
        else:
            fused = fuse(
                [dense, lexical],
                [1.0, self.lexical_weight_for(lex_q)],
                method=self.method,
                k=self.rrf_k,
            )
        dense_s, lex_s = dict(dense), dict(lexical)
        return [
            Hit(
                chunk=self.index.chunks[row],
                score=score,
                rank=rank,
                dense=dense_s.get(row),
                lexical=lex_s.get(row),
            )
            for rank, (row, score) in enumerate(fused[:k], start=1)
        ]


def __getattr__(name: str) -> Any:
    """``from rag.retriever import KazakhRetriever`` still works, importing LangChain then."""
    if name in ("KazakhRetriever", "to_langchain"):
        from rag import langchain_retriever

        return getattr(langchain_retriever, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
