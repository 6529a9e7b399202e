"""How far can an evidence-first answer go? The limits behind issue 3's quality targets.

    python -m evals.experiments.ceiling [--kazqad FILE] [--write BENCHMARKS.md]

The evidence-first generator answers with sentences of the retrieved chunks. This study
measures, on the project's question set, what *any* choice among those sentences could reach
and how much better the sentence ranking gets with learned weights:

1. **Oracle key facts**: the share of answerable questions whose key facts all appear in the
   top N scored candidate sentences (N = 1, 3, 5, 10, all): an upper bound for an answer of N
   sentences, whatever picks them.
2. **Top-1 evidence accuracy** (the cited sentence overlaps the annotated evidence) of the
   generator's score against a logistic-regression reranker over the same signals plus
   structural ones (an interviewer's question, a list intro, a reference line, the previous
   sentence's similarity), trained (a) on the other split of the question set (cross-fitted)
   and (b) on KazQAD's answer sentences (``--kazqad``; 486 Kazakh questions whose answer
   sentence is retrieved). Citation precision cannot exceed this figure for a one-sentence
   answer, and falls as more sentences are cited.
3. **Abstention signals**: ROC AUC of question-level signals for "unanswerable" (1.0 perfect,
   0.5 chance) — the support score the threshold uses, the best dense cosine, the best stem
   overlap, the share of the question's stems absent from the corpus, typed support with the
   question's focus term, and the ignored-detail gain (:func:`rag.generation.detail_gain`).

Figures go to stdout and, with ``--write``, to the ``ceiling`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.evaluation import load_questions
from evals.metrics import normalize_answer
from rag.conversation import Turn, resolve
from rag.generation import (
    ScoredSentence,
    answer_type,
    detail_gain,
    focus_terms,
    score_sentences,
    support,
)
from rag.lexical import analyze
from rag.pipeline import Engine, answer, get_engine, make_engine, retrieve
from rag.schema import Sentence
from rag.settings import DEFAULT_CORPUS, from_env
from rag.sources import load_corpus, locate

_REFERENCE = re.compile(r"//|https?:|doi\.|www\.")
_END = re.compile(r"[.!?;»\")]$")
FEATURES = (
    "dense",
    "dense - best",
    "overlap",
    "overlap - best",
    "type cue",
    "focus term",
    "1/sqrt(chunk rank)",
    "is a question",
    "ends with ':'",
    "no final punctuation",
    "reference line",
    "log length",
    "previous is a question × its dense - best",
    "previous dense - best",
    "next dense - best",
)


@dataclass(eq=False)
class Case:
    """One question with its scored candidate sentences and their labels."""

    id: str
    question: str
    query: str
    lang: str
    type: str
    split: str
    answerable: bool
    keywords: tuple[str, ...]
    scored: list[ScoredSentence]
    labels: list[bool]
    features: np.ndarray


Near = Callable[[str, int, int], "Sentence | None"]


def _neighbours(engine: Engine) -> Near:
    """``near(doc, start, offset)``: the sentence ``offset`` places from the one at ``start``."""
    by_doc: dict[str, dict[int, Sentence]] = {}
    for ch in engine.index.chunks:
        for s in ch.sentences:
            by_doc.setdefault(ch.doc_id, {})[s.start] = s
    order = {d: [v[k] for k in sorted(v)] for d, v in by_doc.items()}
    pos = {(d, s.start): i for d, seq in order.items() for i, s in enumerate(seq)}

    def near(doc: str, start: int, offset: int) -> Sentence | None:
        i = pos.get((doc, start))
        if i is None or not 0 <= i + offset < len(order[doc]):
            return None
        return order[doc][i + offset]

    return near


def features(
    question: str, qvec: np.ndarray, scored: Sequence[ScoredSentence], engine: Engine, near: Near
) -> np.ndarray:
    """One row of :data:`FEATURES` per candidate sentence."""
    if not scored:
        return np.zeros((0, len(FEATURES)))
    best_d = max(s.dense for s in scored)
    best_o = max(s.overlap for s in scored)
    focus = focus_terms(question)

    def dense_of(doc: str, sent: Sentence | None) -> float:
        if sent is None:
            return 0.0
        v = engine.index.sentence_vector(doc, sent.start, sent.end)
        return float(v @ qvec) if v is not None else 0.0

    rows = []
    for s in scored:
        doc, text = s.hit.chunk.doc_id, s.sentence.text.strip()
        prev = near(doc, s.sentence.start, -1)
        nxt = near(doc, s.sentence.start, 1)
        prev_d = dense_of(doc, prev) - best_d
        rows.append(
            [
                s.dense,
                s.dense - best_d,
                s.overlap,
                s.overlap - best_o,
                s.cue,
                float(bool(focus & set(analyze(text)))) if focus else 0.0,
                1 / math.sqrt(s.hit.rank),
                float(text.endswith("?")),
                float(text.endswith(":")),
                float(not _END.search(text)),
                float(bool(_REFERENCE.search(text))),
                math.log(max(1, len(text))),
                float(prev is not None and prev.text.strip().endswith("?")) * prev_d,
                prev_d,
                dense_of(doc, nxt) - best_d,
            ]
        )
    return np.array(rows, dtype=np.float64)


def question_cases(engine: Engine) -> list[Case]:
    """The project's question set, scored the way the generator scores it."""
    docs = {d.doc_id: d for d in load_corpus(DEFAULT_CORPUS)}
    rows = load_questions(DEFAULT_CORPUS / "questions.jsonl")
    by_id = {r["id"]: r for r in rows}
    near = _neighbours(engine)
    cases = []
    for r in rows:
        history = []
        if r.get("follows"):
            prev = by_id[r["follows"]]["question"]
            history = [Turn(prev, answer(prev, engine=engine).answer)]
        query = resolve(r["question"], history)
        qvec = engine.embedder.embed_queries([query])[0]
        hits = retrieve(engine, query, engine.settings.top_k, qvec)
        scored = score_sentences(qvec, query, hits, engine.index, engine.generator)
        spans = [(e["doc_id"], locate(docs[e["doc_id"]], e["text"])) for e in r["evidence"]]
        labels = [
            any(
                sp is not None
                and s.hit.chunk.doc_id == d
                and s.sentence.start < sp[1]
                and sp[0] < s.sentence.end
                for d, sp in spans
            )
            for s in scored
        ]
        cases.append(
            Case(
                r["id"],
                r["question"],
                query,
                r["lang"],
                r["type"],
                r["split"],
                r["answerable"],
                tuple(r["keywords"]),
                scored,
                labels,
                features(query, qvec, scored, engine, near),
            )
        )
    return cases


def kazqad_cases(path: Path) -> list[Case]:
    """KazQAD questions whose answer sentence is among the retrieved candidates."""
    from evals.evaluation import DEFAULT_KAZQAD_INDEX, kazqad_index, load_kazqad

    docs, items = load_kazqad(path)
    settings = from_env().replace(index=DEFAULT_KAZQAD_INDEX, corpus=path, uploads=None)
    base = get_engine(from_env())
    kazqad_index(docs, DEFAULT_KAZQAD_INDEX, base.embedder, settings, path)
    engine = make_engine(settings, embedder=base.embedder)
    near = _neighbours(engine)
    cases = []
    for it in items:
        qvec = engine.embedder.embed_queries([it.question])[0]
        hits = retrieve(engine, it.question, engine.settings.top_k, qvec)
        scored = score_sentences(qvec, it.question, hits, engine.index, engine.generator)
        golds = [g for g in (normalize_answer(a) for a in it.answers) if g]
        labels = [
            s.hit.chunk.doc_id in it.relevant
            and any(f" {g} " in f" {normalize_answer(s.sentence.text)} " for g in golds)
            for s in scored
        ]
        if any(labels):
            cases.append(
                Case(
                    it.id,
                    it.question,
                    it.question,
                    "kk",
                    "kazqad",
                    "kazqad",
                    True,
                    (),
                    scored,
                    labels,
                    features(it.question, qvec, scored, engine, near),
                )
            )
    return cases


def _fit(cases: Sequence[Case]) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([c.features for c in cases if c.answerable and len(c.features)])
    y = np.concatenate([c.labels for c in cases if c.answerable and len(c.features)])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(x), y)
    return lambda f: model.decision_function(scaler.transform(f))


def top1(cases: Sequence[Case], rank: Callable[[Case], np.ndarray] | None = None) -> float:
    """Share of answerable cases whose best-ranked sentence is evidence."""
    hits = n = 0
    for c in cases:
        if not c.answerable or not c.scored:
            continue
        n += 1
        best = 0 if rank is None else int(np.argmax(rank(c)))
        hits += c.labels[best]
    return hits / n if n else float("nan")


def oracle_keyfacts(cases: Sequence[Case], n: int | None) -> float:
    """Share of answerable questions whose key facts are all in the top ``n`` sentences."""
    ok = total = 0
    for c in cases:
        if not c.answerable:
            continue
        total += 1
        text = " ".join(s.sentence.text for s in c.scored[:n]).casefold()
        ok += all(k.casefold() in text for k in c.keywords)
    return ok / total if total else float("nan")


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC: the chance that a positive scores above a negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


def abstention_signals(cases: Sequence[Case], engine: Engine) -> dict[str, Callable[[Case], float]]:
    """Question-level signals, each oriented so that higher means "unanswerable"."""
    known = engine.index.term_idf  # every term of the corpus's chunks

    def absent(c: Case) -> float:
        terms = set(analyze(c.query))
        return sum(t not in known for t in terms) / max(1, len(terms))

    def typed_focus(c: Case) -> float:
        if answer_type(c.question) not in ("date", "number", "person"):
            return -support(c.scored, c.query, engine.generator)
        focus = focus_terms(c.question)
        typed = [
            s.score
            for s in c.scored
            if s.cue > 0 and (not focus or focus & set(analyze(s.sentence.text)))
        ]
        return -(typed[0] if typed else c.scored[0].score - engine.generator.untyped_penalty)

    def ignored_detail(c: Case) -> float:
        own = engine.embedder.embed_queries([c.question])[0]
        return detail_gain(c.question, own, c.scored[0].vector, engine.embedder.embed_queries)

    return {
        "support score (the threshold's)": lambda c: -support(c.scored, c.query, engine.generator),
        "best dense cosine": lambda c: -max((s.dense for s in c.scored), default=0.0),
        "best stem overlap": lambda c: -max((s.overlap for s in c.scored), default=0.0),
        "question stems absent from the corpus": absent,
        "typed support with the focus term": typed_focus,
        "ignored-detail gain (used for ru + en)": ignored_detail,
    }


def report(cases: Sequence[Case], kazqad: Sequence[Case], engine: Engine) -> str:
    """The study's figures as Markdown."""
    dev = [c for c in cases if c.split == "dev"]
    test = [c for c in cases if c.split == "test"]
    lines = ["## Ceiling of the evidence-first answer (`python -m evals.experiments.ceiling`)", ""]
    n_ans = sum(c.answerable for c in cases)
    lines += [
        f"Question set: {len(cases)} questions ({n_ans} answerable); candidates are the "
        f"sentences of the top {engine.settings.top_k} retrieved chunks, ordered by the "
        "generator's score.",
        "",
        "**Oracle key facts** (all key facts inside the top N candidate sentences):",
        "",
        "| N | 1 | 3 | 5 | 10 | all candidates |",
        "|---|---|---|---|---|---|",
        "| answerable questions | "
        + " | ".join(f"{oracle_keyfacts(cases, n):.1%}" for n in (1, 3, 5, 10, None))
        + " |",
        "",
        "**Top-1 evidence accuracy** (the best-ranked sentence overlaps the evidence):",
        "",
        "| ranking | dev | test |",
        "|---|---|---|",
        f"| the generator's score (hand-set weights) | {top1(dev):.1%} | {top1(test):.1%} |",
    ]
    on_test, on_dev = _fit(dev), _fit(test)
    lines.append(
        "| logistic regression, trained on the other split | "
        f"{top1(dev, lambda c: on_dev(c.features)):.1%} | "
        f"{top1(test, lambda c: on_test(c.features)):.1%} |"
    )
    if kazqad:
        half, held = list(kazqad[::2]), list(kazqad[1::2])
        kq = _fit(half)
        lines.append(
            f"| logistic regression, trained on {len(half)} KazQAD questions | "
            f"{top1(dev, lambda c: kq(c.features)):.1%} | "
            f"{top1(test, lambda c: kq(c.features)):.1%} |"
        )
        lines += [
            "",
            f"On {len(held)} held-out KazQAD questions: generator's score {top1(held):.1%}, "
            f"KazQAD-trained reranker {top1(held, lambda c: kq(c.features)):.1%}.",
        ]
    lines += [
        "",
        "**Abstention signals** (ROC AUC for telling the 17 unanswerable questions from the "
        "answerable ones; 0.5 is chance):",
        "",
        "| signal | kk | ru + en |",
        "|---|---|---|",
    ]
    for name, signal in abstention_signals(cases, engine).items():
        row = []
        for group in (
            [c for c in cases if c.lang == "kk"],
            [c for c in cases if c.lang != "kk"],
        ):
            pos = [signal(c) for c in group if not c.answerable and c.scored]
            neg = [signal(c) for c in group if c.answerable and c.scored]
            row.append(f"{auc(pos, neg):.2f}")
        lines.append(f"| {name} | {' | '.join(row)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the study and print (and optionally write) its figures."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kazqad", type=Path, help="KazQAD validation JSONL (reranker training)")
    ap.add_argument("--write", type=Path, help="write the figures to this BENCHMARKS.md")
    args = ap.parse_args()
    engine = get_engine(from_env())
    cases = question_cases(engine)
    kazqad = kazqad_cases(args.kazqad) if args.kazqad else []
    text = report(cases, kazqad, engine)
    print(text)
    if args.write:
        from evals.bench import write_section

        write_section(args.write, text, "ceiling")


if __name__ == "__main__":
    main()
