"""Encoder backends side by side: torch fp32, ONNX Runtime fp32 and ONNX Runtime int8.

``kazrag bench`` runs this after its own tables (``python -m evals.experiments.backends`` runs it
alone) and writes the section ``backends`` of BENCHMARKS.md. Each backend is measured in a
fresh child process, one after the other, so that its memory and its load time are its own and
no backend inherits another's warm caches; everything else in a run is the same.

Per backend: cold start of ``kazrag ask`` (shell to printed answer), model load, resident
memory, single-query encode p50/p95, passages/s on chunk-length and sentence-length texts,
index build of the seed corpus (and of the KazQAD contexts with ``--kazqad``), retrieval and
answer p95 on the seed index, and quality: the project question set (dev and test: retrieval
hit@5 / MRR@10, key facts, citation precision, abstention) and KazQAD open book (R@5,
MRR@10), each on an index built with that backend. The cosine of each backend's query vectors
to torch's comes from the same children.

The physical limit: a BERT encoder costs about ``2 x (matrix weights per layer) x layers``
FLOPs per token for its dense layers plus ``4 x tokens x hidden x layers`` for attention
(scores and weighted sum); the machine's peak is a float32 matrix product (numpy's BLAS, all
cores, 2048 x 2048) timed in the same run. The ratio is the achieved passage throughput in
FLOP/s over that peak.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
TEXT_CAP = 300
COLD_RUNS = 3
COLD_QUESTION = "Абай Құнанбайұлы қай жылы дүниеге келген?"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


# --- the child: one backend ---------------------------------------------------------------


def _rss() -> tuple[float, float]:
    from evals.bench import memory_mb

    return memory_mb()


def _token_count(embedder: Any, texts: Sequence[str]) -> int:
    """Tokens the encoder sees for ``texts`` (passage prompt and special tokens included)."""
    from tokenizers import Tokenizer

    from rag.onnx_encoder import export_folder, read_export

    info = read_export(export_folder(embedder.name))
    if info is None:
        return 0
    tok = Tokenizer.from_file(str(info.folder / "tokenizer.json"))
    tok.enable_truncation(info.max_seq_length)
    prompt = info.prompts.get("passage", "")
    return sum(len(e.ids) for e in tok.encode_batch([prompt + t for t in texts]))


def _rate(embedder: Any, texts: Sequence[str]) -> float:
    embedder.embed_passages(list(texts[:8]))  # warm-up at this length
    t0 = time.perf_counter()
    embedder.embed_passages(list(texts))
    return len(texts) / (time.perf_counter() - t0)


def _questions_quality(engine: Any, split: str) -> dict[str, float | None]:
    from evals.evaluation import DEFAULT_QUESTIONS, load_questions, run_questions, select_questions
    from evals.metrics import figures, flatten
    from rag.sources import load_corpus

    all_rows = load_questions(DEFAULT_QUESTIONS)
    rows = select_questions(all_rows, split, None)
    results = run_questions(rows, all_rows, engine, load_corpus(engine.settings.corpus))
    records = [rec for rec, _ in results]
    flat = flatten(figures(records))
    names = (
        "retrieval.hit@5",
        "retrieval.mrr@10",
        "answer.keyfacts_all",
        "citations.precision",
        "abstention.f1",
    )
    return {**{n: flat.get(n) for n in names}, "outcomes": outcomes(records)}


def outcomes(records: Sequence[Any]) -> dict[str, list[Any]]:
    """What a reader sees of each row, to compare backends row by row: the evidence in the top
    5, the answer refused or given, the share of key facts found, which citations land on the
    evidence. Figures over a few dozen questions move by more than 0.01 when one row changes;
    the count of rows that change says how many answers a backend really moves."""
    from evals.metrics import score

    out: dict[str, list[Any]] = {}
    for rec in records:
        s = score(rec)
        hit = None if s.retrieval is None else s.retrieval["hit@5"]
        out[rec.id] = [hit, rec.abstained, s.keyfact_recall, list(s.citation_hits)]
    return out


def changed_rows(reference: dict[str, list[Any]], other: dict[str, list[Any]]) -> list[str]:
    """The rows of ``other`` whose outcome differs from ``reference``'s (ids in both)."""
    return sorted(k for k in reference.keys() & other.keys() if reference[k] != other[k])


def worker(backend: str, kazqad: Path | None, out: Path, model: str, quick: bool = False) -> None:
    """Measure one backend in this (fresh) process and write the figures as JSON to ``out``.

    ``quick`` (for iterating, not for BENCHMARKS.md's record) skips the question-set quality
    runs; KazQAD is measured only when ``kazqad`` is given.
    """
    started = time.perf_counter()
    from evals.bench import kazqad_corpus, passage_texts, seed_questions, spread, time_each
    from evals.evaluation import kazqad_index, run_kazqad
    from evals.metrics import flatten, kazqad_figures
    from rag.embedding import make_embedder
    from rag.index import build_index, corpus_documents
    from rag.pipeline import answer, make_engine
    from rag.settings import from_env

    settings = from_env(model=model, backend=backend).replace(uploads=None)
    emb = make_embedder(model, backend)
    t0 = time.perf_counter()
    emb.embed_queries(["жылыту"])
    res: dict[str, Any] = {
        "backend": backend,
        "load_s": time.perf_counter() - t0,
        "ready_s": time.perf_counter() - started,
    }
    res["rss_loaded_mb"] = _rss()[0]
    questions = seed_questions(settings.corpus / "questions.jsonl")
    qlat = time_each(lambda q: emb.embed_queries([q]), questions)
    res["query_p50_ms"], res["query_p95_ms"] = qlat.p50, qlat.p95
    qvecs = emb.embed_queries(questions)
    np.save(out.with_suffix(".npy"), qvecs)

    docs = corpus_documents(settings.index_spec)
    kq_docs = None
    if kazqad:
        kq_docs, _ = kazqad_corpus(kazqad)
        chunk_texts, sentence_texts = passage_texts(kq_docs, settings)
    else:
        chunk_texts, sentence_texts = passage_texts(docs, settings)
    chunks, sentences = spread(chunk_texts, TEXT_CAP), spread(sentence_texts, TEXT_CAP)
    res["chunk_rate"] = _rate(emb, chunks)
    res["sentence_rate"] = _rate(emb, sentences)
    res["chunk_tokens"] = _token_count(emb, chunks) / len(chunks)
    res["sentence_tokens"] = _token_count(emb, sentences) / len(sentences)

    with tempfile.TemporaryDirectory(prefix="kazrag-backends-") as tmp:
        folder = Path(tmp) / "seeds"
        t0 = time.perf_counter()
        index = build_index(docs, folder, emb, settings.chunking, corpus=settings.corpus)
        res["seed_build_s"] = time.perf_counter() - t0
        res["seed_chunks"] = index.manifest["n_chunks"]
        res["seed_sentences"] = index.manifest["n_sentences"]
        engine = make_engine(settings.replace(index=folder), emb)
        k = settings.top_k
        res["retrieval_p95_ms"] = time_each(lambda q: engine.retriever.search(q, k), questions).p95
        res["answer_p95_ms"] = time_each(lambda q: answer(q, engine=engine), questions).p95
        if not quick:
            res["dev"] = _questions_quality(engine, "dev")
            res["test"] = _questions_quality(engine, "test")
        if kazqad and kq_docs is not None:
            kfolder = Path(tmp) / "kazqad"
            t0 = time.perf_counter()
            kindex = kazqad_index(kq_docs, kfolder, emb, settings, kazqad)
            res["kazqad_build_s"] = time.perf_counter() - t0
            res["kazqad_passages"] = kindex.manifest["n_chunks"] + kindex.manifest["n_sentences"]
            from evals.evaluation import load_kazqad

            _, items = load_kazqad(kazqad)
            kengine = make_engine(
                settings.replace(index=kfolder, corpus=kazqad, uploads=None), embedder=emb
            )
            flat = flatten(kazqad_figures(run_kazqad(items, kengine)))
            res["kazqad"] = {
                n: flat.get(n)
                for n in (
                    "retrieval.hybrid.recall@5",
                    "retrieval.hybrid.mrr@10",
                    "retrieval.dense.recall@5",
                    "retrieval.dense.mrr@10",
                )
            }
    res["rss_end_mb"], res["rss_peak_mb"] = _rss()
    out.write_text(json.dumps(res, indent=2), encoding="utf-8")


# --- the parent ---------------------------------------------------------------------------


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate (numpy's BLAS on all its threads), best of
    ``repeats``: the ceiling any encoder on this CPU can reach."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool and page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_token(model_folder: Path, tokens: float) -> float:
    """FLOPs of one token through a BERT encoder at sequence length ``tokens``."""
    cfg = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    dense = 4 * h * h + 2 * h * inter  # Q, K, V, output projection; the two feed-forward layers
    attention = 2 * tokens * h  # scores (q·k) and the weighted sum of values, per token
    return 2.0 * layers * (dense + attention)


def cold_start(backend: str, runs: int = COLD_RUNS) -> tuple[float, float]:
    """Median wall time of ``kazrag ask`` from the shell to its printed answer (seed index),
    and the median CPU time (user + system) it used: on a busy machine the wall time mostly
    measures the wait for a core, the CPU time what the command itself costs.

    The command runs with Python's bytecode cache on, as an installed ``kazrag`` has it: a
    ``PYTHONDONTWRITEBYTECODE`` in the caller's environment would make every run compile the
    project's modules again (about 0.2 s here) and is dropped for the measurement."""
    import resource

    times, cpu = [], []
    env = dict(os.environ, KAZRAG_BACKEND=backend)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "kazrag.cli", "ask", COLD_QUESTION],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"kazrag ask failed with {backend}: {proc.stderr[-500:]}")
    return float(np.median(times)), float(np.median(cpu))


def measure(
    backends: Sequence[str],
    kazqad: Path | None,
    model: str,
    workdir: Path,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """Run one child per backend (and the cold starts) and collect their figures."""
    results = []
    for backend in backends:
        print(f"backends: measuring {backend}", file=sys.stderr, flush=True)
        out = workdir / f"{backend}.json"
        if not out.is_file():  # a kept work folder (--workdir) resumes an interrupted run
            cmd = [sys.executable, "-m", "evals.experiments.backends", "--worker", backend]
            cmd += ["--model", model, "--json", str(out)]
            if kazqad:
                cmd += ["--kazqad", str(kazqad)]
            if quick:
                cmd += ["--quick"]
            subprocess.run(cmd, cwd=PROJECT_ROOT, check=True)
        res = json.loads(out.read_text(encoding="utf-8"))
        res["cold_start_s"], res["cold_start_cpu_s"] = cold_start(backend)
        res["vectors"] = out.with_suffix(".npy")
        results.append(res)
    ref = next((r for r in results if r["backend"] == "torch"), None)
    if ref is not None:
        base = np.load(ref["vectors"], allow_pickle=False)
        for r in results:
            cos = np.sum(base * np.load(r["vectors"], allow_pickle=False), axis=1)
            r["cos_min"], r["cos_mean"] = float(cos.min()), float(cos.mean())
    for r in results:
        r.pop("vectors")
    return results


def _f(value: Any, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def render(results: Sequence[dict[str, Any]], peak: float, model_folder: Path, info: str) -> str:
    """The Markdown of the section."""
    cols = [r["backend"] for r in results]
    by = {r["backend"]: r for r in results}
    ref = by.get("torch")

    def row(label: str, key: str, fmt: str = "{:.1f}", ratio: bool = False) -> str:
        cells = []
        for r in results:
            v = r.get(key)
            cell = _f(v, fmt)
            if ratio and ref is not None and v and ref.get(key) and r is not ref:
                x = v / ref[key]
                cell += f" ({x:.2f}×)" if x >= 1 else f" ({1 / x:.2f}× less)"
            cells.append(cell)
        return f"| {label} | " + " | ".join(cells) + " |"

    def inv(label: str, key: str, fmt: str = "{:.1f}") -> str:
        """A time: the ratio says how many times faster than torch."""
        cells = []
        for r in results:
            v = r.get(key)
            cell = _f(v, fmt)
            if ref is not None and v and ref.get(key) and r is not ref:
                cell += f" ({ref[key] / v:.2f}× faster)"
            cells.append(cell)
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        "## Encoder backends: torch fp32, ONNX fp32, ONNX int8 (`kazrag bench`)",
        "",
        info,
        "",
        "### Speed and memory",
        "",
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
        inv(
            "`kazrag ask` cold start, shell to printed answer (s, median of 3)",
            "cold_start_s",
            "{:.2f}",
        ),
        inv("same, CPU time used (user + system, s)", "cold_start_cpu_s", "{:.2f}"),
        inv("model load + first encode (s)", "load_s", "{:.2f}"),
        inv("single-query encode p50 (ms)", "query_p50_ms"),
        inv("single-query encode p95 (ms)", "query_p95_ms"),
        row("chunk-length passages/s", "chunk_rate", ratio=True),
        row("sentence-length passages/s", "sentence_rate", ratio=True),
        inv("index build, seed corpus (s)", "seed_build_s"),
        inv("index build, KazQAD contexts (s)", "kazqad_build_s"),
        inv("retrieval p95, seed corpus (ms)", "retrieval_p95_ms"),
        inv("full answer p95, seed corpus (ms)", "answer_p95_ms"),
        row("RSS after load (MB)", "rss_loaded_mb", "{:,.0f}"),
        row("RSS at the end (MB)", "rss_end_mb", "{:,.0f}"),
        row("query-vector cosine to torch, min / mean", "cos_min", "{:.4f}"),
    ]
    lines[-1] = (
        "| query-vector cosine to torch, min / mean | "
        + " | ".join(
            f"{_f(r.get('cos_min'), '{:.4f}')} / {_f(r.get('cos_mean'), '{:.4f}')}" for r in results
        )
        + " |"
    )
    # Physical limit: achieved FLOP/s on chunk-length passages against the measured peak.
    cells = []
    for r in results:
        toks = r.get("chunk_tokens") or 0
        fpt = flops_per_token(model_folder, toks)
        achieved = r["chunk_rate"] * toks * fpt / 1e9
        cells.append(f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%}")
    lines.append("| chunk passages: achieved FLOP/s ÷ measured peak | " + " | ".join(cells) + " |")
    toks = results[0].get("chunk_tokens") or 0
    lines += [
        "",
        f"Physical limit: a chunk-length passage is {toks:.0f} tokens on average (passage "
        f"prompt and special tokens included; sentences {results[0].get('sentence_tokens', 0):.0f}), "
        f"and one token costs {flops_per_token(model_folder, toks) / 1e6:.1f} MFLOP through the "
        "encoder (12 layers of 384 → 1,536 → 384: 2 × (4·384² + 2·384·1,536) for the "
        "matrices plus 4 × tokens × 384 for attention, per layer; embeddings, LayerNorm and "
        f"GELU left out). Peak: a float32 2048×2048 matrix product with numpy's BLAS on all "
        f"cores, best of 5, measured in this run: **{peak:.1f} GFLOP/s**. int8 can exceed the "
        "float32 peak (its multiply-adds are narrower), so its share is not bounded by 100 %.",
        "",
        "### Quality parity (each backend on an index it built)",
        "",
        "| figure | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for split in ("dev", "test"):
        for name in (
            "retrieval.hit@5",
            "retrieval.mrr@10",
            "answer.keyfacts_all",
            "citations.precision",
            "abstention.f1",
        ):
            vals = [r.get(split, {}).get(name) for r in results]
            lines.append(f"| {split}: {name} | " + " | ".join(_f(v) for v in vals) + " |")
        ref = results[0].get(split, {}).get("outcomes")
        if ref:
            cells = []
            for r in results:
                mine = r.get(split, {}).get("outcomes")
                cells.append("–" if not mine else f"{len(changed_rows(ref, mine))} of {len(ref)}")
            lines.append(
                f"| {split}: rows answered otherwise than {cols[0]} (evidence in the top 5, "
                "refused, key facts, citations on the evidence) | " + " | ".join(cells) + " |"
            )
    if any("kazqad" in r for r in results):
        for name in (
            "retrieval.hybrid.recall@5",
            "retrieval.hybrid.mrr@10",
            "retrieval.dense.recall@5",
            "retrieval.dense.mrr@10",
        ):
            vals = [r.get("kazqad", {}).get(name) for r in results]
            lines.append(f"| KazQAD: {name} | " + " | ".join(_f(v, "{:.4f}") for v in vals) + " |")
    lines += ["", *sentence_vectors_choice(results)]
    return "\n".join(lines) + "\n"


def sentence_vectors_choice(results: Sequence[dict[str, Any]]) -> list[str]:
    """Sentence vectors stored at index time (today) or encoded at question time for the
    sentences of the top chunks only: build time and size against answer latency."""
    lines = [
        "### Sentence vectors: stored at index time, or encoded per question?",
        "",
        "| backend | sentence share of the seed build (s of s) | sentences.npy per 1,000 chunks "
        "| extra encoding per answer if done at question time (ms) |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        chunks, sentences = r.get("seed_chunks"), r.get("seed_sentences")
        if not chunks or not sentences:
            continue
        per_chunk = sentences / chunks
        sent_s = sentences / r["sentence_rate"]
        chunk_s = chunks / r["chunk_rate"]
        # The answer scores the sentences of the top 5 chunks (neighbours overlap by one).
        per_answer = 5 * per_chunk / r["sentence_rate"] * 1000
        mb = per_chunk * 1000 * 384 * 4 / 2**20
        lines.append(
            f"| {r['backend']} | {sent_s:.1f} of {sent_s + chunk_s:.1f} | {mb:.1f} MB "
            f"| +{per_answer:.0f} |"
        )
    lines += [
        "",
        "Encoding at question time would save the sentence pass of every build (its share "
        "above) and the sentence vectors on disk and in RAM, but would add the extra encoding "
        "to every answer, several times today's answer p95, and the 16-client load test is "
        "bound by the same encoder. Sentence vectors stay stored at index time; the "
        "ignored-detail check (ru/en only) already encodes a few texts per question.",
    ]
    return lines


def run(
    out_path: Path | None,
    kazqad: Path | None,
    model: str = "multilingual-e5-small",
    backends: Sequence[str] = BACKENDS,
    workdir: Path | None = None,
    quick: bool = False,
) -> str:
    """Measure the backends, write the ``backends`` section of ``out_path`` (unless it is
    ``None``), return it."""
    from evals.bench import load_average, machine_info, write_section
    from rag.e5_folder import ensure_model

    load_start = load_average()
    started = time.perf_counter()
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        results = measure(backends, kazqad, model, workdir, quick)
    else:
        with tempfile.TemporaryDirectory(prefix="kazrag-backends-") as tmp:
            results = measure(backends, kazqad, model, Path(tmp), quick)
    peak = peak_gflops()
    m = machine_info()
    minutes, seconds = divmod(int(time.perf_counter() - started), 60)
    info = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {m['cpu']}, "
        f"Python {m['python']}, model `{model}`; load average {load_start} at the start and "
        f"{load_average()} at the end ({minutes} min {seconds} s). Each backend runs in a fresh "
        "process, one after the other, on the same texts and questions: the ratios between "
        "columns hold on a busy machine, the absolute times less so. Passages/s: "
        f"`embed_passages` on {TEXT_CAP} chunk and {TEXT_CAP} sentence texts spread over the "
        "KazQAD contexts (the seed corpus without `--kazqad`), batches of 32 texts (ONNX fp32: and "
        "at most 2,048 padded tokens, so long texts go a few at a time; ONNX int8: one text per "
        "run), after a warm-up." + (" Quick run: no question-set quality." if quick else "")
    )
    body = render(results, peak, Path(ensure_model(model)), info)
    if out_path is not None:
        write_section(out_path, body, name="backends")
    return body


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evals.experiments.backends [--kazqad FILE] [--out BENCHMARKS.md]``."""
    p = argparse.ArgumentParser(prog="python -m evals.experiments.backends", description=__doc__)
    p.add_argument("--kazqad", type=Path)
    p.add_argument("--model", default="multilingual-e5-small")
    p.add_argument(
        "--out", type=Path, help="the file to write (BENCHMARKS.md; a --quick run writes none)"
    )
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument(
        "--workdir", type=Path, help="keep each backend's figures here; a rerun reuses them"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="for iterating: no question-set quality runs "
        "(pass no --kazqad to skip the KazQAD build too)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.worker:
        worker(args.worker, args.kazqad, args.json, args.model, args.quick)
        return 0
    backends = args.backends.split(",")
    out = args.out or (None if args.quick else Path("BENCHMARKS.md"))
    print(run(out, args.kazqad, args.model, backends, args.workdir, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
