"""The hybrid retriever as a LangChain ``BaseRetriever`` (usable in any LangChain chain).

Kept apart from rag/retriever.py so that answering a question never imports LangChain.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.schema import Hit


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
