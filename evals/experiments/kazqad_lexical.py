"""Which lexical analyzer retrieves Kazakh best? Open-book retrieval on KazQAD (kk validation).

Corpus: the 697 distinct contexts; queries: the 545 distinct questions; a context is relevant
to a question if any row with that question has that context. For each variant of
:class:`rag.lexical.LexicalConfig` it prints Recall@1/5/10 (share of questions with a relevant
context in the top k, the definition behind the published floor), the share of each question's
relevant contexts found in the top 10 ("all@10"), MRR@10, nDCG@10, the mean and 95th
percentile time of one query (analyze + score + top-10, single thread), the build time, and a
paired-bootstrap 95% interval of the MRR@10 difference against the published floor
(plain BM25, words cut to five letters).

    python -m evals.experiments.kazqad_lexical            # the full table
    python -m evals.experiments.kazqad_lexical --quick    # a handful of rows
    python -m evals.experiments.kazqad_lexical --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.lexical import (
    DEFAULT_CONFIG,
    BM25Index,
    LexicalConfig,
    analyze,
)

# shared/ sits beside the repository (KAZQAD_PATH overrides).
DEFAULT_DATA = Path(
    os.environ.get(
        "KAZQAD_PATH",
        Path(__file__).resolve().parents[3]
        / "shared/benchmarks/kazqad/kazqad-reading-comprehension-v1.0-kk-validation.jsonl",
    )
)
FLOOR = LexicalConfig(method="prefix", prefix_len=5, stopwords="none", k1=1.5, b=0.75)
KS = (1, 5, 10)


@dataclass
class Benchmark:
    contexts: list[str]
    titles: list[str]
    questions: list[str]
    relevant: list[set[int]]


def load_kazqad(path: Path = DEFAULT_DATA) -> Benchmark:
    contexts: dict[str, int] = {}
    titles: list[str] = []
    questions: dict[str, set[int]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            if row["context"] not in contexts:
                contexts[row["context"]] = len(contexts)
                titles.append(row.get("title", ""))
            questions.setdefault(row["question"], set()).add(contexts[row["context"]])
    return Benchmark(list(contexts), titles, list(questions), list(questions.values()))


@dataclass
class Result:
    name: str
    config: LexicalConfig
    per_query_rr: np.ndarray  # reciprocal rank @10 per question
    recall: dict[int, float]  # hit rate: share of questions with a relevant context in the top k
    frac_recall10: float  # share of each question's relevant contexts in the top 10
    mrr10: float
    ndcg10: float
    ms_mean: float
    ms_p95: float
    build_s: float


def evaluate(
    bench: Benchmark,
    config: LexicalConfig,
    name: str = "",
    with_titles: bool = False,
    transform: Callable[[str], str] | None = None,
) -> Result:
    """Index the contexts, ask every question; ``transform`` rewrites docs and queries first
    (used for dictionary lemmatisers: text → space-joined lemmas; its time is counted)."""
    docs = (
        [f"{t}. {c}" for t, c in zip(bench.titles, bench.contexts, strict=True)]
        if with_titles
        else bench.contexts
    )
    prep = transform or (lambda text: text)
    t0 = time.perf_counter()
    index = BM25Index.build([prep(d) for d in docs], config)
    build_s = time.perf_counter() - t0
    for q in bench.questions[:20]:  # warm-up (imports, numpy paths)
        index.search(prep(q), 10)
    hits_at: dict[int, list[float]] = {k: [] for k in KS}
    frac10: list[float] = []
    rr, ndcg, times = [], [], []
    for question, rel in zip(bench.questions, bench.relevant, strict=True):
        t = time.perf_counter()
        ranked = [row for row, _ in index.search(prep(question), 10)]
        times.append((time.perf_counter() - t) * 1000)
        for k in KS:
            hits_at[k].append(float(bool(rel.intersection(ranked[:k]))))
        frac10.append(len(rel.intersection(ranked)) / len(rel))
        first = next((i for i, row in enumerate(ranked) if row in rel), None)
        rr.append(0.0 if first is None else 1.0 / (first + 1))
        dcg = sum(1 / math.log2(i + 2) for i, row in enumerate(ranked) if row in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg.append(dcg / ideal)
    return Result(
        name=name or config.name,
        config=config,
        per_query_rr=np.asarray(rr),
        recall={k: float(np.mean(v)) for k, v in hits_at.items()},
        frac_recall10=float(np.mean(frac10)),
        mrr10=float(np.mean(rr)),
        ndcg10=float(np.mean(ndcg)),
        ms_mean=float(np.mean(times)),
        ms_p95=float(np.percentile(times, 95)),
        build_s=build_s,
    )


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of mean(a - b) over questions resampled with replacement."""
    rng = np.random.default_rng(seed)
    diff = a - b
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ------------------------------------------------------------------------------------------
# Dictionary lemmatisers, compared through ``transform``: words are tokenised and stop-worded
# by rag.lexical (method "none"), then replaced by a lemma looked up once per word type.

_WORDS_ONLY = LexicalConfig(method="none")


def lemma_transform(lemma_of: Callable[[str], str]) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def transform(text: str) -> str:
        out = []
        for word in analyze(text, _WORDS_ONLY):
            lemma = cache.get(word)
            if lemma is None:
                lemma = cache[word] = lemma_of(word) or word
            out.append(lemma)
        return " ".join(out)

    return transform


def kazstem_lemmatiser(pick: str = "shortest") -> tuple[Callable[[str], str] | None, str]:
    """kazstem (``qazmorph``) lemma of one word: the first or the shortest of its readings."""
    try:
        from qazmorph import Analyzer

        analyzer = Analyzer(guess=True)
        analyzer.analyze("кітаптар")
    except Exception as exc:  # any failure means "not usable here"
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def lemma_of(word: str) -> str:
        lemmas = [
            a.lemma.casefold()
            for tok in analyzer.analyze(word).tokens
            for a in tok.analyses
            if a.lemma and a.upos != "X"
        ]
        if not lemmas:
            return word
        return lemmas[0] if pick == "first" else min(lemmas, key=len)

    return lemma_of, "ok"


def hunspell_lemmatiser(
    words: Iterable[str], pick: str = "shortest", dictionary: str = "kk_KZ"
) -> tuple[Callable[[str], str] | None, str]:
    """hunspell-kk stems (``hunspell -s``; Debian ``hunspell`` + ``hunspell-kk``), looked up in
    one batch for all ``words``; unknown words stay as they are."""
    exe = shutil.which("hunspell")
    if exe is None:
        return None, "no hunspell binary (apt-get install hunspell hunspell-kk)"
    unique = sorted(set(words))
    try:
        proc = subprocess.run(
            [exe, "-d", dictionary, "-s", "-i", "utf-8"],
            input="\n".join(unique) + "\n",
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"hunspell failed: {exc}"
    stems: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            stems.setdefault(parts[0], []).append(parts[1].casefold())
    if not stems:
        return None, f"hunspell dictionary {dictionary} gave no stems"
    table = {}
    for word, cands in stems.items():
        proper = [c for c in cands if c != word] or cands
        table[word] = proper[0] if pick == "first" else min(proper, key=len)
    return (lambda word: table.get(word, word)), "ok"


LemmaRow = tuple[str, LexicalConfig, Callable[[str], str]]


def lemmatiser_rows(bench: Benchmark) -> tuple[list[LemmaRow], list[str]]:
    rows: list[LemmaRow] = []
    notes: list[str] = []
    plain = LexicalConfig(method="none", k1=1.5, b=0.75)
    cut6 = LexicalConfig(method="prefix", prefix_len=6, k1=1.5, b=0.75)
    for pick in ("first", "shortest"):
        lemma_of, why = kazstem_lemmatiser(pick)
        if lemma_of is None:
            notes.append(f"kazstem (qazmorph) rows skipped: {why}")
            break
        t = lemma_transform(lemma_of)
        rows += [(f"kazstem {pick} lemma", plain, t), (f"kazstem {pick} lemma + prefix6", cut6, t)]
    words = {w for text in bench.contexts + bench.questions for w in analyze(text, _WORDS_ONLY)}
    for pick in ("first", "shortest"):
        lemma_of, why = hunspell_lemmatiser(words, pick)
        if lemma_of is None:
            notes.append(f"hunspell-kk rows skipped: {why}")
            break
        t = lemma_transform(lemma_of)
        rows += [
            (f"hunspell-kk {pick} stem", plain, t),
            (f"hunspell-kk {pick} stem + prefix6", cut6, t),
        ]
    return rows, notes


def variants(quick: bool = False) -> list[tuple[str, LexicalConfig, bool]]:
    """(label, config, with_titles) rows of the table, in order."""
    base = LexicalConfig(k1=1.5, b=0.75)  # bm25s defaults for the analyzer comparison
    rows: list[tuple[str, LexicalConfig, bool]] = [
        ("floor: prefix5, no stop-words", FLOOR, False),
        ("none, no stop-words", replace(base, method="none", stopwords="none"), False),
        ("none", replace(base, method="none"), False),
    ]
    rows += [
        (f"prefix{n}", replace(base, method="prefix", prefix_len=n), False) for n in (4, 5, 6, 7)
    ]
    rows += [
        (
            "prefix5, function stop-words only",
            replace(base, method="prefix", prefix_len=5, stopwords="function"),
            False,
        ),
        ("suffix nominal min2", replace(base, method="suffix", min_stem=2), False),
        ("suffix nominal min3", replace(base, method="suffix", min_stem=3), False),
        ("suffix nominal min4", replace(base, method="suffix", min_stem=4), False),
        ("suffix full min3", replace(base, method="suffix", suffix_set="full", min_stem=3), False),
        ("suffix full min4", replace(base, method="suffix", suffix_set="full", min_stem=4), False),
    ]
    rows += [
        (
            f"suffix nominal min3 + prefix{n}",
            replace(base, method="suffix_prefix", prefix_len=n),
            False,
        )
        for n in (5, 6, 7, 8)
    ]
    rows += [
        (
            f"suffix full min3 + prefix{n}",
            replace(base, method="suffix_prefix", suffix_set="full", prefix_len=n),
            False,
        )
        for n in (5, 6, 7)
    ]
    chosen = DEFAULT_CONFIG
    rows += [
        ("DEFAULT, no stop-words", replace(chosen, stopwords="none"), False),
        ("DEFAULT, function stop-words only", replace(chosen, stopwords="function"), False),
    ]
    for k1 in (0.9, 1.2, 1.5, 2.0):
        for b in (0.5, 0.75, 0.9):
            if (k1, b) == (chosen.k1, chosen.b):
                continue
            rows.append((f"DEFAULT analyzer, k1={k1} b={b}", replace(chosen, k1=k1, b=b), False))
    for method in ("robertson", "atire", "bm25+", "bm25l"):
        rows.append(
            (f"DEFAULT analyzer, bm25s method={method}", replace(chosen, bm25_method=method), False)
        )
    rows += [
        ("DEFAULT (chosen)", chosen, False),
        ("DEFAULT, title prepended to context (info)", chosen, True),
    ]
    if quick:
        keep = {
            "floor: prefix5, no stop-words",
            "none",
            "prefix5",
            "suffix nominal min3",
            "suffix nominal min3 + prefix6",
            "DEFAULT (chosen)",
        }
        rows = [r for r in rows if r[0] in keep]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="only a few rows")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    bench = load_kazqad(args.data)
    print(
        f"KazQAD kk validation: {len(bench.contexts)} contexts, {len(bench.questions)} questions, "
        f"{sum(map(len, bench.relevant))} relevant pairs"
    )
    print(f"DEFAULT = rag.lexical.DEFAULT_CONFIG = {json.dumps(DEFAULT_CONFIG.to_json())}")
    extra_rows: list[LemmaRow]
    if args.quick:
        extra_rows, notes = [], ["dictionary lemmatisers skipped (--quick)"]
    else:
        extra_rows, notes = lemmatiser_rows(bench)
    for note in notes:
        print(note)
    floor = evaluate(bench, FLOOR)
    header = (
        f"{'variant':<48} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'all@10':>6} {'MRR@10':>7} "
        f"{'nDCG10':>7} {'ms/q':>6} {'p95ms':>6} {'build s':>7}  dMRR vs floor [95% CI]"
    )
    print(header)
    print("-" * len(header))
    out = []
    rows: list[tuple[str, LexicalConfig, bool, Callable[[str], str] | None]] = [
        (label, config, with_titles, None) for label, config, with_titles in variants(args.quick)
    ]
    rows += [(label, config, False, transform) for label, config, transform in extra_rows]
    for label, config, with_titles, transform in rows:
        if config == FLOOR and not with_titles and transform is None:
            res = floor
        else:
            res = evaluate(bench, config, label, with_titles, transform)
        lo, hi = paired_bootstrap(res.per_query_rr, floor.per_query_rr)
        delta = res.mrr10 - floor.mrr10
        print(
            f"{label:<48} {res.recall[1]:6.3f} {res.recall[5]:6.3f} {res.recall[10]:6.3f} "
            f"{res.frac_recall10:6.3f} {res.mrr10:7.3f} {res.ndcg10:7.3f} "
            f"{res.ms_mean:6.2f} {res.ms_p95:6.2f} {res.build_s:7.2f}  "
            f"{delta:+.3f} [{lo:+.3f}, {hi:+.3f}]",
            flush=True,
        )
        out.append(
            {
                "variant": label,
                "config": config.to_json(),
                "with_titles": with_titles,
                "recall@1": res.recall[1],
                "recall@5": res.recall[5],
                "recall@10": res.recall[10],
                "all_relevant_recall@10": res.frac_recall10,
                "mrr@10": res.mrr10,
                "ndcg@10": res.ndcg10,
                "ms_per_query_mean": res.ms_mean,
                "ms_per_query_p95": res.ms_p95,
                "build_seconds": res.build_s,
                "delta_mrr_vs_floor_ci95": [lo, hi],
            }
        )
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
