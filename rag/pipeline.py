"""The one way to answer a question: ``answer(question, history, settings) -> Answer``.

The CLI, the HTTP API, the Gradio chat and the evaluation all call :func:`answer` (or
:func:`stream_answer`, which yields text as it is produced and the same final ``Answer``). The
heavy objects (embedding model, index) live in an :class:`Engine` that is built once per process
and settings, and shared by every caller.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.conversation import Turn, is_followup, resolve
from rag.embedding import Embedder, SentenceTransformerEmbedder
from rag.generation import GeneratorConfig
from rag.generators import AnswerGenerator, GenerationRequest, make_generator
from rag.index import CorpusIndex, open_index
from rag.language import detect_language
from rag.retriever import Retriever
from rag.schema import Answer, Hit
from rag.settings import Settings
from rag.stores import store_class

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

    def reload(self, index: CorpusIndex) -> None:
        """Swap in a rebuilt index (after an upload) without reloading the model."""
        with self.lock:
            self.index = index
            self.retriever = _retriever(index, self.embedder, self.settings)


def _retriever(index: CorpusIndex, embedder: Embedder, settings: Settings) -> Retriever:
    return Retriever(index, embedder, settings)


def make_engine(settings: Settings, embedder: Embedder | None = None) -> Engine:
    """Build an engine (tests pass a fake embedder here)."""
    emb = embedder or SentenceTransformerEmbedder(settings.model)
    # FAISS and torch each keep an OpenMP pool; on two cores their spinning threads stall each
    # other (retrieval p95 swung to ~1 s in BENCHMARKS.md). A flat scan of a few thousand
    # vectors is faster on one thread anyway.
    store_class(settings.store).set_threads(1)
    index = open_index(settings.index_spec, emb)
    retriever = _retriever(index, emb, settings)
    return Engine(settings, emb, index, retriever, settings.composer, threading.RLock())


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
    engine: Engine, query: str, k: int, query_vector: np.ndarray | None = None
) -> list[Hit]:
    """Hybrid retrieval through the engine's current index."""
    with engine.lock:
        retriever = engine.retriever
    return retriever.search(query, k, query_vector=query_vector)


def answer(
    question: str,
    history: Sequence[Turn] = (),
    settings: Settings | None = None,
    *,
    top_k: int | None = None,
    engine: Engine | None = None,
    qid: str | None = None,
) -> Answer:
    """Answer ``question`` from the documents, in the asker's language, with citations."""
    final: Answer | None = None
    for item in stream_answer(question, history, settings, top_k=top_k, engine=engine, qid=qid):
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
) -> Iterator[str | Answer]:
    """Yield pieces of the answer text as they are ready, then the final :class:`Answer`."""
    from rag.settings import from_env

    t0 = time.perf_counter()
    cfg = engine.settings if engine is not None else (settings or from_env())
    # Validate before loading anything: a bad question fails fast and clearly.
    text_q = clean_question(question, cfg.max_question_chars)
    eng = engine or get_engine(cfg)
    k = top_k if top_k is not None else cfg.top_k
    if not 1 <= k <= 100:
        raise QuestionError(
            f"top_k must be between 1 and 100, got {k}", code="bad_top_k", limit=100
        )
    language = detect_language(text_q)
    query = resolve(text_q, history)
    if history and is_followup(text_q):
        # A language model rewrites a follow-up to stand alone; the composer keeps ``query``.
        query = eng.answerer.standalone_question(text_q, history, fallback=query)
    qvec = eng.embedder.embed_queries([query])[0]
    hits = retrieve(eng, query, k, qvec)
    t_ret = _ms(t0)
    t1 = time.perf_counter()
    request = GenerationRequest(
        text_q, query, language, tuple(hits), eng.index, tuple(history), qvec
    )
    result = yield from eng.answerer.generate(request)
    final = Answer(
        id=qid,
        question=text_q,
        answer=result.text,
        language=language,
        abstained=result.abstained,
        citations=result.citations,
        retrieved=tuple(hits),
        timings_ms={"retrieve": t_ret, "generate": _ms(t1), "total": _ms(t0)},
        note=result.note,
    )
    yield final
