"""Ingestion throughput: the local build against Ray on one node and on two (loopback) nodes.

``python -m evals.experiments.ingest --kazqad FILE`` writes the section ``ingest`` of
BENCHMARKS.md. Two corpora, each written as one text file per document so that every run reads
them the way ``kazrag index`` does:

* the KazQAD contexts (``--contexts`` caps how many: all 697 by default);
* a synthetic Kazakh corpus made by recombining the contexts' real sentences (a fixed shuffle,
  ``--synthetic-docs`` documents of ``--sentences`` sentences in paragraphs of three).

Each corpus is indexed from scratch (a fresh index folder, nothing cached) three ways, each in a
child process timed from start to exit: ``kazrag index`` (local, in one process), ``kazrag index
--ray ADDRESS --workers 1`` on a one-node cluster and ``--workers 2`` on a two-node cluster
(rag/ray_cluster.py: separate ``ray start`` processes, loopback only; starting the cluster is
timed apart). Passages are the chunks plus the sentences the index holds (the same in every
mode; the local build encodes a sentence repeated across documents once, Ray once per batch).
The bare encoder's passages/s is measured in this process on a sample of the same passages,
so each run's ratio to it is the share of the encoder's speed that the run keeps. Memory is the
peak of the summed resident memory of every process of the run (driver, Ray's daemons and
workers), sampled every 0.25 s.

On two shared cores a second node cannot add compute: the two-node figure shows Ray's
overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.ray_cluster import LoopbackCluster

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
SECTION = "ingest"
SIZING = (1_000_000, 10_000_000, 100_000_000)
TARGET_HOURS = (24, 8)


@dataclass(frozen=True)
class Run:
    """One ingestion of one corpus."""

    corpus: str
    mode: str
    seconds: float
    chunks: int
    sentences: int
    peak_mb: float
    cluster_start_s: float | None = None

    @property
    def passages(self) -> int:
        """Texts the encoder saw."""
        return self.chunks + self.sentences

    @property
    def rate(self) -> float:
        """Passages per second, start to finish."""
        return self.passages / self.seconds


def _rss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakMemory:
    """Samples the summed RSS of some process trees until stopped."""

    def __init__(self, roots: Sequence[int]) -> None:
        self.roots = list(roots)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from rag.ray_cluster import descendants

        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb(descendants(self.roots)))
            self._stop.wait(0.25)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_corpora(
    kazqad: Path, root: Path, contexts: int | None, synthetic_docs: int, sentences: int
) -> dict[str, Path]:
    """The KazQAD contexts and the recombined corpus as folders of text files."""
    from evals.evaluation import load_kazqad
    from rag.chunking import split_sentences

    docs, _ = load_kazqad(kazqad)
    docs = docs[:contexts] if contexts else docs
    out = {"kazqad": root / "kazqad", "synthetic": root / "synthetic"}
    for folder in out.values():
        folder.mkdir(parents=True)
    pool: list[str] = []
    for d in docs:
        (out["kazqad"] / f"{d.doc_id}.txt").write_text(f"{d.title}\n\n{d.raw}\n", "utf-8")
        pool += [s.text for s in split_sentences(d) if len(s.text) > 20]
    rng = random.Random(12)
    for n in range(synthetic_docs):
        picked = rng.sample(pool, sentences)
        paragraphs = [" ".join(picked[i : i + 3]) for i in range(0, len(picked), 3)]
        title = f"Жиынтық құжат {n + 1}"
        (out["synthetic"] / f"synthetic-{n:05d}.txt").write_text(
            title + "\n\n" + "\n\n".join(paragraphs) + "\n", "utf-8"
        )
    return out


def bare_rate(corpus: Path, sample: int = 64) -> float:
    """Passages/s of the encoder alone on chunk and sentence texts of ``corpus`` (in proportion)."""
    from rag.chunking import chunk_corpus
    from rag.embedding import make_embedder
    from rag.index import search_text
    from rag.sources import load_corpus

    chunks = chunk_corpus(load_corpus(corpus))
    sentences = list({s.text: None for c in chunks for s in c.sentences})
    share = len(chunks) / (len(chunks) + len(sentences))
    n_chunks = max(1, round(sample * share))
    rng = random.Random(3)
    texts = [search_text(c) for c in rng.sample(chunks, min(n_chunks, len(chunks)))]
    texts += rng.sample(sentences, min(sample - len(texts), len(sentences)))
    embedder = make_embedder()
    embedder.embed_passages(texts[:16])  # load and warm up
    t0 = time.perf_counter()
    embedder.embed_passages(texts)
    return len(texts) / (time.perf_counter() - t0)


def _index(
    corpus: Path,
    folder: Path,
    name: str,
    mode: str,
    cluster: LoopbackCluster | None,
) -> Run:
    cmd = [sys.executable, "-m", "kazrag.cli", "index", "--corpus", str(corpus)]
    cmd += ["--index", str(folder), "--quiet"]
    roots: list[int] = []
    if cluster is not None:  # the driver joins the cluster in its network namespace
        cmd = cluster.command([*cmd, "--ray", cluster.address, "--workers", mode])
        roots = sorted(cluster.pids())
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _PeakMemory([proc.pid, *roots]) as mem:
        out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    logger.info("%s %s: %s", name, mode, out.strip())
    return Run(
        corpus=name,
        mode=mode,
        seconds=seconds,
        # What the index holds, the same in every mode; the local build encodes a text repeated
        # across documents once, a Ray run once per batch (the manifest's "embedded").
        chunks=int(manifest["n_chunks"]),
        sentences=int(manifest["n_sentences"]),
        peak_mb=mem.peak,
    )


def measure(corpora: dict[str, Path], work: Path, modes: Sequence[str]) -> list[Run]:
    """Every corpus in every mode (``local``, ``1`` node, ``2`` nodes), each from scratch."""
    runs = []
    for mode in modes:
        cluster: LoopbackCluster | None = None
        start_s = None
        if mode != "local":
            temp = Path(tempfile.mkdtemp(prefix="kzb-", dir="/tmp"))
            t0 = time.perf_counter()
            cluster = LoopbackCluster(temp, nodes=int(mode), cpus_per_node=1).start()
            start_s = time.perf_counter() - t0
        try:
            for name, corpus in corpora.items():
                folder = work / f"index-{name}-{mode}"
                run = _index(corpus, folder, name, mode, cluster)
                runs.append(Run(**{**run.__dict__, "cluster_start_s": start_s}))
                logger.info("%s", runs[-1])
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            if cluster is not None:
                cluster.stop()
                shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    return runs


_MODE = {
    "local": "local (`kazrag index`)",
    "1": "Ray, 1 node × 1 worker",
    "2": "Ray, 2 nodes × 1 worker",
}


def section(
    runs: Sequence[Run], bare: float, sizes: dict[str, tuple[int, int]], load: float
) -> str:
    """The Markdown of the section (without its markers)."""
    lines = [
        "## Distributed ingestion on Ray (`python -m evals.experiments.ingest`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on this 2-core machine **shared with "
        f"other engineers' jobs** (load average {load:.1f} at the start): absolute rates are low "
        "and noisy; the ratios within one run of the command are the comparable figures. "
        "Each run indexes the corpus from scratch in a child process (start to exit, model load "
        "included); passages = chunks + sentences the index holds (the local build encodes a "
        "sentence repeated across documents once, so on the recombined corpus it encodes fewer "
        "texts than a Ray run). Memory: peak of the summed RSS of "
        "every process of the run (driver, Ray daemons, workers). Clusters: separate `ray "
        "start` processes on 127.0.0.1 (rag/ray_cluster.py); their start is timed apart.",
        "",
        "Corpora: "
        + "; ".join(f"**{k}** {d} documents, {c} chunks" for k, (d, c) in sizes.items())
        + ". The synthetic corpus recombines the KazQAD contexts' real sentences (fixed "
        "shuffle, 24 sentences per document in paragraphs of three).",
        "",
        f"Bare encoder (ONNX fp32, in-process, a sample of the same chunk and sentence texts): "
        f"**{bare:.1f} passages/s**.",
        "",
        "| corpus | mode | seconds | passages | passages/s | ratio to bare encoder | peak RSS (MB) | cluster start (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        start = f"{r.cluster_start_s:.1f}" if r.cluster_start_s is not None else "–"
        lines.append(
            f"| {r.corpus} | {_MODE.get(r.mode, r.mode)} | {r.seconds:.1f} | {r.passages} | "
            f"{r.rate:.1f} | {r.rate / bare:.2f} | {r.peak_mb:.0f} | {start} |"
        )
    lines += [
        "",
        "On two shared cores a second node adds no compute (both nodes are processes on the same "
        "two cores, each encoder actor's ONNX session runs two threads): the two-node figure "
        "measures Ray's overhead (task scheduling, object transfer, a second model in memory), "
        "not a speed-up. On real nodes the encoders run on separate cores and the rate adds up "
        "per node; that is the assumption of the sizing below, not a measurement.",
        "",
    ]
    lines += sizing(runs, sizes)
    return "\n".join(lines) + "\n"


def sizing(runs: Sequence[Run], sizes: dict[str, tuple[int, int]]) -> list[str]:
    """Embedding hours per node and nodes for a target time at 1M, 10M and 100M chunks."""
    one = [r for r in runs if r.mode == "1" and r.corpus == "synthetic"] or [
        r for r in runs if r.mode == "1"
    ]
    if not one:
        return []
    r = one[0]
    per_chunk = r.passages / max(r.chunks, 1)
    per_node = r.rate
    out = [
        "### Sizing a Ray cluster (on paper, from the one-node rate above)",
        "",
        f"At the measured one-node rate ({per_node:.1f} passages/s on a 2-core node, "
        f"{per_chunk:.1f} passages per chunk: the chunk plus its share of sentences) and "
        "assuming nodes add up linearly (embedding is independent per document; the driver "
        "only upserts rows):",
        "",
        "| chunks | passages | embedding hours on one 2-core node | "
        + " | ".join(f"nodes for {h} h" for h in TARGET_HOURS)
        + " | 16-core nodes for 8 h (×8 per node, assumed) |",
        "|---|---|---|" + "---|" * len(TARGET_HOURS) + "---|",
    ]
    for n in SIZING:
        passages = n * per_chunk
        hours = passages / per_node / 3600
        nodes = [math.ceil(hours / h) for h in TARGET_HOURS]
        big = math.ceil(hours / 8 / 8)
        out.append(
            f"| {n:,} | {passages:,.0f} | {hours:,.0f} | "
            + " | ".join(f"{x:,}" for x in nodes)
            + f" | {big:,} |"
        )
    out += [
        "",
        "The driver's share grows with the corpus too: it holds the vocabulary (the union of "
        "the documents' words, for line-end hyphens) and writes the rows; with the FAISS "
        "index folder as the sink it also holds every vector at the end (384 floats = 1.5 kB "
        "per passage: ~6 GB per million chunks with their sentences), which is why a corpus "
        "of millions of chunks belongs in a server store (Milvus, the serving half of issue 12) "
        "that the rows are upserted into as they come.",
    ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure and write the section of BENCHMARKS.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--kazqad", type=Path, required=True, help="KazQAD validation JSONL")
    p.add_argument("--contexts", type=int, default=0, help="only the first N contexts (0: all)")
    p.add_argument("--synthetic-docs", type=int, default=400)
    p.add_argument("--sentences", type=int, default=24, help="sentences per synthetic document")
    p.add_argument("--modes", default="local,1,2")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from evals.bench import write_section

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kazrag-ingest-") as tmp:
        work = Path(tmp)
        corpora = write_corpora(
            args.kazqad,
            work / "corpora",
            args.contexts or None,
            args.synthetic_docs,
            args.sentences,
        )
        from rag.chunking import chunk_corpus
        from rag.sources import load_corpus

        sizes = {}
        for name, folder in corpora.items():
            docs = load_corpus(folder)
            sizes[name] = (len(docs), len(chunk_corpus(docs)))
        bare = bare_rate(corpora["kazqad"])
        logger.info("bare encoder: %.1f passages/s; corpora %s", bare, sizes)
        runs = measure(corpora, work, args.modes.split(","))
    write_section(args.out, section(runs, bare, sizes, load), SECTION)
    print(section(runs, bare, sizes, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
