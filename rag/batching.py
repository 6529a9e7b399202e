"""Micro-batching of concurrent query encodes behind the :class:`~rag.embedding.Embedder` seam.

A server answering many questions at once encodes one short query per request. On ONNX Runtime
(or torch) a run has a fixed cost besides its tokens, and the encoder takes one run at a time
anyway (its lock), so 16 queries that arrive together cost far less as one batch of 16 than as
16 runs. :class:`BatchingEmbedder` wraps any embedder: callers of :meth:`embed_queries` queue
their texts; one worker thread takes everything queued (up to ``max_texts``), encodes it in one
call of the wrapped embedder and hands each caller its own rows.

No request waits for a batch to fill: the worker takes what is queued when the previous run
ends (``max_wait`` adds an optional short wait for company, 0 by default). Under load a batch
forms by itself while the previous one runs; a lone request is encoded at once.

Passages (index builds, the composer's missing sentence vectors) go straight to the wrapped
embedder. The server turns this on (``Settings.batch_queries``); the CLI, which asks one
question at a time, does not.

The worker also makes every encoder run happen on one thread: ONNX Runtime's buffers (its
arena is off, see rag/onnx_encoder.py) are then taken from and returned to one malloc arena
instead of one per request thread, which is what held the server's memory (BENCHMARKS.md, load).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.embedding import Embedder

logger = logging.getLogger(__name__)

MAX_TEXTS = 64
"""Texts per combined call at most (the wrapped embedder still splits it into its own batches:
32 rows and 2,048 padded tokens for ONNX). 16 clients' queries, or one ignored-detail check's 16
variants plus a few queries, fit in one call."""


@dataclass(eq=False)
class _Pending:
    """One caller's texts and where its vectors (or its error) go."""

    texts: list[str]
    future: Future[np.ndarray] = field(default_factory=Future)


class BatchingEmbedder:
    """An :class:`~rag.embedding.Embedder` that encodes concurrent queries in one call.

    ``max_texts`` bounds a combined call; ``max_wait`` (seconds) is how long the worker waits
    for more requests once one is queued and the batch is not full (0: not at all). If a
    combined call fails, each caller's texts are encoded again on their own, so an error
    reaches only the caller whose texts caused it.
    """

    def __init__(self, inner: Embedder, max_texts: int = MAX_TEXTS, max_wait: float = 0.0) -> None:
        if max_texts < 1:
            raise ValueError(f"max_texts must be at least 1, got {max_texts}")
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, got {max_wait}")
        self.inner = inner
        self.name = inner.name
        self.max_texts = max_texts
        self.max_wait = max_wait
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.calls = 0  # combined calls made (for tests and the load test's log)
        self.batched = 0  # requests they served

    def __getattr__(self, name: str) -> Any:
        # Everything else an embedder offers (load, token_spans, backend, model, ...) is the
        # wrapped one's; only query encoding is batched.
        if name == "inner":  # not set yet: avoid recursion during construction
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def dim(self) -> int:
        """Vector dimension of the wrapped embedder."""
        return self.inner.dim

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Passages go straight to the wrapped embedder (one large call already)."""
        return self.inner.embed_passages(texts, show_progress=show_progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised vectors of ``texts``, encoded together with other callers' queries."""
        if not texts:
            return self.inner.embed_queries([])
        pending = _Pending(list(texts))
        with self._cond:
            if self._closed:
                raise RuntimeError("the batching embedder is closed")
            self._queue.append(pending)
            self._ensure_worker()
            self._cond.notify_all()
        # The worker always settles the future (result or exception): no timeout needed here,
        # and a timeout would leave the caller's texts in a batch that still runs.
        return pending.future.result()

    def close(self) -> None:
        """Stop the worker after the queued requests are served."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join()

    # ------------------------------------------------------------------ worker

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._run, name="kazrag-query-batcher", daemon=True
            )
            self._worker.start()

    def _take(self) -> list[_Pending] | None:
        """The next batch: queued requests up to ``max_texts`` texts (at least one request)."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            if self.max_wait > 0:
                deadline = time.monotonic() + self.max_wait
                while self._size() < self.max_texts and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch = [self._queue.popleft()]
            n = len(batch[0].texts)
            while self._queue and n + len(self._queue[0].texts) <= self.max_texts:
                item = self._queue.popleft()
                batch.append(item)
                n += len(item.texts)
            return batch

    def _size(self) -> int:
        return sum(len(p.texts) for p in self._queue)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._serve(batch)

    def _serve(self, batch: list[_Pending]) -> None:
        texts = [t for p in batch for t in p.texts]
        try:
            vecs = np.asarray(self.inner.embed_queries(texts))
            if vecs.shape[0] != len(texts):
                raise RuntimeError(
                    f"the embedder returned {vecs.shape[0]} vectors for {len(texts)} texts"
                )
        except BaseException as exc:  # settle every caller, whatever went wrong
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            logger.warning(
                "a batch of %d queries failed (%s); encoding them one by one", len(texts), exc
            )
            for p in batch:
                self._serve([p])
            return
        self.calls += 1
        self.batched += len(batch)
        start = 0
        for p in batch:
            stop = start + len(p.texts)
            p.future.set_result(np.ascontiguousarray(vecs[start:stop]))
            start = stop
