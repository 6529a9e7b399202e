"""The query micro-batcher (rag/batching.py): concurrent callers, their own rows, their own errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.batching import BatchingEmbedder
from rag.settings import from_env
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


class GatedEmbedder(HashEmbedder):
    """A hash embedder whose first query call blocks until released, recording every call."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait()
        if any("boom" in t for t in texts):
            raise ValueError("cannot encode boom")
        return super().embed_queries(texts)


def _queue_behind_first(batcher: BatchingEmbedder, inner: GatedEmbedder, groups: list[list[str]]):
    """Start one caller that holds the encoder, then ``groups`` callers that queue behind it;
    release the encoder once all of them are queued. Returns the futures of the groups."""
    pool = ThreadPoolExecutor(max_workers=len(groups) + 1)
    first = pool.submit(batcher.embed_queries, ["the first question"])
    assert inner.entered.wait(30)
    futures = [pool.submit(batcher.embed_queries, g) for g in groups]
    # Wait until every group sits in the queue (no sleeps: the queue is the witness).
    while True:
        with batcher._cond:
            if len(batcher._queue) == len(groups):
                break
        threading.Event().wait(0.005)
    inner.release.set()
    return pool, first, futures


def test_concurrent_queries_are_encoded_in_one_call_each_caller_gets_its_rows():
    inner = GatedEmbedder()
    batcher = BatchingEmbedder(inner)
    groups = [[f"question number {i}"] for i in range(6)] + [["two texts", "in one call"]]
    pool, first, futures = _queue_behind_first(batcher, inner, groups)
    ref = HashEmbedder()
    assert np.allclose(first.result(30), ref.embed_queries(["the first question"]))
    for g, f in zip(groups, futures, strict=True):
        got = f.result(30)
        assert got.shape == (len(g), inner.dim)
        assert np.allclose(got, ref.embed_queries(g))  # its own rows, in its own order
    # The 7 queued callers (8 texts) were served by one call, in arrival order.
    assert len(inner.batches) == 2
    assert inner.batches[1] == [t for g in groups for t in g]
    assert batcher.calls == 2 and batcher.batched == 8
    pool.shutdown()
    batcher.close()


def test_an_error_reaches_only_the_caller_whose_texts_caused_it():
    inner = GatedEmbedder()
    batcher = BatchingEmbedder(inner)
    groups = [["a good question"], ["boom goes this one"], ["another good one"]]
    pool, first, futures = _queue_behind_first(batcher, inner, groups)
    first.result(30)
    assert np.allclose(futures[0].result(30), HashEmbedder().embed_queries(groups[0]))
    with pytest.raises(ValueError, match="cannot encode boom"):
        futures[1].result(30)
    assert np.allclose(futures[2].result(30), HashEmbedder().embed_queries(groups[2]))
    # The failed batch was retried one caller at a time.
    assert inner.batches[2:] == groups
    pool.shutdown()
    batcher.close()


def test_a_batch_never_exceeds_max_texts_and_nobody_is_dropped():
    inner = GatedEmbedder()
    batcher = BatchingEmbedder(inner, max_texts=3)
    groups = [[f"q{i} a", f"q{i} b"] for i in range(5)]  # 10 texts, at most 3 per call
    pool, first, futures = _queue_behind_first(batcher, inner, groups)
    first.result(30)
    for g, f in zip(groups, futures, strict=True):
        assert np.allclose(f.result(30), HashEmbedder().embed_queries(g))
    assert all(len(b) <= 3 for b in inner.batches)
    assert sorted(t for b in inner.batches[1:] for t in b) == sorted(t for g in groups for t in g)
    pool.shutdown()
    batcher.close()


def test_the_wait_for_company_ends_when_the_batch_is_full():
    """With a wait far longer than the test may take, two callers still get their vectors: a
    full batch (max_texts) does not wait out ``max_wait``."""
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner, max_texts=2, max_wait=3600.0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(batcher.embed_queries, ["first"])
        b = pool.submit(batcher.embed_queries, ["second"])
        assert np.allclose(a.result(120), inner.embed_queries(["first"]))
        assert np.allclose(b.result(120), inner.embed_queries(["second"]))


def test_a_lone_query_does_not_wait_and_passages_and_attributes_pass_through():
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner)
    assert np.allclose(batcher.embed_queries(["alone"]), inner.embed_queries(["alone"]))
    assert batcher.embed_queries([]).shape == (0, inner.dim)
    assert np.allclose(
        batcher.embed_passages(["p one", "p two"]), inner.embed_passages(["p one", "p two"])
    )
    assert batcher.dim == inner.dim and batcher.name == inner.name
    assert batcher.embedded == inner.embedded  # anything else is the wrapped embedder's
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.embed_queries(["too late"])


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_texts"):
        BatchingEmbedder(HashEmbedder(), max_texts=0)
    with pytest.raises(ValueError, match="max_wait"):
        BatchingEmbedder(HashEmbedder(), max_wait=-1)


def test_settings_switch_it_on_for_the_engine_only_when_asked(tmp_path, monkeypatch):
    from rag.pipeline import make_engine

    base = from_env(corpus=SEEDS, index=tmp_path / "idx").replace(uploads=None)
    assert base.batch_queries is None  # the entry point decides
    plain = make_engine(base, embedder=HashEmbedder())
    assert not isinstance(plain.embedder, BatchingEmbedder)
    on = make_engine(base.replace(batch_queries=True), embedder=HashEmbedder())
    assert isinstance(on.embedder, BatchingEmbedder)
    monkeypatch.setenv("KAZRAG_BATCH_QUERIES", "off")
    assert from_env().batch_queries is False
    monkeypatch.setenv("KAZRAG_BATCH_QUERIES", "maybe")
    with pytest.raises(ValueError, match="KAZRAG_BATCH_QUERIES"):
        from_env()


# ---------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.pipeline import make_engine

    folder = tmp_path_factory.mktemp("batching") / "seeds"
    make_engine(from_env(corpus=SEEDS, index=folder).replace(uploads=None, batch_queries=False))
    return folder


def _questions() -> list[str]:
    rows = [json.loads(x) for x in (SEEDS / "questions.jsonl").read_text("utf-8").splitlines() if x]
    return [r["question"] for r in rows if not r.get("follows")]


@pytest.mark.model
def test_batched_query_vectors_equal_single_query_vectors():
    from rag.embedding import make_embedder

    inner = make_embedder()
    batcher = BatchingEmbedder(inner)
    qs = _questions()[:48]
    single = np.stack([inner.embed_queries([q])[0] for q in qs])
    with ThreadPoolExecutor(max_workers=16) as pool:
        batched = np.stack([v[0] for v in pool.map(lambda q: batcher.embed_queries([q]), qs)])
    assert batcher.calls < len(qs)  # some of them did share a call
    np.testing.assert_allclose(batched, single, atol=1e-5)
    batcher.close()


@pytest.mark.model
def test_answers_are_the_same_with_and_without_batching(seed_index: Path):
    from rag.pipeline import answer, make_engine

    settings = from_env(corpus=SEEDS, index=seed_index).replace(uploads=None)
    plain = make_engine(settings.replace(batch_queries=False))
    batched = make_engine(settings.replace(batch_queries=True))
    qs = _questions()
    want = [answer(q, engine=plain) for q in qs]
    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(lambda q: answer(q, engine=batched), qs))
    assert isinstance(batched.embedder, BatchingEmbedder) and batched.embedder.calls < len(qs)
    for w, g in zip(want, got, strict=True):
        assert (g.answer, g.abstained, g.citations) == (w.answer, w.abstained, w.citations), (
            w.question
        )
        assert [h.chunk.chunk_id for h in g.retrieved] == [h.chunk.chunk_id for h in w.retrieved]
