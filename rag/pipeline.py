"""The one way to answer a question: ``answer(question, history, settings) -> Answer``.

The CLI, the HTTP API, the Gradio chat and the evaluation all call :func:`answer` (or
:func:`stream_answer`, which yields text as it is produced and the same final ``Answer``). The
heavy objects (embedding model, index) live in an :class:`Engine` that is built once per process
and settings, and shared by every caller.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.conversation import Turn, is_followup, resolve
from rag.embedding import Embedder, make_embedder
from rag.generation import GeneratorConfig
from rag.generators import AnswerGenerator, GenerationRequest, make_generator
from rag.index import CorpusIndex
from rag.language import LANGUAGE_NAMES, LanguageGuess, identify
from rag.retriever import Retriever, multi_subject, subject_split
from rag.schema import MARKER_RE, Answer, Citation, Hit
from rag.settings import Settings
from rag.store_index import open_any
from rag.stores import store_class
from rag.typing_forms import normalize_query, to_latin_2021, typing_form, vocabulary_for

logger = logging.getLogger(__name__)


class QuestionError(ValueError):
    """A question that cannot be answered as given; the message says why.

    ``code`` names the reason for front ends that translate it (the chat), one of ``not_text``,
    ``empty``, ``no_words``, ``too_long``, ``bad_top_k``; ``limit`` is the bound that was crossed.
    """

    def __init__(self, message: str, code: str = "invalid", limit: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.limit = limit


def clean_question(question: object, max_chars: int) -> str:
    """Validate a question: a non-empty string of words within the length limit.

    Control characters are removed and white space folded. A question with no letter or digit
    («😀😀 ???») is refused: retrieval would return unrelated passages for it.
    """
    if not isinstance(question, str):
        raise QuestionError("the question must be a string", code="not_text")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question)
    text = " ".join(text.split())
    if not text:
        raise QuestionError("the question is empty", code="empty")
    if len(text) > max_chars:
        raise QuestionError(
            f"the question is too long ({len(text)} characters; the limit is {max_chars})",
            code="too_long",
            limit=max_chars,
        )
    if not any(ch.isalnum() for ch in text):
        raise QuestionError(
            "the question has no words: please ask a question in words", code="no_words"
        )
    return text


def with_pages(index: CorpusIndex, citations: Sequence[Citation]) -> tuple[Citation, ...]:
    """Citations into paged documents (PDFs) with the page they quote, as every door shows it."""
    out = []
    for c in citations:
        page, page_end = index.page_span(c.doc_id, c.start, c.end)
        out.append(dataclasses.replace(c, page=page, page_end=page_end) if page else c)
    return tuple(out)


@dataclass
class Engine:
    """The loaded model, index, retriever and answer generator for one set of settings.

    ``generator`` is the composer's configuration (``settings.composer``); ``answerer`` is the
    generator ``settings.generator`` names, made with the engine (and made again by
    ``dataclasses.replace(engine, settings=...)``, so a copy with other language-model settings
    answers with them while sharing the model and the index).
    """

    settings: Settings
    embedder: Embedder
    index: CorpusIndex
    retriever: Retriever
    generator: GeneratorConfig
    lock: threading.RLock
    answerer: AnswerGenerator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.answerer = make_generator(self.settings, self.embedder, self.generator)

    def refresh(self) -> None:
        """Swap in the store's current state if another replica changed it (a store-backed
        index only: ``rag.store_index.StoreIndex.current``; a folder index has no such check)."""
        current = getattr(self.index, "current", None)
        if current is not None:
            fresh = current()
            if fresh is not self.index:
                self.reload(fresh)

    def reload(self, index: CorpusIndex) -> None:
        """Swap in a rebuilt index (after an upload) without reloading the model."""
        with self.lock:
            self.index = index
            self.retriever = _retriever(index, self.embedder, self.settings)


def _retriever(index: CorpusIndex, embedder: Embedder, settings: Settings) -> Retriever:
    return Retriever(index, embedder, settings)


def make_engine(settings: Settings, embedder: Embedder | None = None) -> Engine:
    """Build an engine (tests pass a fake embedder here)."""
    emb = embedder or make_embedder(settings.model, settings.backend)
    if settings.batch_queries:
        from rag.batching import BatchingEmbedder

        emb = BatchingEmbedder(emb)
    # FAISS and torch each keep an OpenMP pool; on two cores their spinning threads stall each
    # other (retrieval p95 swung to ~1 s in BENCHMARKS.md). A flat scan of a few thousand
    # vectors is faster on one thread anyway.
    store_class(settings.store).set_threads(1)
    index = open_any(settings.index_spec, emb)  # a folder, or a shared store (Milvus)
    # The model loads here, once, not on the first question: a server is ready when it starts
    # (the first chat question used to wait for it). Fakes have nothing to load.
    load = getattr(emb, "load", None)
    if callable(load):
        load()
    retriever = _retriever(index, emb, settings)
    return Engine(settings, emb, index, retriever, settings.composer, threading.RLock())


def with_abstain_threshold(engine: Engine, threshold: float) -> Engine:
    """A per-call view of ``engine`` whose abstention threshold is ``threshold`` in every
    language (same model, index and lock; the shared engine is not changed)."""
    if not math.isfinite(threshold):
        raise ValueError(f"the abstention threshold must be a finite number, got {threshold}")
    gen = dataclasses.replace(engine.generator, abstain_kk=threshold, abstain_other=threshold)
    with engine.lock:
        return dataclasses.replace(engine, generator=gen)


@functools.lru_cache(maxsize=4)
def _cached_engine(settings: Settings) -> Engine:
    return make_engine(settings)


# lru_cache does not stop two threads that miss together from both building an engine (and
# loading the model twice): the first requests to a fresh server arrive together.
_ENGINE_LOCK = threading.Lock()


def get_engine(settings: Settings) -> Engine:
    """The process-wide engine for these settings (UI, API and CLI share one loaded model)."""
    with _ENGINE_LOCK:
        return _cached_engine(settings)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def retrieve(
    engine: Engine,
    query: str,
    k: int,
    query_vector: np.ndarray | None = None,
    lexical_query: str | None = None,
) -> list[Hit]:
    """Hybrid retrieval through the engine's current index (BM25 reads ``lexical_query``).

    A question about several subjects («HAQ мәлімдемесі мен Түймебаев сұхбатында …») gets
    passages of at least two documents in its top 5 (:func:`rag.retriever.multi_subject`),
    and the document of each subject it joins with «мен/және/and» is searched for what the
    question asks about it (:func:`rag.retriever.subject_split`).
    """
    with engine.lock:
        retriever = engine.retriever
    n_docs = 2 if multi_subject(query) else 1
    return retriever.search(
        query,
        k,
        query_vector=query_vector,
        lexical_query=lexical_query,
        spread=n_docs,
        subjects=subject_split(query),
    )


@dataclass(frozen=True)
class PreparedQuestion:
    """A question made ready for retrieval.

    question: the question in the index's spelling (as asked when it needed no respelling).
    query: what the dense retriever and the composer read (a follow-up resolved, respelled).
    lexical: what BM25 reads: ``query`` plus respellings the corpus could not rule out.
    guess: its language (answer and asked) and typing form.
    """

    question: str
    query: str
    lexical: str
    guess: LanguageGuess


def prepare_question(
    engine: Engine, question: str, history: Sequence[Turn] = ()
) -> PreparedQuestion:
    """Language, typing form and the respelled query of a cleaned question.

    Kazakh typed in Latin or on a Russian keyboard is respelled against the index's own
    vocabulary (:mod:`rag.typing_forms`) before both retrievers; a standard Cyrillic question,
    and any Russian or English one, is searched as asked.
    """
    with engine.lock:
        index = engine.index
    form = typing_form(question)
    vocab = None if form == "cyrillic" else vocabulary_for(index.lexical, index.lexical.texts)
    guess = identify(question, vocabulary=vocab)
    query = resolve(question, history)
    if vocab is None or guess.language != "kk":
        return PreparedQuestion(question, query, query, guess)
    typed_q = normalize_query(question, vocab, form)
    typed = normalize_query(query, vocab, form)
    return PreparedQuestion(typed_q.text, typed.text, typed.lexical, guess)


def foreign_notice(guess: LanguageGuess) -> str:
    """The English lead for a question in none of kk/ru/en (issue 10 §5)."""
    name = LANGUAGE_NAMES.get(guess.asked, LANGUAGE_NAMES["other"])
    return (
        f"Your question seems to be in {name}. I answer in Kazakh, Russian or English, "
        "so here is the answer in English.\n\n"
    )


def answer(
    question: str,
    history: Sequence[Turn] = (),
    settings: Settings | None = None,
    *,
    top_k: int | None = None,
    engine: Engine | None = None,
    qid: str | None = None,
    abstain_threshold: float | None = None,
) -> Answer:
    """Answer ``question`` from the documents, in the asker's language, with citations.

    ``abstain_threshold`` overrides the calibrated abstention threshold (every language) for
    this call only; ``None`` keeps the engine's.
    """
    final: Answer | None = None
    for item in stream_answer(
        question,
        history,
        settings,
        top_k=top_k,
        engine=engine,
        qid=qid,
        abstain_threshold=abstain_threshold,
    ):
        if isinstance(item, Answer):
            final = item
    if final is None:  # stream_answer always ends with an Answer
        raise RuntimeError("the pipeline produced no answer")
    return final


def stream_answer(
    question: str,
    history: Sequence[Turn] = (),
    settings: Settings | None = None,
    *,
    top_k: int | None = None,
    engine: Engine | None = None,
    qid: str | None = None,
    abstain_threshold: float | None = None,
) -> Iterator[str | Answer]:
    """Yield pieces of the answer text as they are ready, then the final :class:`Answer`.

    ``abstain_threshold`` overrides the calibrated abstention threshold for this call (the
    chat's setting); ``None`` keeps the engine's.
    """
    from rag.settings import from_env

    t0 = time.perf_counter()
    cfg = engine.settings if engine is not None else (settings or from_env())
    # Validate before loading anything: a bad question fails fast and clearly.
    text_q = clean_question(question, cfg.max_question_chars)
    eng = engine or get_engine(cfg)
    eng.refresh()  # a shared store may have changed through another replica
    k = top_k if top_k is not None else cfg.top_k
    if not 1 <= k <= 100:
        raise QuestionError(
            f"top_k must be between 1 and 100, got {k}", code="bad_top_k", limit=100
        )
    if abstain_threshold is not None:
        eng = with_abstain_threshold(eng, abstain_threshold)
    prep = prepare_question(eng, text_q, history)
    language = prep.guess.language
    query = prep.query
    if history and is_followup(text_q):
        # A language model rewrites a follow-up to stand alone; the composer keeps ``query``.
        query = eng.answerer.standalone_question(text_q, history, fallback=query)
    lexical = prep.lexical if query == prep.query else query
    qvec = eng.embedder.embed_queries([query])[0]
    hits = retrieve(eng, query, k, qvec, lexical_query=lexical)
    t_ret = _ms(t0)
    t1 = time.perf_counter()
    notice = foreign_notice(prep.guess) if prep.guess.foreign else ""
    if notice:
        yield notice
    # The composer reads the question in the index's spelling (a Latin-typed one respelled).
    request = GenerationRequest(
        prep.question, query, language, tuple(hits), eng.index, tuple(history), qvec
    )
    result = yield from eng.answerer.generate(request)
    text = result.text
    if (
        eng.settings.latin_answers
        and prep.guess.form == "latin"
        and language == "kk"
        and not result.abstained
    ):
        # The answer quotes its sources verbatim (Cyrillic); the Latin copy follows it,
        # without markers, so citations keep pointing at the quoted text.
        latin = "\n\n" + to_latin_2021(MARKER_RE.sub("", text)).replace("  ", " ")
        yield latin
        text += latin
    final = Answer(
        id=qid,
        question=text_q,
        answer=notice + text,
        language=language,
        abstained=result.abstained,
        citations=with_pages(eng.index, result.citations),
        retrieved=tuple(hits),
        timings_ms={"retrieve": t_ret, "generate": _ms(t1), "total": _ms(t0)},
        note=result.note,
        asked_language=prep.guess.asked if prep.guess.foreign else None,
    )
    yield final
