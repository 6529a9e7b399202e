"""Calibrate the abstention thresholds of the evidence-first generator on the dev split.

    python -m evals.experiments.calibrate [--index DIR]

For every question the best sentence's support score is recorded (the number the generator
compares with ``GeneratorConfig.abstain_kk`` / ``abstain_other``). The threshold is the one that
maximises abstention F1 on the dev split while abstaining on at most 10 % of answerable
questions. Then, for Russian and English questions the support score lets through, the
ignored-detail gain (:func:`rag.generation.detail_gain`) is calibrated the same way
(``GeneratorConfig.detail_gain_other``). Figures for the test split are printed for comparison,
not used.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from evals.evaluation import load_questions
from rag.conversation import Turn, resolve
from rag.generation import GeneratorConfig, detail_gain, score_sentences, support
from rag.pipeline import get_engine, retrieve
from rag.settings import DEFAULT_CORPUS, from_env


def support_scores(
    split: str, index: Path | None, gains: dict[str, float] | None = None
) -> list[tuple[str, bool, str, float]]:
    """(id, answerable, lang, support) for each question of the split.

    ``gains``, when given, receives each question's ignored-detail gain.
    """
    engine = get_engine(from_env(index=index))
    rows = load_questions(DEFAULT_CORPUS / "questions.jsonl")
    by_id = {r["id"]: r for r in rows}
    out = []
    for r in rows:
        if split != "all" and r["split"] != split:
            continue
        history = [Turn(by_id[r["follows"]]["question"])] if r.get("follows") else []
        query = resolve(r["question"], history)
        hits = retrieve(engine, query, engine.settings.top_k)
        qvec = engine.embedder.embed_queries([query])[0]
        scored = score_sentences(qvec, query, hits, engine.index, engine.generator)
        out.append((r["id"], r["answerable"], r["lang"], support(scored, query, engine.generator)))
        if gains is not None and scored:
            own = (
                qvec
                if query == r["question"]
                else engine.embedder.embed_queries([r["question"]])[0]
            )
            gains[r["id"]] = detail_gain(
                r["question"], own, scored[0].vector, engine.embedder.embed_queries
            )
    return out


def best_threshold(scores: list[tuple[str, bool, str, float]], max_false: float = 0.10) -> float:
    """The threshold maximising abstention F1 with false abstentions <= ``max_false``."""
    answerable = [s for _, a, _, s in scores if a]
    unanswerable = [s for _, a, _, s in scores if not a]
    best, best_f1 = 0.0, -1.0
    for t in sorted({s for *_, s in scores} | {0.0}):
        t = t + 1e-6
        tp = sum(s < t for s in unanswerable)
        fp = sum(s < t for s in answerable)
        if fp / max(1, len(answerable)) > max_false:
            continue
        prec = tp / max(1, tp + fp)
        rec = tp / max(1, len(unanswerable))
        f1 = 2 * prec * rec / max(1e-9, prec + rec)
        if f1 > best_f1:
            best, best_f1 = t, f1
    return math.ceil(best * 10000) / 10000  # round up: the score itself must fall below


def report(scores: list[tuple[str, bool, str, float]], t: float, label: str) -> None:
    """Print abstention rates at threshold ``t``."""
    ans = [s for _, a, _, s in scores if a]
    una = [s for _, a, _, s in scores if not a]
    print(
        f"{label}: threshold {t:.4f}: abstains on {sum(s < t for s in una)}/{len(una)} "
        f"unanswerable, {sum(s < t for s in ans)}/{len(ans)} answerable"
    )


def main() -> None:
    """Print the support scores and the calibrated threshold."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path)
    args = ap.parse_args()
    dev_gain: dict[str, float] = {}
    test_gain: dict[str, float] = {}
    dev = support_scores("dev", args.index, dev_gain)
    test = support_scores("test", args.index, test_gain)
    for qid, a, lang, s in sorted(dev, key=lambda x: x[3]):
        print(f"  {qid} {'A' if a else 'U'} {lang} {s:.4f}")
    cfg = GeneratorConfig()
    for label, langs in (("kk", {"kk"}), ("ru+en", {"ru", "en"})):
        d = [x for x in dev if x[2] in langs]
        te = [x for x in test if x[2] in langs]
        t = best_threshold(d)
        report(d, t, f"{label} dev ")
        report(te, t, f"{label} test")
    # The ignored-detail gain, on the ru/en questions the support threshold lets through; the
    # false-abstention budget is what the support threshold left of the 10 % over the split.
    # Scores are negated gains, so that best_threshold's "abstain below" applies.
    Row = tuple[str, bool, str, float]

    def passed(rows: list[Row], gains: dict[str, float]) -> list[Row]:
        return [
            (qid, a, lang, -gains[qid])
            for qid, a, lang, s in rows
            if lang != "kk" and qid in gains and s >= cfg.threshold(lang)
        ]

    kept_dev, kept_test = passed(dev, dev_gain), passed(test, test_gain)
    print("ignored-detail gain of the ru+en questions the support threshold answers (dev):")
    for qid, a, lang, g in sorted(kept_dev, key=lambda x: x[3]):
        print(f"  {qid} {'A' if a else 'U'} {lang} gain {-g:.4f}")
    n_ans = sum(a for _, a, _, _ in dev)
    already = sum(a and s < cfg.threshold(lang) for _, a, lang, s in dev)
    budget = max(0.0, (0.10 * n_ans - already) / max(1, sum(a for _, a, _, _ in kept_dev)))
    t = best_threshold(kept_dev, max_false=budget)
    report(kept_dev, t, f"ru+en dev : ignored-detail gain above {-t:.4f}")
    report(kept_test, t, f"ru+en test: ignored-detail gain above {-t:.4f}")


if __name__ == "__main__":
    main()
