"""The offline evidence-first generator: an answer made of cited source sentences.

The scoring, selection and composition are in :mod:`rag.generation`; this file joins them into
the :class:`~rag.generators.base.AnswerGenerator` seam.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

from rag.embedding import Embedder
from rag.generation import (
    GeneratorConfig,
    abstain_text,
    compose,
    cover_counts,
    cover_subjects,
    dated_documents,
    detail_gain,
    follow,
    score_sentences,
    select,
    spread,
    support,
    with_datelines,
)
from rag.generators.base import Generated, GenerationRequest
from rag.retriever import multi_subject, subject_split

if TYPE_CHECKING:
    from rag.conversation import Turn


class ExtractiveGenerator:
    """Composes the answer from the retrieved chunks' own sentences, or abstains."""

    def __init__(self, embedder: Embedder, config: GeneratorConfig) -> None:
        self.embedder = embedder
        self.config = config

    def standalone_question(self, question: str, history: Sequence[Turn], fallback: str) -> str:
        """No model to rewrite with: the offline resolution stands."""
        return fallback

    def compose(self, request: GenerationRequest) -> Generated:
        """The evidence-first answer, or an abstention when the support is too weak."""
        cfg, embedder, query = self.config, self.embedder, request.query
        qvec = (
            request.query_vector
            if request.query_vector is not None
            else embedder.embed_queries([query])[0]
        )
        scored = score_sentences(
            qvec, query, request.hits, request.index, cfg, embedder.embed_passages
        )
        strength = support(scored, query, cfg)
        # «… мәлімдемесі қай күні жарияланған?»: the documents whose datelines answer it.
        dated = (
            dated_documents(query, request.hits, request.index, multi_subject(query))
            if cfg.datelines
            else []
        )
        if dated:
            # The date comes from the dateline, which names nothing the question does
            # («23.10.20»): the document's best sentence is the support.
            doc_scores = [c.score for c in scored if c.hit.chunk.doc_id == dated[0]]
            strength = max([strength, *doc_scores])
        language = request.language
        if strength < cfg.threshold(language):
            return Generated(abstain_text(language), True, (), support=strength)
        gain_limit = cfg.detail_threshold(language)
        if gain_limit is not None and scored:
            # Measured and calibrated on the question as asked, not on a resolved follow-up.
            question = request.question
            own = qvec if query == question else embedder.embed_queries([question])[0]
            gain = detail_gain(question, own, scored[0].vector, embedder.embed_queries)
            if gain > gain_limit:
                return Generated(abstain_text(language), True, (), support=strength)
        subjects = subject_split(query)
        by_subject = [[h for h in request.hits if h.subject == n] for n in (0, 1)]
        if cfg.cover_subjects and subjects is not None and all(by_subject):
            # «A мен B»: each subject's document is quoted, its best sentence for what the
            # question asks about it (the subjects' own words left out of the scoring: with
            # them, sentences that name a subject without answering scored best).
            cvec = embedder.embed_queries([subjects.content])[0]
            best = [
                score_sentences(
                    cvec, subjects.content, hits, request.index, cfg, embedder.embed_passages
                )
                for hits in by_subject
            ]
            chosen = cover_subjects(best)
        else:
            chosen = select(scored, cfg)
            if cfg.cover_counts:  # «қанша … және қанша …»: a sentence for each count
                chosen = cover_counts(chosen, scored, query)
            if multi_subject(query):  # a second subject's best sentence, when it scores close
                chosen = spread(chosen, scored, cfg)
        if dated and chosen:
            chosen = with_datelines(chosen, request.index, dated)
        # A chosen sentence that announces a list or a reason brings the sentences carrying it.
        chosen = follow(chosen, query, request.index, cfg, scored)
        text, citations = compose(chosen, language)
        return Generated(text, False, citations, support=strength)

    def generate(self, request: GenerationRequest) -> Generator[str, None, Generated]:
        """The composed answer in one piece (it is ready all at once)."""
        result = self.compose(request)
        yield result.text
        return result
