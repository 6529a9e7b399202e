"""Hybrid retrieval (dense + Kazakh-aware BM25, fused), also exposed as a LangChain retriever."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.embedding import Embedder
from rag.fusion import fuse
from rag.index import CorpusIndex
from rag.schema import Hit
from rag.settings import Settings

logger = logging.getLogger(__name__)


class Retriever:
    """Dense and lexical search over one :class:`CorpusIndex`, fused into ranked hits.

    Depth, fusion method and weights come from ``settings`` (its defaults when omitted): the
    defaults live in :class:`rag.settings.Settings` only.
    """

    def __init__(
        self, index: CorpusIndex, embedder: Embedder, settings: Settings | None = None
    ) -> None:
        s = settings or Settings()
        self.index = index
        self.embedder = embedder
        self.candidates = s.candidates
        self.lexical_weight = s.lexical_weight
        self.method = s.fusion
        self.rrf_k = s.rrf_k

    def lexical_weight_for(self, query: str) -> float:
        """Scale the BM25 weight by how many query terms the corpus vocabulary knows.

        An English question over a Kazakh corpus shares almost no terms with it: its BM25 list
        is noise, so it should not pull good dense hits down. A Kazakh question keeps the full
        weight.
        """
        return self.lexical_weight * self.index.lexical.coverage(query)

    def search(
        self, query: str, k: int = 5, mode: str = "hybrid", query_vector: np.ndarray | None = None
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``: ``mode`` is ``hybrid``, ``dense`` or ``lexical``.

        ``query_vector`` saves a second encoding when the caller already embedded the query.
        """
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
            lexical = self.index.lexical.search(query, n)
        if mode == "dense":
            fused = dense
        elif mode == "lexical":
            fused = lexical
        else:
            fused = fuse(
                [dense, lexical],
                [1.0, self.lexical_weight_for(query)],
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


def to_langchain(hit: Hit) -> LCDocument:
    """A LangChain ``Document`` whose metadata carry the chunk's ids, offsets and score."""
    c = hit.chunk
    return LCDocument(
        page_content=c.text,
        metadata={
            "doc_id": c.doc_id,
            "title": c.title,
            "chunk_id": c.chunk_id,
            "start": c.start,
            "end": c.end,
            "score": hit.score,
            "rank": hit.rank,
        },
    )


class KazakhRetriever(BaseRetriever):
    """LangChain ``BaseRetriever`` over the hybrid retriever (usable in any LangChain chain)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 5
    mode: str = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        return [to_langchain(h) for h in self.retriever.search(query, self.k, self.mode)]
