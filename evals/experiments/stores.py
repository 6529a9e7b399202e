"""Vector stores side by side: FAISS (folder), Milvus Lite embedded (``.db``), ``milvus-lite server``.

``python -m evals.experiments.stores`` writes the section ``stores`` of BENCHMARKS.md:

- dense search p50/p95 (top 30, the retriever's candidate depth) and whole hybrid retrieval
  p50/p95 (the store's generation check that every request makes, then dense + BM25 + fusion
  through ``rag.pipeline.retrieve``) on the seed index, the same query vectors for every store;
- the same dense search on a larger synthetic collection (``--synthetic N`` random unit vectors,
  default 100,000), to show how each store's cost grows with the collection;
- memory: the FAISS index's size, the ``milvus-lite server`` process's resident memory;
- quality on the project question set (dev and test) with the index in FAISS and in Milvus
  (the seed index copied with its vectors, ``rag.store_index.migrate``): the figures must agree
  within 0.01.

The machine is shared (2 cores, several people at work): timings are under load, and only the
ratios measured side by side in one run compare.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
K = 30
WARMUP = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(samples: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def _time(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    for i in range(min(WARMUP, n)):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return _pct(out)


def _rss_of(pid: int) -> tuple[float, float]:
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def start_server(data: Path) -> tuple[subprocess.Popen[Any], str]:
    """``milvus-lite server`` on 127.0.0.1 (a free port); returns it once it answers."""
    from rag.stores.base import StoreUnreachable
    from rag.stores.milvus import MilvusStore

    port = _free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "milvus-lite"),
            "server",
            "--data-dir",
            str(data),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    probe = MilvusStore(uri, timeout=3)
    deadline = time.monotonic() + 60
    while True:
        try:
            probe.generation()
            break
        except StoreUnreachable:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("milvus-lite server did not start") from None
            time.sleep(0.3)
    probe.close()
    return proc, uri


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _quality(engine: Any) -> dict[str, dict[str, float | None]]:
    from evals.experiments.backends import _questions_quality

    return {split: _questions_quality(engine, split) for split in ("dev", "test")}


def random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors (float32)."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def synthetic(store: Any, vecs: np.ndarray) -> None:
    """Write each vector as a one-chunk document (the chunks collection is what is searched)."""
    from rag.rows import DocumentRows
    from rag.schema import Chunk

    dim = vecs.shape[1]
    batch = 2000
    for at in range(0, len(vecs), batch):
        rows = []
        for i in range(at, min(at + batch, len(vecs))):
            doc = f"syn{i:07d}"
            rows.append(
                DocumentRows(
                    doc,
                    {"doc_id": doc, "sha256": doc, "title": doc},
                    (Chunk(f"{doc}-0", doc, doc, f"сөз {i}", 0, 8),),
                    vecs[i : i + 1],
                    (),
                    np.zeros((0, dim), dtype=np.float32),
                )
            )
        store.write(rows)


def run(n_synthetic: int, out: Path, quality: bool = True) -> dict[str, Any]:
    """Measure everything in one process (see the module doc); write BENCHMARKS.md."""
    from evals.bench import memory_mb, write_section
    from rag.pipeline import make_engine, prepare_question, retrieve
    from rag.settings import from_env
    from rag.store_index import migrate
    from rag.stores.faiss import FaissStore
    from rag.stores.milvus import MilvusStore

    settings = from_env().replace(uploads=None)
    faiss_engine = make_engine(settings)
    index = faiss_engine.index
    emb = faiss_engine.embedder
    rows = [
        json.loads(line)
        for line in (settings.corpus / "questions.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    preps = [prepare_question(faiss_engine, r["question"]) for r in rows]
    qvecs = emb.embed_queries([p.query for p in preps])
    res: dict[str, Any] = {
        "chunks": len(index.chunks),
        "questions": len(preps),
        "synthetic": n_synthetic,
        "dim": int(emb.dim),
    }
    tmp = Path(tempfile.mkdtemp(prefix="kazrag-stores-"))
    server, uri = start_server(tmp / "server")
    try:
        engines = {"faiss": faiss_engine}
        for label, store_uri in (("lite", str(tmp / "lite.db")), ("server", uri)):
            t0 = time.perf_counter()
            migrate(index, settings.replace(store=store_uri).index_spec)
            res[f"{label}_migrate_s"] = time.perf_counter() - t0
            t0, rss0 = time.perf_counter(), memory_mb()[0]
            engines[label] = make_engine(settings.replace(store=store_uri), embedder=emb)
            res[f"{label}_load_s"] = time.perf_counter() - t0
            res[f"{label}_load_rss_mb"] = memory_mb()[0] - rss0
        n = len(preps)
        for label, engine in engines.items():

            def dense_search(i: int, engine: Any = engine) -> Any:
                return engine.index.dense.search(qvecs[i : i + 1], K)

            def hybrid(i: int, engine: Any = engine) -> Any:
                engine.refresh()  # what every request does: one read of the store's generation
                return retrieve(engine, preps[i].query, 5, qvecs[i], preps[i].lexical)

            res[f"{label}_dense"] = _time(dense_search, n)
            res[f"{label}_retrieve"] = _time(hybrid, n)
        same = 0
        for i, p in enumerate(preps):
            top = [
                [h.chunk.chunk_id for h in retrieve(e, p.query, 5, qvecs[i], p.lexical)]
                for e in engines.values()
            ]
            same += all(t == top[0] for t in top)
        res["same_top5"] = same
        res["faiss_bytes"] = FaissStore.build(index.vectors).nbytes()
        res["server_rss_mb"], res["server_hwm_mb"] = _rss_of(server.pid)
        res["process_rss_mb"] = memory_mb()[0]
        if quality:
            res["quality"] = {label: _quality(engines[label]) for label in ("faiss", "lite")}
        for label in ("lite", "server"):
            engines[label].index.store.close()  # type: ignore[attr-defined]
        if n_synthetic:
            dim = int(emb.dim)
            vecs = random_unit(n_synthetic, dim)
            queries = random_unit(50, dim, seed=1)
            for label, store_uri in (("lite", str(tmp / "big.db")), ("server", uri)):
                store = MilvusStore(store_uri, prefix="synthetic")
                store.create(
                    {"format_version": 0, "model": "random", "dimension": dim, "lexical": {}}
                )
                t0 = time.perf_counter()
                synthetic(store, vecs)
                res[f"{label}_big_write_s"] = time.perf_counter() - t0

                def big_search(i: int, store: Any = store) -> Any:
                    return store.search(queries[i : i + 1], K)

                res[f"{label}_big_dense"] = _time(big_search, 30)
                store.close()
            big = FaissStore.build(vecs)  # the same vectors (flat below the HNSW threshold)
            res["faiss_big_kind"] = big.kind

            def faiss_search(i: int) -> Any:
                return big.search(queries[i : i + 1], K)

            res["faiss_big_dense"] = _time(faiss_search, 30)
            res["server_big_rss_mb"], res["server_big_hwm_mb"] = _rss_of(server.pid)
    finally:
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
    write_section(out, render(res), "stores")
    return res


def render(res: dict[str, Any]) -> str:
    """The Markdown of the section (without its markers)."""

    def ms(key: str) -> str:
        p50, p95 = res[key]
        return f"{p50:.1f} / {p95:.1f}"

    out = [
        "## Vector stores: FAISS, Milvus Lite embedded, milvus-lite server",
        "",
        "`python -m evals.experiments.stores` (evals/experiments/stores.py). The seed index "
        f"({res['chunks']} chunks, {res['dim']}-d) copied with its vectors into Milvus "
        "(`kazrag index --store URI --from-index FOLDER`); "
        f"{res['questions']} questions of the project question set, the same query vectors for "
        "every store. **Timings under load** (2 shared cores, several people at work): compare "
        "the columns of one run, not absolute figures.",
        "",
        "| | FAISS (folder, flat) | Milvus Lite embedded (`.db`) | `milvus-lite server` (gRPC, loopback) |",
        "| --- | --- | --- | --- |",
        f"| dense top-{K} p50 / p95 (ms) | {ms('faiss_dense')} | {ms('lite_dense')} | "
        f"{ms('server_dense')} |",
        f"| hybrid retrieval top-5 p50 / p95 (ms) | {ms('faiss_retrieve')} | "
        f"{ms('lite_retrieve')} | {ms('server_retrieve')} |",
        f"| load / connect a replica (s) | — | {res['lite_load_s']:.1f} | "
        f"{res['server_load_s']:.1f} |",
        f"| copy the seed index in (s) | — | {res['lite_migrate_s']:.1f} | "
        f"{res['server_migrate_s']:.1f} |",
        f"| memory | index {res['faiss_bytes'] / 1e6:.1f} MB | the replica process grew "
        f"{res['lite_load_rss_mb']:.0f} MB opening it (embedded Milvus Lite + chunk list + BM25) "
        f"| server RSS {res['server_rss_mb']:.0f} MB (peak {res['server_hwm_mb']:.0f}); the "
        f"replica grew {res['server_load_rss_mb']:.0f} MB (chunk list + BM25) |",
        "",
        f"Same top-5 chunks on all three stores: **{res['same_top5']} of {res['questions']}** "
        "questions (hybrid retrieval; dense search in the store, BM25 and fusion in kazrag).",
        "",
    ]
    if res.get("synthetic"):
        out += [
            f"Synthetic collection: {res['synthetic']:,} random unit vectors ({res['dim']}-d), "
            f"dense top-{K}, 30 queries:",
            "",
            "| | FAISS | Milvus Lite embedded | `milvus-lite server` |",
            "| --- | --- | --- | --- |",
            f"| dense top-{K} p50 / p95 (ms) | {ms('faiss_big_dense')} ({res['faiss_big_kind']}) "
            f"| {ms('lite_big_dense')} | {ms('server_big_dense')} |",
            f"| write the collection (s) | — | {res['lite_big_write_s']:.0f} | "
            f"{res['server_big_write_s']:.0f} |",
            f"| server RSS after it (MB) | — | — | {res['server_big_rss_mb']:.0f} "
            f"(peak {res['server_big_hwm_mb']:.0f}) |",
            "",
            "FAISS is HNSW at this size (rag/stores/faiss.py switches at 50,000 chunks); "
            "Milvus here keeps the exact FLAT index the store creates. "
            "Milvus Lite 3.x is pure Python over FAISS and Parquet: good for development, CI and "
            "a small deployment, with a per-query floor and a cost that grows with the "
            "collection. Production is a Milvus standalone or cluster with the same client "
            "calls (docs/deploy.md, sizing).",
            "",
        ]
    if res.get("quality"):
        q = res["quality"]
        out += [
            "Quality on the project question set, index in FAISS vs in Milvus Lite "
            "(the whole pipeline: retrieval and the evidence-first composer):",
            "",
            "| split | store | hit@5 | MRR@10 | key facts | citation precision | abstention F1 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        worst = 0.0
        for split in ("dev", "test"):
            for label in ("faiss", "lite"):
                f = q[label][split]
                cells = [
                    "—" if f[k] is None else f"{f[k]:.3f}"
                    for k in (
                        "retrieval.hit@5",
                        "retrieval.mrr@10",
                        "answer.keyfacts_all",
                        "citations.precision",
                        "abstention.f1",
                    )
                ]
                out.append(f"| {split} | {label} | " + " | ".join(cells) + " |")
            for k, v in q["faiss"][split].items():
                w = q["lite"][split][k]
                if v is not None and w is not None:
                    worst = max(worst, abs(v - w))
        out += ["", f"Largest difference between the stores: {worst:.3f} (must be ≤ 0.01).", ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", type=int, default=100_000, help="synthetic chunks (0: none)")
    p.add_argument("--no-quality", action="store_true", help="skip the question-set evaluation")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res = run(args.synthetic, args.out, quality=not args.no_quality)
    print(json.dumps({k: v for k, v in res.items() if k != "quality"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
