"""Tune the evidence-first generator's weights on the dev split.

    python -m evals.experiments.tune_generator [--split dev]

Retrieval and sentence vectors are computed once per question; each weight setting then only
re-scores and re-selects sentences. Reported per setting: the share of answerable questions
whose answer holds all key facts, and citation precision (cited span overlaps evidence).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
from typing import Any

from evals.evaluation import load_questions
from rag.conversation import Turn, resolve
from rag.generation import GeneratorConfig, compose, score_sentences, select
from rag.pipeline import get_engine, retrieve
from rag.settings import DEFAULT_CORPUS, from_env
from rag.sources import load_corpus, locate


def main() -> None:
    """Grid-search the weights and print the best settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev")
    args = ap.parse_args()
    engine = get_engine(from_env())
    docs = {d.doc_id: d for d in load_corpus(DEFAULT_CORPUS)}
    rows = load_questions(DEFAULT_CORPUS / "questions.jsonl")
    by_id = {r["id"]: r for r in rows}
    cases = []
    for r in rows:
        if r["split"] != args.split or not r["answerable"]:
            continue
        history = [Turn(by_id[r["follows"]]["question"])] if r.get("follows") else []
        query = resolve(r["question"], history)
        qvec = engine.embedder.embed_queries([query])[0]
        hits = retrieve(engine, query, engine.settings.top_k, qvec)
        spans = [(e["doc_id"], locate(docs[e["doc_id"]], e["text"])) for e in r["evidence"]]
        cases.append((r, query, qvec, hits, spans))
    grid: dict[str, list[Any]] = {
        "w_overlap": [0.2, 0.35, 0.5],
        "w_cue": [0.06, 0.12, 0.2],
        "margin": [0.03, 0.06, 0.1],
        "max_sentences": [1, 2, 3],
    }
    results = []
    for values in itertools.product(*grid.values()):
        cfg = dataclasses.replace(GeneratorConfig(), **dict(zip(grid, values, strict=True)))
        allkeys = prec_hits = prec_n = 0
        for r, query, qvec, hits, spans in cases:
            scored = score_sentences(qvec, query, hits, engine.index, cfg)
            text, cites = compose(select(scored, cfg), r["lang"])
            low = text.lower()
            allkeys += all(k.lower() in low for k in r["keywords"])
            for c in cites:
                prec_n += 1
                prec_hits += any(
                    sp and c.doc_id == d and c.start < sp[1] and sp[0] < c.end for d, sp in spans
                )
        n = len(cases)
        results.append(
            (allkeys / n, prec_hits / max(1, prec_n), dict(zip(grid, values, strict=True)))
        )
    results.sort(key=lambda x: -(x[0] + 0.5 * x[1]))
    print(
        f"{len(cases)} answerable {args.split} questions; best settings (keyfacts_all, cit. precision):"
    )
    for kf, pr, params in results[:12]:
        print(f"  {kf:.3f} {pr:.3f} {params}")
    base = next(x for x in results if x[2] == {k: getattr(GeneratorConfig(), k) for k in grid})
    print(f"current defaults: {base[0]:.3f} {base[1]:.3f} {base[2]}")


if __name__ == "__main__":
    main()
