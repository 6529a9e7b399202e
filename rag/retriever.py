"""Hybrid retrieval (dense + Kazakh-aware BM25, fused), also exposed as a LangChain retriever.

The LangChain adapter (:class:`KazakhRetriever`) lives in rag/langchain_retriever.py and is
imported only when asked for: importing LangChain costs ~1 s, a third of a CLI cold start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
_SOURCE_NOUN = (
    r"(мәлімдеме|сұхбат|мақала|хат|баяндама|интервью|стать|заявлени|письм|"
    r"statement|interview|paper|article|letter)\w*"
)
# Two sources counted («екі мәлімдеме», "the two HAQ statements", «два заявления»).
_COMPARE = re.compile(
    r"әртүрлі|айырмашылы|ұқсастығ|салыстыр|екеуі|екі құжат|қай құжат|"
    r"сравн|различ|оба\b|обе\b|в каких документах|в обоих|"
    r"\bboth\b|compar|differ|similar|\bwhich documents\b|"
    rf"\b(?:two|екі|два|две)\s+(?:[^\W\d_]+\s+)?{_SOURCE_NOUN}",
    re.I,
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


@dataclass(frozen=True)
class Subjects:
    """The two subjects a question joins («A мен B», "A and B"), and what it asks about them.

    ``sides`` are the words naming each subject («HAQ мәлімдемесі», «Түймебаев сұхбатында»);
    ``queries`` the question once per subject, the other one left out; ``content`` the question
    with both left out («… Қордай оқиғасына құқық қорғау органдарының қандай кінәсі болғаны
    айтылады?»): what each subject's document is searched for.
    """

    sides: tuple[str, str]
    queries: tuple[str, str]
    content: str
    names: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def subject_split(question: str) -> Subjects | None:
    """The subjects of «A мен B» in a multi-subject question (``None``: nothing to split).

    A side is the two words next to the conjunction (three when the third is a source noun:
    "the student paper"), and must name a source or a name.
    """
    if not multi_subject(question):
        return None
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
        sides = (question[a : before[-1].end()], question[after[0].start() : b])
        return Subjects(
            sides=sides,
            queries=(f"{head}{sides[0]}{tail}", f"{head}{sides[1]}{tail}"),
            content=re.sub(r"\s+", " ", f"{head}{tail}").strip(),
            names=(
                tuple(subject_names(sides[0], question)),
                tuple(subject_names(sides[1], question)),
            ),
        )
    return None


def subject_queries(question: str) -> list[str]:
    """One query per subject of «A мен B» in a multi-subject question, the other one left out.

    «… HAQ мәлімдемесі мен Түймебаев сұхбатында … айтылады?» gives «… HAQ мәлімдемесі …
    айтылады?» and «… Түймебаев сұхбатында … айтылады?» (:func:`subject_split`); ``[]`` when
    there is nothing to split.
    """
    split = subject_split(question)
    return [] if split is None else list(split.queries)


def subject_names(side: str, question: str) -> list[str]:
    """The names in a subject's words: capitalised or upper-case words («HAQ», «Түймебаев»).

    A capital that only opens the question is not a name; source nouns («сұхбат», "paper")
    name a kind of document, not which one.
    """
    out = []
    for w in _WORD.findall(side):
        if _SOURCE_WORD.fullmatch(w):
            continue
        opens = question.lstrip().startswith(w)
        if (w.isupper() and len(w) > 1) or (w[:1].isupper() and not opens):
            out.append(w)
    return out


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
        subjects: Subjects | None = None,
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``: ``mode`` is ``hybrid``, ``dense`` or ``lexical``.

        ``query_vector`` saves a second encoding when the caller already embedded the query;
        ``lexical_query`` (default ``query``) is what BM25 reads, e.g. with the respellings
        of a Latin-typed question that the corpus could not rule out.
        ``spread`` > 1 makes the top ``k`` hold that many documents when the candidates do
        (:func:`spread_documents`, for questions about several subjects). ``subqueries`` (one
        per subject, :func:`subject_queries`) are searched too, and their rankings and the whole
        question's are merged rank by rank (:func:`interleave`).
        ``subjects`` (:func:`subject_split`) puts each subject's document first: the document
        a subject names (:meth:`subject_documents`), searched for what the question asks
        about it (``subjects.content``), its best chunks ahead of the whole question's
        ranking; those hits carry the subject's number (``Hit.subject``).
        """
        lex_q = lexical_query or query
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        if not query.strip() or k <= 0:
            return []
        n = max(k, self.candidates)
        fused, dense, lexical = self._rank(query, n, mode, query_vector, lex_q)
        owner: dict[int, int] = {}
        if subjects is not None and mode == "hybrid":
            per_doc = self.subject_rankings(subjects)
            for number, ranked in enumerate(per_doc):
                for row, _ in ranked:
                    owner.setdefault(row, number)
            if per_doc:
                # Each subject's document first, rank by rank, then the whole question's.
                fused = interleave([*per_doc, fused])
        elif subqueries and mode == "hybrid":
            # Each subject's own ranking first, rank by rank, then the whole question's.
            subs = [self._rank(q, n, mode, None, q)[0] for q in subqueries]
            fused = interleave([*subs, fused])
        return self._hits(fused, k, spread, dict(dense), dict(lexical), owner)

    # A subject's document gives this many chunks to the top of the ranking.
    SUBJECT_CHUNKS = 2

    def subject_documents(self, subjects: Subjects, content_vec: np.ndarray) -> list[str]:
        """The document each subject names, one per subject, distinct (maybe fewer).

        A subject with a name («HAQ», «Түймебаев», "Tuimebayev's") is one of the documents
        whose words hold the name (BM25, with the bridged spellings); of several («HAQ»
        signs two statements), the one that best matches what the question asks
        (``subjects.content``). A subject without a name («студенттік мақала», "the student
        paper") is the first document of its own words' ranking.
        """
        content = self._doc_best(subjects.content, content_vec)
        docs: list[str] = []
        for side, names in zip(subjects.sides, subjects.names, strict=True):
            cands: list[str] = []
            if names:
                for row, _ in self.index.lexical.search(" ".join(names), 1000):
                    d = self.index.chunks[row].doc_id
                    if d not in cands and d not in docs:
                        cands.append(d)
                cands.sort(key=lambda d: content.get(d, len(self.index.chunks)))
            if not cands:
                for row, _ in self._rank(side, max(20, self.candidates), "hybrid", None, side)[0]:
                    d = self.index.chunks[row].doc_id
                    if d not in cands and d not in docs:
                        cands.append(d)
            if cands:
                docs.append(cands[0])
        return docs

    def _doc_best(self, query: str, qvec: np.ndarray) -> dict[str, int]:
        """Each document's best rank in the hybrid ranking of ``query`` (its top chunks)."""
        fused = self._rank(query, max(50, self.candidates), "hybrid", qvec, query)[0]
        out: dict[str, int] = {}
        for rank, (row, _) in enumerate(fused):
            out.setdefault(self.index.chunks[row].doc_id, rank)
        return out

    def subject_rankings(self, subjects: Subjects) -> list[list[tuple[int, float]]]:
        """Per subject, the best chunks of its document for ``subjects.content``.

        The subject's words stay out of this search: they are in its document's title, so
        with them the title chunk outranks the passage that answers.
        """
        qvec = self.embedder.embed_queries([subjects.content])[0]
        docs = self.subject_documents(subjects, qvec)
        if len(docs) < 2:
            return []
        lex_all = self.index.lexical.scores(subjects.content)
        weight = self.lexical_weight_for(subjects.content)
        out = []
        for doc in docs:
            rows = [i for i, c in enumerate(self.index.chunks) if c.doc_id == doc]
            if len(self.index.vectors) == len(self.index.chunks):
                dense_s = self.index.vectors[rows] @ qvec
            else:  # a shared store keeps no vectors here: the store scores the chunks
                found = dict(self.index.dense.search(qvec[None, :], len(self.index.chunks))[0])
                dense_s = np.array([found.get(r, -1.0) for r in rows])
            dense = sorted(zip(rows, map(float, dense_s), strict=True), key=lambda x: -x[1])
            lexical = sorted(
                ((r, float(lex_all[r])) for r in rows if lex_all[r] > 0), key=lambda x: -x[1]
            )
            fused = fuse([dense, lexical], [1.0, weight], method=self.method, k=self.rrf_k)
            out.append(fused[: self.SUBJECT_CHUNKS])
        return out

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
        owner: dict[int, int] | None = None,
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
                subject=(owner or {}).get(row),
            )
            for rank, (row, score) in enumerate(fused[:k], start=1)
        ]


def __getattr__(name: str) -> Any:
    """``from rag.retriever import KazakhRetriever`` still works, importing LangChain then."""
    if name in ("KazakhRetriever", "to_langchain"):
        from rag import langchain_retriever

        return getattr(langchain_retriever, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
