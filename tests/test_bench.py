"""The benchmark's plumbing: section markers, table rows, recall against brute force, sizes."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from evals import bench
from rag.settings import Settings
from rag.stores.faiss import FaissStore
from tests.conftest import SEEDS
from tests.fakes import HashEmbedder


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_force_recall(data: np.ndarray, queries: np.ndarray, approx: list[list[int]], k: int):
    shares = []
    for q, got in zip(queries, approx, strict=True):
        truth = set(np.argsort(-(data @ q), kind="stable")[:k].tolist())
        shares.append(len(truth & set(got[:k])) / len(truth))
    return float(np.mean(shares))


def test_recall_at_k_hand_examples():
    assert bench.recall_at_k([[1, 2, 3]], [[1, 2, 3]], 3) == 1.0
    assert bench.recall_at_k([[3, 2, 1]], [[1, 2, 3]], 3) == 1.0  # order does not matter
    assert bench.recall_at_k([[1, 9, 8], [4, 5, 6]], [[1, 2, 3], [4, 5, 6]], 3) == pytest.approx(
        (1 / 3 + 1) / 2
    )
    # FAISS pads with -1: a pad is never a hit, and a padded truth list counts its real rows
    assert bench.recall_at_k([[7, -1, -1]], [[7, -1, -1]], 3) == 1.0
    assert bench.recall_at_k([[-1, -1]], [[5, 6]], 2) == 0.0
    assert math.isnan(bench.recall_at_k([], [], 10))
    with pytest.raises(ValueError):
        bench.recall_at_k([[1]], [[1], [2]], 1)


def test_recall_of_hnsw_matches_brute_force_reference():
    rng = np.random.default_rng(7)
    data, queries, k = _unit(rng, 2000, 32), _unit(rng, 50, 32), 10
    hnsw = FaissStore.build(data, "hnsw")
    hnsw.faiss.hnsw.efSearch = 16  # low on purpose: recall must be < 1 to test anything
    _, approx = hnsw.faiss.search(queries, k)
    _, exact = FaissStore.build(data, "flat").faiss.search(queries, k)
    got = bench.recall_at_k(approx, exact, k)
    assert got == pytest.approx(_brute_force_recall(data, queries, approx.tolist(), k))
    assert 0.0 < got < 1.0
    # the helper for a partial build is a flat search too: equal to numpy's ranking
    ref = [np.argsort(-(data[:500] @ q), kind="stable")[:k].tolist() for q in queries]
    assert bench.exact_rows(data[:500], queries, k).tolist() == ref


def test_latency_percentiles_and_synthetic_vectors():
    lat = bench.Latency.of([float(x) for x in range(1, 101)])
    assert (lat.n, lat.p50, lat.max) == (100, 50.5, 100.0)
    assert lat.p95 == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert math.isnan(bench.Latency.of([]).p95)
    v = bench.synthetic_vectors(250, 384, 1)
    assert v.shape == (250, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v, bench.synthetic_vectors(250, 384, 1))  # seeded


def test_parse_scale_and_extrapolation():
    assert bench.parse_scale("1000,10k, 1M,1000") == [1000, 10_000, 1_000_000]
    assert bench.parse_scale("") == []
    with pytest.raises(ValueError, match="not a size"):
        bench.parse_scale("lots")
    with pytest.raises(ValueError, match="at least"):
        bench.parse_scale("5")
    assert bench.extrapolate_build(10.0, 1000, 1000) == pytest.approx(10.0)
    assert bench.extrapolate_build(10.0, 100_000, 1_000_000) > 100.0  # n log n, not linear


def _scale_run(n: int, flat_p95: float) -> bench.ScaleRun:
    lat = bench.Latency(200, flat_p95 / 2, flat_p95, flat_p95)
    return bench.ScaleRun(n, 0.1, lat, lat, 4 * n, 1.0, n, 1.0, lat, 0.9, 5 * n, 1.0)


def test_flat_crossing_interpolates_log_log():
    runs = [_scale_run(1_000, 0.1), _scale_run(10_000, 1.0), _scale_run(100_000, 100.0)]
    assert bench.flat_crossing(runs, 10.0) == 32_000  # 10^(4 + 0.5): halfway in log space
    assert bench.flat_crossing(runs[:2], 10.0) is None
    slow_default = [
        bench.ScaleRun(**{**r.__dict__, "flat": bench.Latency(200, 20.0, 40.0, 50.0)}) for r in runs
    ]
    assert bench.flat_crossing(slow_default, 10.0) is None  # above the limit from the start
    assert bench.flat_crossing(slow_default, 10.0, one_thread=True) == 32_000


def test_write_section_creates_replaces_and_keeps_other_sections(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    bench.write_section(path, "first")
    text = path.read_text(encoding="utf-8")
    assert text.count(bench.SECTION_START) == 1 and "first" in text
    other = "<!-- eval:start -->\nquality\n<!-- eval:end -->\n"
    path.write_text(other + "\n" + text + "\n<!-- api:start -->\napi\n<!-- api:end -->\n")
    bench.write_section(path, "second")
    once = path.read_text(encoding="utf-8")
    bench.write_section(path, "second")
    assert path.read_text(encoding="utf-8") == once  # idempotent
    assert "first" not in once and once.count("second") == 1
    assert once.startswith(other) and once.rstrip().endswith("<!-- api:end -->")
    assert once.count(bench.SECTION_START) == once.count(bench.SECTION_END) == 1
    path.write_text(f"# B\n{bench.SECTION_START}\nno end\n")
    with pytest.raises(ValueError, match="markers"):
        bench.write_section(path, "third")


def test_main_writes_tables_with_fake_embedder(tmp_path, monkeypatch):
    kazqad = tmp_path / "kazqad.jsonl"
    abai = "Абай Құнанбайұлы – ақын. Ол 1845 жылы туған."
    rows = [
        {"id": "a", "context": abai, "question": "Абай кім?"},
        {"id": "b", "context": "Алматы – Қазақстанның ең үлкен қаласы.", "question": "Алматы?"},
        {"id": "c", "context": abai, "question": "Абай қашан туған?"},
    ]
    kazqad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n<!-- eval:start -->\nkeep me\n<!-- eval:end -->\n", "utf-8")
    monkeypatch.setattr(bench, "SCALE_QUERIES", 20)
    monkeypatch.setenv("KAZRAG_BENCH_HNSW_BUDGET", "60")
    args = argparse.Namespace(kazqad=kazqad, scale="500", out=out)
    settings = Settings(corpus=SEEDS, index=tmp_path / "unused", uploads=None)
    emb = HashEmbedder()

    assert bench.main(args, settings, embedder=emb) == 0
    text = out.read_text(encoding="utf-8")
    assert "keep me" in text and text.count(bench.SECTION_START) == 1
    section = text[text.index(bench.SECTION_START) : text.index(bench.SECTION_END)]
    for label in (
        "index build, end to end (s)",
        "bare encoder: chunk texts per s",
        "ratio A",
        "ratio C",
        "retrieval p50 / p95 / max (ms)",
        "full answer p50 / p95 / max (ms)",
        "| | seeds | KazQAD |",
        "| 500 |",
        "Synthetic data",
        "Threshold check",
        "1 thread",
        "real vectors",
        "Command: `kazrag bench --kazqad",
    ):
        assert label in section, label
    docs_row = next(line for line in section.splitlines() if line.startswith("| documents"))
    assert docs_row.split("|")[3].strip().startswith("2 / ")  # two distinct KazQAD contexts
    assert not (tmp_path / "unused").exists()  # indexes go to a temporary folder only

    assert bench.main(args, settings, embedder=emb) == 0  # a rerun replaces the section
    again = out.read_text(encoding="utf-8")
    assert again.count(bench.SECTION_START) == 1 and "keep me" in again


def test_questions_file_is_required(tmp_path):
    with pytest.raises(ValueError, match="question set not found"):
        bench.seed_questions(tmp_path / "questions.jsonl")
    with pytest.raises(ValueError, match="KazQAD file not found"):
        bench.kazqad_corpus(tmp_path / "missing.jsonl")


def test_backends_table_renders_a_quick_run_without_quality(tmp_path):
    """A ``--quick`` run has no question-set figures: its quality rows say so ("–"), the speed
    rows and the FLOP ratio (achieved rate x tokens x FLOPs per token / peak) are computed."""
    from evals.experiments.backends import flops_per_token, render

    (tmp_path / "config.json").write_text(
        json.dumps({"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 12})
    )
    base = {"chunk_tokens": 229.0, "sentence_tokens": 33.0, "seed_chunks": 77}
    results = [
        {
            **base,
            "backend": "torch",
            "chunk_rate": 5.0,
            "sentence_rate": 40.0,
            "query_p50_ms": 60.0,
        },
        {
            **base,
            "backend": "onnx",
            "chunk_rate": 10.0,
            "sentence_rate": 80.0,
            "query_p50_ms": 20.0,
        },
    ]
    text = render(results, 100.0, tmp_path, "info")
    assert "| chunk-length passages/s | 5.0 | 10.0 (2.00×) |" in text
    assert "| single-query encode p50 (ms) | 60.0 | 20.0 (3.00× faster) |" in text
    assert "| dev: retrieval.hit@5 | – | – |" in text
    torch_gflops = 5.0 * 229 * flops_per_token(tmp_path, 229) / 1e9
    assert f"| {torch_gflops:.1f} GFLOP/s = {torch_gflops / 100:.0%} |" in text


def test_backends_table_counts_the_rows_each_backend_answers_otherwise(tmp_path):
    """Beside the figures, the quality table says how many rows of each split a backend answers
    otherwise than the first column: a row whose evidence leaves the top 5, whose refusal flips,
    or whose key facts or cited evidence change counts once."""
    from evals.experiments.backends import changed_rows, render

    (tmp_path / "config.json").write_text(
        json.dumps({"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 12})
    )
    torch_rows = {
        "q1": [1.0, False, 1.0, [True]],
        "q2": [1.0, False, 0.5, [True, False]],
        "q3": [None, True, None, []],
    }
    int8_rows = {
        "q1": [1.0, False, 1.0, [True]],
        "q2": [0.0, False, 0.5, [True, False]],  # the evidence left the top 5
        "q3": [None, False, None, [False]],  # no longer refused
    }
    assert changed_rows(torch_rows, int8_rows) == ["q2", "q3"]
    assert changed_rows(torch_rows, torch_rows) == []
    base = {"chunk_tokens": 229.0, "sentence_tokens": 33.0, "seed_chunks": 77, "chunk_rate": 5.0}
    results = [
        {**base, "backend": "torch", "dev": {"abstention.f1": 0.5, "outcomes": torch_rows}},
        {**base, "backend": "onnx-int8", "dev": {"abstention.f1": 0.4, "outcomes": int8_rows}},
    ]
    text = render(results, 100.0, tmp_path, "info")
    assert "| dev: abstention.f1 | 0.500 | 0.400 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| dev: rows answered"))
    assert row.endswith("| 0 of 3 | 2 of 3 |"), row
    assert not any(line.startswith("| test: rows answered") for line in text.splitlines())
