"""The vector-store seam: every registered store against a numpy reference, and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from rag.stores import STORES, VectorStore, store_class


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _top(data: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(data @ q), kind="stable")[:k].tolist()


# The folder stores. Milvus's view (MilvusDense) holds no vectors of its own and refuses the
# build/add/delete/save verbs: its store is tested in test_milvus_store.py.
@pytest.fixture(params=sorted(set(STORES) - {"milvus"}))
def store_cls(request) -> type[VectorStore]:
    return store_class(request.param)


def test_add_search_count_match_brute_force(store_cls):
    rng = np.random.default_rng(3)
    data, queries = _unit(rng, 40, 16), _unit(rng, 5, 16)
    store = store_cls.build(data[:25])
    store.add(data[25:])
    assert store.count() == 40
    for q, got in zip(queries, store.search(queries, 7), strict=True):
        assert [i for i, _ in got] == _top(data, q, 7)
        assert np.allclose([s for _, s in got], np.sort(data @ q)[::-1][:7], atol=1e-5)


def test_empty_store_and_short_lists(store_cls):
    rng = np.random.default_rng(4)
    empty = store_cls.build(np.zeros((0, 8), np.float32))
    assert empty.count() == 0
    assert empty.search(_unit(rng, 2, 8), 3) == [[], []]
    small = store_cls.build(_unit(rng, 2, 8))
    assert len(small.search(_unit(rng, 1, 8), 10)[0]) == 2  # no padding entries


def test_delete_renumbers_the_rows_after(store_cls):
    rng = np.random.default_rng(5)
    data, q = _unit(rng, 30, 16), _unit(rng, 1, 16)
    store = store_cls.build(data)
    store.delete([0, 7, 29])
    kept = np.delete(data, [0, 7, 29], axis=0)
    assert store.count() == 27
    assert [i for i, _ in store.search(q, 5)[0]] == _top(kept, q[0], 5)
    store.delete([])
    assert store.count() == 27


def test_save_load_gives_identical_results(store_cls, tmp_path):
    rng = np.random.default_rng(6)
    data, queries = _unit(rng, 50, 16), _unit(rng, 4, 16)
    store = store_cls.build(data)
    store.save(tmp_path)
    loaded = store_cls.load(tmp_path)
    assert loaded.count() == 50
    assert loaded.kind == store.kind
    assert loaded.search(queries, 5) == store.search(queries, 5)


def test_load_of_a_missing_store_raises_a_load_error(store_cls, tmp_path):
    with pytest.raises((OSError, ValueError, RuntimeError)):
        store_cls.load(tmp_path / "nothing")


def test_unknown_store_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown vector store 'nope'"):
        store_class("nope")
