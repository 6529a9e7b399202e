"""Measure the multi-sentence answer rules by question type, on and off, on one split.

    python -m evals.experiments.tune_follow [--split dev] [--follow 0,3,5] [--margin 0.1,0.15]
        [--spread off,on] [--promote 0,0.1] [--skip-questions 0,1] [--round2 0,1]

Every variant answers the split through the real pipeline (``evals.evaluation.run_questions``)
with one engine: following the document (``GeneratorConfig.max_follow``) and the multi-subject
spread of passages and sentences (``rag.retriever.multi_subject``) switched on or off. Printed
per variant and question type: answers holding all key facts, citation precision, hit@5 and
MRR@10. Rules and constants are chosen on dev; test is reported, not tuned.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import rag.generators.extractive
import rag.pipeline
from evals.evaluation import DEFAULT_QUESTIONS, load_questions, run_questions, select_questions
from evals.metrics import figures
from rag.pipeline import Engine, get_engine
from rag.retriever import multi_subject, subject_split
from rag.settings import from_env
from rag.sources import load_corpus

TYPES = ("list", "why", "multi_doc", "fact", "number", "date", "followup")


def measure(engine: Engine, rows: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> dict:
    """The figures of one run over ``rows`` (overall and ``by_type``)."""
    docs = load_corpus(engine.settings.corpus)
    return figures([rec for rec, _ in run_questions(rows, all_rows, engine, docs)])


def _row(name: str, figs: dict) -> str:
    def cell(f: dict) -> str:
        kf = f["answer"]["keyfacts_all"]
        pr = f["citations"]["precision"]
        h5 = f["retrieval"]["hit@5"]
        mrr = f["retrieval"]["mrr@10"]
        fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
        return f"{fmt(kf)} / {fmt(pr)} / {fmt(h5)} / {fmt(mrr)}"

    parts = [f"all {cell(figs)}"]
    for t in TYPES:
        if t in figs["by_type"]:
            parts.append(f"{t} (n={figs['by_type'][t]['answer']['n']}) {cell(figs['by_type'][t])}")
    return f"{name}\n  " + "\n  ".join(parts)


def main() -> None:
    """Run the variants and print key facts / citation precision / hit@5 / MRR@10 by type."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev")
    ap.add_argument("--follow", default="0,5", help="max_follow values to try")
    ap.add_argument("--margin", default="0.15", help="spread_margin values to try")
    ap.add_argument("--promote", default="0.1", help="promote_margin values to try")
    ap.add_argument("--spread", default="off,on", help="spread variants to try")
    ap.add_argument(
        "--skip-questions",
        default="1",
        help="skip_questions values (1: source questions not quoted)",
    )
    ap.add_argument(
        "--round2",
        default="1",
        help="the second round's rules (interviewer turns, one sentence per subject, counts): 0/1",
    )
    args = ap.parse_args()
    engine = get_engine(from_env())
    all_rows = load_questions(DEFAULT_QUESTIONS)
    # The headline figures are those of the questions as written (``kazrag eval`` reports the
    # respelled variants by typing form only).
    rows = [r for r in select_questions(all_rows, args.split, None) if not r.get("form")]
    base = engine.generator
    # The pipeline (passages, per-subject queries) and the generator (sentences) ask
    # rag.retriever whether a question has several subjects; a variant without the spread
    # replaces the names they look up (experiment only).
    never: Callable[[str], bool] = lambda q: False  # noqa: E731
    nothing: Callable[[str], None] = lambda q: None  # noqa: E731
    for spread_on in [v == "on" for v in args.spread.split(",")]:
        rag.pipeline.multi_subject = multi_subject if spread_on else never  # type: ignore[assignment]
        rag.pipeline.subject_split = subject_split if spread_on else nothing  # type: ignore[assignment]
        rag.generators.extractive.subject_split = subject_split if spread_on else nothing  # type: ignore[assignment]
        rag.generators.extractive.multi_subject = multi_subject if spread_on else never  # type: ignore[assignment]
        margins = [float(m) for m in args.margin.split(",")] if spread_on else [base.spread_margin]
        for follow in [int(x) for x in args.follow.split(",")]:
            for margin in margins:
                for promote, skip, round2 in [
                    (float(p), q == "1", r == "1")
                    for p in args.promote.split(",")
                    for q in args.skip_questions.split(",")
                    for r in args.round2.split(",")
                ]:
                    # A new engine view: its answerer is made from the configuration it gets
                    # (assigning engine.generator would leave the answerer on the old one).
                    cfg = dataclasses.replace(
                        base,
                        max_follow=follow,
                        spread_margin=margin,
                        promote_margin=promote,
                        skip_questions=skip,
                        skip_asking_turns=round2,
                        cover_subjects=round2,
                        cover_counts=round2,
                        w_counted=base.w_counted if round2 else 0.0,
                    )
                    view = dataclasses.replace(engine, generator=cfg)
                    name = (
                        f"spread={'on' if spread_on else 'off'} margin={margin} "
                        f"max_follow={follow} promote={promote} skip_questions={int(skip)} "
                        f"round2={int(round2)}"
                    )
                    print(_row(name, measure(view, rows, all_rows)), flush=True)
    rag.pipeline.multi_subject = multi_subject  # type: ignore[assignment]
    rag.pipeline.subject_split = subject_split  # type: ignore[assignment]
    rag.generators.extractive.subject_split = subject_split  # type: ignore[assignment]
    rag.generators.extractive.multi_subject = multi_subject  # type: ignore[assignment]


if __name__ == "__main__":
    main()
