"""Hybrid retrieval (dense + Kazakh-aware BM25, fused), also exposed as a LangChain retriever.

The LangChain adapter (:class:`KazakhRetriever`) lives in rag/langchain_retriever.py and is
imported only when asked for: importing LangChain costs ~1 s, a third of a CLI cold start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag.embedding import Embedder
from rag.fusion import fuse
from rag.index import CorpusIndex
from rag.schema import Hit
from rag.settings import Settings

logger = logging.getLogger(__name__)

# A question about several subjects: a comparison or coverage word («әртүрлі», "both",
# «в каких документах»), or two sources joined by «мен/пен/бен/және», «и», "and" (the
# documents are statements, interviews, articles, letters: the subjects a multi-document
# question names).
_COMPARE = re.compile(
    r"әртүрлі|айырмашылы|ұқсастығ|салыстыр|екеуі|екі құжат|қай құжат|"
    r"сравн|различ|оба\b|обе\b|в каких документах|в обоих|"
    r"\bboth\b|compar|differ|similar|\bwhich documents\b|\btwo statements\b",
    re.I,
)
_SOURCE_NOUN = (
    r"(мәлімдеме|сұхбат|мақала|хат|баяндама|интервью|стать|заявлени|письм|"
    r"statement|interview|paper|article|letter)\w*"
)
_JOINED_SOURCES = re.compile(
    rf"{_SOURCE_NOUN}\W+(?:\w+\W+){{0,3}}?(?:мен|пен|бен|және|и|and)\W+(?:\w+\W+){{0,3}}?{_SOURCE_NOUN}",
    re.I,
)


# The ranks a multi-subject question's documents must share: the answer reads the top 5.
SPREAD_WINDOW = 5

# «A мен B», «A және B», "A and B", «A и B»: the words either side name the two subjects.
_JOIN = re.compile(r"\s+(мен|пен|бен|және|и|and)\s+", re.I)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SOURCE_WORD = re.compile(_SOURCE_NOUN, re.I)


def _is_subject(words: Sequence[str], at_start: bool) -> bool:
    """Whether a side of «A мен B» names a subject: a source noun or a name (capitalised)."""
    return any(
        _SOURCE_WORD.fullmatch(w) or (w[:1].isupper() and not (at_start and k == 0))
        for k, w in enumerate(words)
    )


def subject_queries(question: str) -> list[str]:
    """One query per subject of «A мен B» in a multi-subject question, the other one left out.

    «… HAQ мәлімдемесі мен Түймебаев сұхбатында … айтылады?» gives «… HAQ мәлімдемесі …
    айтылады?» and «… Түймебаев сұхбатында … айтылады?»: each finds its own document, where
    the whole question lets the better-matched one fill the top passages. A side is the two
    words next to the conjunction (three when the third is a source noun: "the student
    paper"), and must name a source or a name; otherwise there is nothing to split (``[]``).
    """
    if not multi_subject(question):
        return []
    for m in _JOIN.finditer(question):
        before = list(_WORD.finditer(question[: m.start()]))[-2:]
        after = list(_WORD.finditer(question, m.end()))[:3]
        if len(after) == 3 and not _SOURCE_WORD.fullmatch(after[2].group()):
            after = after[:2]
        # A side stops at punctuation: «Когда и по чьей» is not two subjects.
        if (
            not before
            or not after
            or re.search(r"[,.;:?!—–]", question[before[0].start() : after[-1].end()])
        ):
            continue
        left = [w.group() for w in before]
        right = [w.group() for w in after]
        if not (_is_subject(left, before[0].start() == 0) and _is_subject(right, False)):
            continue
        a, b = before[0].start(), after[-1].end()
        head, tail = question[:a], question[b:]
        return [
            f"{head}{question[a : before[-1].end()]}{tail}",
            f"{head}{question[after[0].start() : b]}{tail}",
        ]
    return []


def interleave(lists: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Ranked lists merged rank by rank (first of each, then second of each, …), once each."""
    out: list[tuple[int, float]] = []
    seen: set[int] = set()
    for rank in range(max((len(x) for x in lists), default=0)):
        for ranked in lists:
            if rank < len(ranked) and ranked[rank][0] not in seen:
                seen.add(ranked[rank][0])
                out.append(ranked[rank])
    return out


def multi_subject(question: str) -> bool:
    """Whether the question asks about several sources or subjects at once (compare, both)."""
    return bool(_COMPARE.search(question) or _JOINED_SOURCES.search(question))


def spread_documents(
    ranked: Sequence[tuple[int, float]], k: int, n_docs: int, doc_of: Callable[[int], str]
) -> list[tuple[int, float]]:
    """``ranked`` reordered as little as possible so that its first ``k`` hold ``n_docs`` documents.

    A question comparing two sources needs a passage of each, but the best-matching source
    often fills the whole top ``k``. The best chunk of each missing document (next in rank
    order) takes the place of the lowest-ranked chunk of a document that has more than one,
    which moves down to just after the first ``k``; the leading ranks are kept, so
    single-subject figures such as MRR barely move.
    """
    top, rest = list(ranked[:k]), list(ranked[k:])
    moved: list[tuple[int, float]] = []
    for row, score in list(rest):
        docs = [doc_of(r) for r, _ in top]
        if len(set(docs)) >= n_docs:
            break
        if doc_of(row) in docs:
            continue
        drop = next((i for i in range(len(top) - 1, 0, -1) if docs.count(docs[i]) > 1), None)
        if drop is None:
            break
        moved.append(top.pop(drop))
        top.append((row, score))
        rest.remove((row, score))
    return top + moved + rest


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
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        query_vector: np.ndarray | None = None,
        lexical_query: str | None = None,
        spread: int = 1,
        subqueries: Sequence[str] = (),
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``: ``mode`` is ``hybrid``, ``dense`` or ``lexical``.

        ``query_vector`` saves a second encoding when the caller already embedded the query;
        ``lexical_query`` (default ``query``) is what BM25 reads, e.g. with the respellings
        of a Latin-typed question that the corpus could not rule out.
        ``spread`` > 1 makes the top ``k`` hold that many documents when the candidates do
        (:func:`spread_documents`, for questions about several subjects). ``subqueries`` (one
        per subject, :func:`subject_queries`) are searched too, and their rankings and the whole
        question's are merged rank by rank (:func:`interleave`).
        """
        lex_q = lexical_query or query
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        if not query.strip() or k <= 0:
            return []
        n = max(k, self.candidates)
        fused, dense, lexical = self._rank(query, n, mode, query_vector, lex_q)
        if subqueries and mode == "hybrid":
            # Each subject's own ranking first, rank by rank, then the whole question's.
            subs = [self._rank(q, n, mode, None, q)[0] for q in subqueries]
            fused = interleave([*subs, fused])
        return self._hits(fused, k, spread, dict(dense), dict(lexical))

    def _rank(
        self,
        query: str,
        n: int,
        mode: str,
        query_vector: np.ndarray | None,
        lex_q: str,
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[tuple[int, float]]]:
        """``(fused, dense, lexical)`` rankings of ``n`` chunk rows for one query."""
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
            return dense, dense, lexical
        if mode == "lexical":
            return lexical, dense, lexical
        fused = fuse(
            [dense, lexical],
            [1.0, self.lexical_weight_for(lex_q)],
            method=self.method,
            k=self.rrf_k,
        )
        return fused, dense, lexical

    def _hits(
        self,
        fused: list[tuple[int, float]],
        k: int,
        spread: int,
        dense_s: dict[int, float],
        lex_s: dict[int, float],
    ) -> list[Hit]:
        """The top ``k`` of a fused ranking as hits, spread over ``spread`` documents."""
        if spread > 1:
            window = min(k, SPREAD_WINDOW)
            fused = spread_documents(fused, window, spread, lambda r: self.index.chunks[r].doc_id)
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
