"""The saved index: FAISS against brute force, save-load identity, manifest checks, rebuilds."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rag.chunking import ChunkingConfig
from rag.index import (
    IndexMismatch,
    IndexMissing,
    build_index,
    load_index,
)
from rag.sources import make_document
from rag.stores.faiss import FaissStore


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("n", [1, 7, 500])
def test_flat_index_equals_numpy_brute_force(n):
    rng = np.random.default_rng(n)
    data, queries = _unit(rng, n, 32), _unit(rng, 20, 32)
    index = FaissStore.build(data, "flat")
    assert index.kind == "flat"
    k = 10
    for q, got in zip(queries, index.search(queries, k), strict=True):
        scores = data @ q
        expected = np.argsort(-scores, kind="stable")[: min(k, n)]
        assert [r for r, _ in got] == expected.tolist()
        assert np.allclose([s for _, s in got], scores[expected], atol=1e-5)
    # FAISS pads short lists with -1: they are dropped
    assert len(index.search(queries[:1], n + 5)[0]) == n


def test_hnsw_index_recall_against_brute_force():
    rng = np.random.default_rng(0)
    data, queries = _unit(rng, 3000, 32), _unit(rng, 50, 32)
    index = FaissStore.build(data, "hnsw")
    assert index.kind == "hnsw"
    hits = 0
    for q, got in zip(queries, index.search(queries, 10), strict=True):
        truth = set(np.argsort(-(data @ q))[:10].tolist())
        hits += len(truth & {r for r, _ in got})
    assert hits / (50 * 10) >= 0.95


def test_auto_kind_switches_at_threshold(monkeypatch):
    import rag.stores.faiss as idx

    monkeypatch.setattr(idx, "HNSW_THRESHOLD", 100)
    rng = np.random.default_rng(1)
    assert FaissStore.build(_unit(rng, 99, 8)).kind == "flat"
    assert FaissStore.build(_unit(rng, 100, 8)).kind == "hnsw"


def test_zero_k_searches_to_nothing():
    flat = FaissStore.build(np.ones((1, 8), np.float32) / np.sqrt(8), "flat")
    assert flat.search(np.ones((1, 8), np.float32), 0) == [[]]


def test_save_load_search_identity(tmp_path, seed_docs, hash_embedder):
    folder = tmp_path / "idx"
    built = build_index(seed_docs, folder, hash_embedder)
    loaded = load_index(folder, hash_embedder.name)
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in built.chunks]
    assert loaded.chunks == built.chunks
    q = hash_embedder.embed_queries(["Қордай ауданындағы қақтығыс", "Ассамблея төрағасы"])
    assert loaded.dense.search(q, 5) == built.dense.search(q, 5)
    assert loaded.lexical.search("Ассамблея төрағасы", 5) == built.lexical.search(
        "Ассамблея төрағасы", 5
    )
    assert np.array_equal(loaded.sentence_vectors, built.sentence_vectors)


def test_manifest_describes_the_index(tmp_path, seed_docs, hash_embedder):
    folder = tmp_path / "idx"
    build_index(seed_docs, folder, hash_embedder)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["format_version"] == 3
    assert m["model"] == "hash-embedder" and m["dimension"] == 64 and m["normalized"] is True
    assert m["chunking"] == ChunkingConfig().to_json()
    assert len(m["corpus_hash"]) == 64
    assert {d["doc_id"] for d in m["documents"]} == {d.doc_id for d in seed_docs}
    assert "faiss-cpu" in m["versions"]
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))


def test_mismatch_says_what_differs(tmp_path, seed_docs, hash_embedder):
    folder = tmp_path / "idx"
    build_index(seed_docs, folder, hash_embedder)
    with pytest.raises(IndexMismatch, match="model: index has 'hash-embedder', asked for 'other'"):
        load_index(folder, "other")
    with pytest.raises(IndexMismatch, match="chunking"):
        load_index(folder, "hash-embedder", ChunkingConfig(target_chars=123))
    with pytest.raises(IndexMissing, match="kazrag index"):
        load_index(tmp_path / "nothing")


def test_damaged_index_is_reported(tmp_path, seed_docs, hash_embedder):
    folder = tmp_path / "idx"
    build_index(seed_docs, folder, hash_embedder)
    lines = (folder / "chunks.jsonl").read_text().splitlines()
    (folder / "chunks.jsonl").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(IndexMissing, match="rebuild"):
        load_index(folder, "hash-embedder")


def test_incremental_rebuild_embeds_only_what_changed(tmp_path, seed_docs, hash_embedder):
    folder = tmp_path / "idx"
    first = build_index(seed_docs, folder, hash_embedder)
    total = first.manifest["embedded"]["chunks"]
    assert total == first.manifest["n_chunks"]
    again = build_index(seed_docs, folder, hash_embedder)
    assert again.manifest["embedded"] == {"chunks": 0, "sentences": 0}
    extra = make_document("new.txt", "Жаңа құжат. Бұл құжатта жаңа сөйлемдер бар.")
    third = build_index([*seed_docs, extra], folder, hash_embedder)
    assert third.manifest["embedded"]["chunks"] == 1
    assert third.manifest["n_chunks"] == total + 1


def test_a_failed_build_leaves_the_old_index(tmp_path, seed_docs, hash_embedder, monkeypatch):
    folder = tmp_path / "idx"
    build_index(seed_docs, folder, hash_embedder)
    before = (folder / "manifest.json").read_text()

    import rag.stores.faiss as idx

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(idx.np, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_index(seed_docs[:2], folder, hash_embedder)
    assert (folder / "manifest.json").read_text() == before
    assert load_index(folder, "hash-embedder").manifest["n_chunks"] > 0
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".idx")]
