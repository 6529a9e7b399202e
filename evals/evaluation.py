"""``kazrag eval``: score the system on the question set or on KazQAD, write a report.

Two runs share one output layout (``--out``, default ``reports/eval``; ``reports/kazqad`` for
KazQAD when ``--out`` is not given)::

    report.md        the figures, the issue's targets with pass/fail, breakdowns, failures
    figures.json     every figure; its dotted keys are the names ``--min`` and ``--compare`` use
    questions.jsonl  one line per question, sorted by id, so two runs can be diffed
    chart.png        the main figures by language and by question type (or by retrieval mode)

*Question set* (``--questions``, default ``seeds/questions.jsonl``; ``--split dev|test|all``):
each question is answered through :func:`rag.pipeline.answer`, exactly as the chat would; a
follow-up gets ``history = [Turn(previous question, previous answer)]`` from the system's own
answer to the item it ``follows`` (answered first, unscored, when it is outside the selection).
Evidence quotes are mapped to raw spans with :func:`rag.sources.locate` in the documents of
``settings.corpus``; the retrieval figures use the same resolved query searched 10 deep (the
answer itself reads the top ``top_k``). The figure definitions live in ``evals/metrics.py``.

*KazQAD* (``--kazqad FILE``), open book: the 697 distinct contexts are indexed once into
``index/kazqad/`` (or ``--index``; reused while the model, chunking and contexts match), each of
the 545 distinct questions is searched in lexical (BM25), dense and hybrid mode and answered.
A context split into several chunks counts once, at its best chunk's rank. The answer is checked
three ways: does a normalised gold string occur in the answer text; and SQuAD exact match /
token F1 of the *shortest answer span the system commits to*. The offline generator answers with
whole cited sentences and has no span extractor, so that span is the first cited sentence
(the quote of citation [1]); EM is therefore near 0 by construction and F1 is diluted by the
rest of the sentence. The paper's reader extracts spans: its figures are shown for context only.

``--min METRIC=VALUE`` (repeatable) is a regression gate: the run exits 1 when a figure is below
VALUE (``METRIC<=VALUE`` for lower-is-better figures such as ``latency_ms.total.p95``), and 2
when a name is not a figure. ``--compare old/figures.json`` adds the previous value and the
change to the report (and the questions whose outcome changed, when ``questions.jsonl`` sits
beside the old figures).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.metrics import (
    KAZQAD_FLOOR,
    KAZQAD_MODES,
    KAZQAD_PAPER,
    Figures,
    KazqadRecord,
    Record,
    Scores,
    Span,
    Threshold,
    ThresholdError,
    check_names,
    compare,
    contains_answer,
    figures,
    flatten,
    gate,
    kazqad_figures,
    kazqad_scores,
    overlaps,
    parse_threshold,
    score,
)
from rag.conversation import Turn
from rag.embedding import Embedder
from rag.index import TEXTS, CorpusIndex, open_index
from rag.schema import Answer, Document
from rag.settings import PROJECT_ROOT, Settings

logger = logging.getLogger(__name__)

DEFAULT_QUESTIONS = PROJECT_ROOT / "seeds" / "questions.jsonl"
DEFAULT_KAZQAD_INDEX = PROJECT_ROOT / "index" / "kazqad"
DEFAULT_OUT = Path("reports/eval")
KAZQAD_OUT = Path("reports/kazqad")
# Retrieval figures go to rank 10 (MRR@10, nDCG@10); KazQAD searches deeper so that ten
# distinct contexts remain after merging the chunks of one context.
RETRIEVAL_DEPTH = 10
KAZQAD_SEARCH_DEPTH = 30


class EvalError(ValueError):
    """An evaluation input a user can fix (missing file, bad question line); exit code 2."""


# =========================================================================== question set


def load_questions(path: Path, strict: bool = True) -> list[dict[str, Any]]:
    """Read a question-set JSONL file; every line needs ``id`` and ``question``.

    ``strict=False`` (``kazrag batch``) keeps a row whose question is empty or not a string, so
    that it gets its own per-row error instead of the whole file being refused.
    """
    if not path.is_file():
        raise EvalError(f"questions file not found: {path}")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            needs = ("id", "question")
            if not isinstance(row, dict) or not all(
                (k in row) if not strict else row.get(k) for k in needs
            ):
                raise EvalError(f"{path}:{n}: each line needs at least 'id' and 'question'")
            row["id"] = str(row["id"])
            rows.append(row)
    ids = Counter(r["id"] for r in rows)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise EvalError(f"{path}: duplicate question ids {', '.join(dup[:5])}")
    if not rows:
        raise EvalError(f"{path}: no questions")
    return rows


def select_questions(
    rows: Sequence[dict[str, Any]], split: str = "all", limit: int | None = None
) -> list[dict[str, Any]]:
    """The questions of one split (``all`` keeps every row), the first ``limit`` of them."""
    chosen = [r for r in rows if split == "all" or r.get("split") == split]
    return chosen[:limit] if limit is not None else chosen


# A quote placed approximately must share an exact run of this many letters and digits (or a
# third of the quote, if shorter) with the document: shorter runs occur by chance.
MIN_ANCHOR = 20


def approximate_span(doc: Document, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` sits in ``doc`` when an exact match fails (a document read by OCR).

    Both are reduced to casefolded letters and digits (``rag.sources._skeleton``); the longest
    run they share anchors the quote, which then spans the quote's length from the anchor's
    start in the quote. One misread letter in a 200-letter quote moves nothing; a quote whose
    longest shared run is under :data:`MIN_ANCHOR` letters is not placed.
    """
    import difflib

    from rag.sources import _skeleton

    q, _ = _skeleton(quote)
    sk, idx = _skeleton(doc.clean)
    if len(q) < 8 or not sk:
        return None
    match = difflib.SequenceMatcher(None, sk, q, autojunk=False).find_longest_match(
        0, len(sk), 0, len(q)
    )
    if match.size < min(MIN_ANCHOR, len(q) // 3):
        return None
    lo = max(0, match.a - match.b)
    hi = min(len(sk), lo + len(q)) - 1
    return doc.raw_span(idx[lo], idx[hi] + 1)


class EvidenceLocator:
    """Maps evidence quotes to raw spans once, and counts the index chunks they overlap.

    A quote's ``doc_id`` names a file of the seed corpus (``000_….txt``); in a corpus of the
    same documents in another format (the scans of ``evals/experiments/scan_corpus.py``,
    ``000_….pdf``) it is matched by file stem. A quote not found exactly (OCR misread a letter)
    is placed by :func:`approximate_span`; :attr:`approximate` counts those.
    """

    def __init__(self, docs: Sequence[Document], index: CorpusIndex) -> None:
        self.docs = {d.doc_id: d for d in docs}
        self.by_stem = {Path(d.doc_id).stem: d for d in docs}
        self.approximate = 0
        self.chunks_by_doc: dict[str, list[Span]] = {}
        for c in index.chunks:
            self.chunks_by_doc.setdefault(c.doc_id, []).append((c.doc_id, c.start, c.end))

    def doc(self, doc_id: str) -> Document | None:
        """The document ``doc_id`` names, or the one with the same file stem."""
        return self.docs.get(doc_id) or self.by_stem.get(Path(doc_id).stem)

    def spans(self, row: Mapping[str, Any]) -> tuple[tuple[Span, ...], int]:
        """``(located spans, number of quotes that could not be located)``."""
        from rag.sources import locate

        spans: list[Span] = []
        missing = 0
        for ev in row.get("evidence") or []:
            doc = self.doc(str(ev.get("doc_id")))
            quote = str(ev.get("text", ""))
            found = locate(doc, quote) if doc is not None else None
            if found is None and doc is not None:
                found = approximate_span(doc, quote)
                self.approximate += found is not None
            if found is None:
                missing += 1
                logger.warning("%s: evidence not found in %s", row["id"], ev.get("doc_id"))
                continue
            spans.append((doc.doc_id, found[0], found[1]))  # type: ignore[union-attr]
        return tuple(spans), missing

    def n_relevant(self, evidence: Sequence[Span]) -> int:
        """How many chunks of the index overlap some evidence span."""
        docs = {e[0] for e in evidence}
        return sum(
            any(overlaps(c, e) for e in evidence)
            for d in docs
            for c in self.chunks_by_doc.get(d, [])
        )


def warm_up(engine: Any) -> None:
    """Answer one throwaway question so that the latency figures are steady-state.

    The model loads lazily on the first query (seconds), and the language detector on the
    first ambiguous text: without this the first question's timings would be load times.
    """
    from rag.pipeline import answer

    t0 = time.perf_counter()
    answer("Бұл құжатта не айтылған?", engine=engine)
    logger.info("warm-up answer took %.0f ms", (time.perf_counter() - t0) * 1000)


def run_questions(
    rows: Sequence[dict[str, Any]],
    all_rows: Sequence[dict[str, Any]],
    engine: Any,
    docs: Sequence[Document],
    locator: EvidenceLocator | None = None,
) -> list[tuple[Record, Answer]]:
    """Answer every row through the pipeline and turn each answer into a :class:`Record`.

    ``locator`` finds the evidence spans (default: exact quotes in ``docs``; the OCR study
    passes one that tolerates OCR errors).
    """
    from rag.pipeline import answer, clean_question, prepare_question, retrieve

    by_id = {r["id"]: r for r in all_rows}
    locator = locator or EvidenceLocator(docs, engine.index)
    answered: dict[str, tuple[Answer, list[Turn]]] = {}

    def ask(row: Mapping[str, Any], visiting: frozenset[str] = frozenset()) -> None:
        qid = row["id"]
        if qid in answered:
            return
        history: list[Turn] = []
        parent = by_id.get(str(row.get("follows"))) if row.get("follows") else None
        if parent is not None and parent["id"] not in visiting | {qid}:
            ask(parent, visiting | {qid})
            prev = answered[parent["id"]][0]
            history = [Turn(prev.question, prev.answer)]
        elif row.get("follows"):
            logger.warning("%s follows unknown question %s", qid, row.get("follows"))
        answered[qid] = (answer(row["question"], history, engine=engine, qid=qid), history)

    out = []
    t0 = time.perf_counter()
    for n, row in enumerate(rows, start=1):
        ask(row)
        ans, history = answered[row["id"]]
        # The same language, respelling and follow-up resolution as the answer's own search.
        prep = prepare_question(
            engine, clean_question(row["question"], engine.settings.max_question_chars), history
        )
        hits = retrieve(engine, prep.query, RETRIEVAL_DEPTH, lexical_query=prep.lexical)
        evidence, unlocated = locator.spans(row)
        answerable = bool(row.get("answerable", True))
        rec = Record(
            id=row["id"],
            question=row["question"],
            lang=str(row.get("lang") or ans.language),
            type=str(row.get("type") or ("fact" if answerable else "unanswerable")),
            answerable=answerable,
            answer=ans.answer,
            abstained=ans.abstained,
            reference=str(row.get("answer") or ""),
            keywords=tuple(str(k) for k in row.get("keywords") or ()),
            evidence=evidence,
            unlocated=unlocated,
            n_relevant=locator.n_relevant(evidence),
            retrieved=tuple((h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits),
            citations=tuple((c.doc_id, c.start, c.end) for c in ans.citations),
            timings_ms=dict(ans.timings_ms),
            split=str(row.get("split") or ""),
        )
        out.append((rec, ans))
        if n % 25 == 0:
            logger.info("answered %d/%d questions (%.0f s)", n, len(rows), time.perf_counter() - t0)
    return out


def outcome(rec: Record, s: Scores) -> str:
    """A one-word verdict per question, for the failure table and run-to-run diffs."""
    if not rec.answerable:
        return "abstained" if rec.abstained else "answered_unanswerable"
    if rec.abstained:
        return "false_abstention"
    if s.keyfact_recall is None or s.keyfact_recall == 1.0:
        return "ok"
    return "partial" if s.keyfact_recall > 0 else "missed"


def diagnose(rec: Record, s: Scores, top_k: int) -> str:
    """Where an answerable question that lacks key facts went wrong (feeds tuning)."""
    if rec.abstained:
        # The rank itself is in the report's "evidence rank" column; the reason stays countable.
        seen = any(r is not None and r <= top_k for r in s.evidence_ranks)
        return (
            f"false abstention, evidence in top {top_k}"
            if seen
            else "false abstention, evidence not retrieved"
        )
    if rec.evidence and not any(r is not None and r <= top_k for r in s.evidence_ranks):
        return f"retrieval miss (no evidence in top {top_k})"
    if rec.evidence and not any(s.citation_hits):
        return "evidence retrieved, other sentences cited"
    if not rec.evidence:
        return "evidence quote not located"
    return "evidence cited, key fact outside the cited span or worded differently"


def question_row(rec: Record, ans: Answer, s: Scores, top_k: int) -> dict[str, Any]:
    """The ``questions.jsonl`` line of one question."""
    verdict = outcome(rec, s)
    return {
        "id": rec.id,
        "split": rec.split,
        "lang": rec.lang,
        "type": rec.type,
        "answerable": rec.answerable,
        "question": rec.question,
        "outcome": verdict,
        "diagnosis": diagnose(rec, s, top_k)
        if verdict in {"partial", "missed", "false_abstention"}
        else None,
        "abstained": rec.abstained,
        "answer": rec.answer,
        "answer_language": s.answer_language,
        "language_match": s.language_match,
        "keyfacts_found": list(s.keyfacts_found),
        "keyfacts_missing": list(s.keyfacts_missing),
        "keyfact_recall": s.keyfact_recall,
        "token_f1": None if s.token_f1 is None else round(s.token_f1, 4),
        "retrieval": {
            "relevant_ranks": list(s.relevant_ranks),
            "evidence_ranks": list(s.evidence_ranks),
            **({k: round(v, 4) for k, v in s.retrieval.items()} if s.retrieval else {}),
        },
        "evidence": [list(e) for e in rec.evidence],
        "evidence_unlocated": rec.unlocated,
        "retrieved": [list(r) for r in rec.retrieved],
        "citations": [
            {"marker": c.marker, "doc_id": c.doc_id, "start": c.start, "end": c.end, "hit": hit}
            for c, hit in zip(ans.citations, s.citation_hits, strict=True)
        ],
        "evidence_cited": list(s.evidence_cited),
        "timings_ms": {k: round(v, 1) for k, v in rec.timings_ms.items()},
    }


# =========================================================================== KazQAD


@dataclass(frozen=True)
class KazqadItem:
    """One distinct KazQAD question: its gold answers and the contexts that answer it."""

    id: str
    question: str
    answers: tuple[str, ...]
    relevant: tuple[str, ...]


def kazqad_doc_id(context: str) -> str:
    """A stable id from the context text, so a rebuilt index keeps its ids."""
    return "kazqad-" + hashlib.sha1(context.encode("utf-8")).hexdigest()[:12]


def load_kazqad(path: Path) -> tuple[list[Document], list[KazqadItem]]:
    """The distinct contexts as documents and the distinct questions (rows merged by question)."""
    from rag.sources import SourceError, make_document

    if not path.is_file():
        raise EvalError(f"KazQAD file not found: {path}")
    docs: dict[str, Document] = {}
    items: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                context, question = row["context"], row["question"]
                golds = [str(t) for t in row.get("answers", {}).get("text", [])]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise EvalError(f"{path}:{n}: not a KazQAD row ({exc})") from exc
            doc_id = kazqad_doc_id(context)
            if doc_id not in docs:
                try:
                    docs[doc_id] = make_document(doc_id, context, title=row.get("title") or None)
                except SourceError as exc:
                    logger.warning("%s:%d: context skipped (%s)", path, n, exc)
                    continue
            item = items.setdefault(
                question, {"id": str(row.get("id", n)), "answers": [], "relevant": []}
            )
            item["answers"] += [g for g in golds if g not in item["answers"]]
            if doc_id not in item["relevant"]:
                item["relevant"].append(doc_id)
    if not items:
        raise EvalError(f"{path}: no KazQAD rows")
    return list(docs.values()), [
        KazqadItem(v["id"], q, tuple(v["answers"]), tuple(v["relevant"])) for q, v in items.items()
    ]


def kazqad_index(
    docs: Sequence[Document], folder: Path, embedder: Embedder, settings: Settings, source: Path
) -> CorpusIndex:
    """Load the cached KazQAD index when it matches model, chunking and contexts; else build it."""

    def announce(n: int) -> None:
        print(
            f"indexing {n} KazQAD contexts into {folder} (once; a few minutes on 2 cores)",
            file=sys.stderr,
        )

    # KazQAD's contexts get their own folder index even when the project's index is in a
    # shared store: they must not be written into (or replace) the served collection.
    spec = settings.index_spec.replace(folder=folder, corpus=source, uploads=None, store="faiss")
    return open_index(
        spec, embedder, docs=docs, on_build=announce, show_progress=sys.stderr.isatty()
    )


def distinct_docs(doc_ids: Sequence[str], n: int) -> tuple[str, ...]:
    """The first ``n`` distinct doc ids, in rank order (a context counts at its best chunk)."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
        if len(seen) == n:
            break
    return tuple(seen)


def run_kazqad(items: Sequence[KazqadItem], engine: Any) -> list[KazqadRecord]:
    """Search every question in the three modes and answer it through the pipeline."""
    from rag.pipeline import QuestionError, answer

    out = []
    t0 = time.perf_counter()
    for n, item in enumerate(items, start=1):
        ranked: dict[str, tuple[str, ...]] = {}
        search_ms: dict[str, float] = {}
        for mode in KAZQAD_MODES:
            t = time.perf_counter()
            hits = engine.retriever.search(item.question, KAZQAD_SEARCH_DEPTH, mode)
            search_ms[mode] = (time.perf_counter() - t) * 1000
            ranked[mode] = distinct_docs([h.chunk.doc_id for h in hits], RETRIEVAL_DEPTH)
        try:
            ans = answer(item.question, engine=engine, qid=item.id)
        except QuestionError as exc:
            logger.warning("%s skipped: %s", item.id, exc)
            continue
        first = min(ans.citations, key=lambda c: c.marker) if ans.citations else None
        passages = " ".join(h.chunk.text for h in ans.retrieved)
        out.append(
            KazqadRecord(
                id=item.id,
                question=item.question,
                answers=item.answers,
                relevant=item.relevant,
                ranked=ranked,
                answer=ans.answer,
                abstained=ans.abstained,
                span=first.quote if first else "",
                cited=tuple(c.doc_id for c in ans.citations),
                gold_in_passages=any(contains_answer(passages, g) for g in item.answers),
                timings_ms=dict(ans.timings_ms),
                search_ms=search_ms,
            )
        )
        if n % 50 == 0:
            logger.info("KazQAD: %d/%d questions (%.0f s)", n, len(items), time.perf_counter() - t0)
    return out


def kazqad_row(rec: KazqadRecord) -> dict[str, Any]:
    """The ``questions.jsonl`` line of one KazQAD question."""
    s = kazqad_scores(rec)
    return {
        "id": rec.id,
        "question": rec.question,
        "answers": list(rec.answers),
        "relevant": list(rec.relevant),
        "ranks": {m: r["first_rank"] for m, r in s["retrieval"].items()},
        "ranked": {m: list(d) for m, d in rec.ranked.items()},
        "abstained": rec.abstained,
        "answer": rec.answer,
        "span": rec.span,
        "gold_in_answer": bool(s["gold_in_answer"]),
        "gold_in_passages": rec.gold_in_passages,
        "exact_match": s["exact_match"],
        "f1": round(s["f1"], 4),
        "citation_hits": s["citation_hits"],
        "timings_ms": {k: round(v, 1) for k, v in rec.timings_ms.items()},
        "search_ms": {k: round(v, 1) for k, v in rec.search_ms.items()},
    }


# =========================================================================== report


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if pct:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"


def _is_ms(name: str) -> bool:
    return name.startswith(("latency_ms", "search_ms"))


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _fmt_metric(name: str, value: Any) -> str:
    if _is_ms(name):
        return _fmt_ms(value)
    return _fmt(value) if name.endswith(".n") or name == "n" else _fmt(value, pct=True)


def _fmt_delta(name: str, delta: float | None) -> str:
    if delta is None:
        return "–"
    if _is_ms(name):
        return f"{delta:+.0f}"
    return f"{100 * delta:+.1f} pt"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _metric_table(
    names: Sequence[tuple[str, str]],
    flat: Mapping[str, Any],
    deltas: Mapping[str, tuple[Any, Any]] | None,
) -> list[str]:
    header = ["Figure", "Name", "Value"] + (["Previous", "Δ"] if deltas is not None else [])
    rows = []
    for name, label in names:
        row = [label, f"`{name}`", _fmt_metric(name, flat.get(name))]
        if deltas is not None:
            prev, delta = deltas.get(name, (None, None))
            row += [_fmt_metric(name, prev), _fmt_delta(name, delta)]
        rows.append(row)
    return _table(header, rows)


def _targets_table(targets: Sequence[Mapping[str, Any]], pct: bool = True) -> list[str]:
    rows = [
        [
            t["label"],
            f"`{t['metric']}`",
            _fmt_metric(t["metric"], t["value"]) if pct else _fmt(t["value"]),
            "✅ pass" if t["passed"] else "❌ fail",
        ]
        for t in targets
    ]
    return _table(["Target", "Figure", "Value", "Result"], rows)


MAIN_FIGURES = (
    ("retrieval.hit@1", "retrieval hit@1"),
    ("retrieval.hit@5", "retrieval hit@5"),
    ("retrieval.mrr@10", "retrieval MRR@10"),
    ("retrieval.ndcg@10", "retrieval nDCG@10"),
    ("retrieval.all_evidence@5", "all evidence covered @5"),
    ("answer.keyfact_recall", "key-fact recall (mean)"),
    ("answer.keyfacts_all", "answers with all key facts"),
    ("answer.token_f1", "token F1 vs reference"),
    ("citations.precision", "citation precision"),
    ("citations.recall", "citation recall (evidence quotes)"),
    ("citations.recall_docs", "citation recall (evidence documents)"),
    ("citations.answers_with_citation", "non-abstained answers with a citation"),
    ("abstention.precision", "abstention precision"),
    ("abstention.recall", "abstention recall"),
    ("abstention.f1", "abstention F1"),
    ("abstention.false_abstention_rate", "false-abstention rate (answerable)"),
    ("abstention.accuracy", "abstain/answer decision accuracy"),
    ("language.match", "answer language matches question"),
)
GROUP_COLUMNS = (
    ("n", "n"),
    ("retrieval.hit@5", "hit@5"),
    ("retrieval.mrr@10", "MRR@10"),
    ("retrieval.ndcg@10", "nDCG@10"),
    ("answer.keyfact_recall", "key-fact recall"),
    ("answer.keyfacts_all", "all key facts"),
    ("answer.token_f1", "token F1"),
    ("citations.precision", "cit. precision"),
    ("citations.recall", "cit. recall"),
    ("abstention.accuracy", "abstain decision"),
    ("language.match", "language"),
    ("latency_ms.total.p95", "p95 ms"),
)
# The bars of the chart: defined for every group (abstention accuracy covers unanswerables).
CHART_FIGURES = (
    ("retrieval.hit@5", "hit@5"),
    ("retrieval.mrr@10", "MRR@10"),
    ("answer.keyfacts_all", "all key facts"),
    ("citations.precision", "citation precision"),
    ("abstention.accuracy", "abstain decision"),
    ("language.match", "language match"),
)


def _group_table(groups: Mapping[str, Figures], title: str) -> list[str]:
    rows = []
    for name, figs in groups.items():
        flat = flatten(figs)
        rows.append([name] + [_fmt_metric(k, flat.get(k)) for k, _ in GROUP_COLUMNS])
    return _table([title] + [label for _, label in GROUP_COLUMNS], rows)


def _latency_table(figs: Figures) -> list[str]:
    rows = [
        [stage, _fmt_ms(v.get("p50")), _fmt_ms(v.get("p95"))]
        for stage, v in figs.get("latency_ms", {}).items()
    ]
    return _table(["Stage", "p50 ms", "p95 ms"], rows)


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= n else text[: n - 1] + "…"


def questions_report(
    figs: Figures,
    rows: Sequence[Mapping[str, Any]],
    deltas: Mapping[str, tuple[Any, Any]] | None,
    changed: Sequence[tuple[str, str, str]] | None,
) -> str:
    """The Markdown report of a question-set run."""
    meta = figs["meta"]
    flat = flatten(figs)
    lines = [
        "# kazrag evaluation: question set",
        "",
        f"- questions: `{meta['questions']}` (split `{meta['split']}`"
        + (f", first {meta['limit']}" if meta.get("limit") else "")
        + f"): {figs['n']} questions, {figs['answer']['n']} answerable, "
        f"{figs['abstention']['n_unanswerable']} unanswerable",
        f"- system: model `{meta['model']}`, generator `{meta['generator']}`, top_k "
        f"{meta['top_k']}, index `{meta['index']}` ({meta['index_chunks']} chunks)",
        f"- run: {meta['created']}, {meta['seconds']} s",
        f"- evidence quotes not located in the corpus: {figs['evidence_unlocated']}",
        "",
        "Definitions: see the docstring of `evals/metrics.py`. Retrieval counts a chunk as relevant"
        " when it overlaps an evidence span; citations likewise.",
        "",
        "## Targets (issue 3)",
        "",
        *_targets_table(figs["targets"]),
        "",
        "## Figures",
        "",
    ]
    if deltas is not None:
        lines += [f"Compared with `{meta.get('compare')}`.", ""]
    lines += _metric_table(MAIN_FIGURES, flat, deltas)
    lines += ["", "![main figures by language and type](chart.png)", ""]
    lines += ["## By language", "", *_group_table(figs["by_lang"], "lang"), ""]
    lines += ["## By question type", "", *_group_table(figs["by_type"], "type"), ""]
    if figs.get("by_form"):
        lines += [
            "## By typing form (issue 14)",
            "",
            "The Kazakh questions retyped as people type them; in brackets the same figures of"
            " their standard-Cyrillic originals. These rows are not in the figures above.",
            "",
            *_form_table(figs["by_form"]),
            "",
        ]
    lines += ["## Latency", "", *_latency_table(figs), ""]
    failures = [r for r in rows if r["outcome"] not in ("ok", "abstained")]
    lines += ["## Questions that miss", ""]
    if failures:
        counts = Counter(r["diagnosis"] or r["outcome"] for r in failures)
        lines += _table(["Why", "n"], [[k, str(v)] for k, v in counts.most_common()])
        lines += [""]
        lines += _table(
            ["id", "lang", "type", "outcome", "why", "evidence rank", "missing", "question"],
            [
                [
                    r["id"],
                    r["lang"],
                    r["type"],
                    r["outcome"],
                    r["diagnosis"] or "",
                    ",".join(
                        "–" if x is None else str(x) for x in r["retrieval"]["evidence_ranks"]
                    ),
                    _short(", ".join(r["keyfacts_missing"]), 40),
                    _short(r["question"]),
                ]
                for r in failures
            ],
        )
    else:
        lines += ["None."]
    if changed is not None:
        lines += ["", "## Outcome changes since the compared run", ""]
        lines += (
            _table(["id", "before", "now"], [list(c) for c in changed]) if changed else ["None."]
        )
    return "\n".join(lines) + "\n"


KAZQAD_FIGURES = (
    ("answer.gold_in_answer", "gold answer string in the answer"),
    ("answer.exact_match", "EM of the first cited sentence"),
    ("answer.f1", "token F1 of the first cited sentence"),
    ("answer.gold_in_passages", "gold answer in the top-k passages read"),
    ("answer.abstained", "abstained (all questions are answerable)"),
    ("citations.precision", "citations into a relevant context"),
)


def kazqad_report(figs: Figures, deltas: Mapping[str, tuple[Any, Any]] | None) -> str:
    """The Markdown report of a KazQAD run, with the paper's figures beside ours."""
    meta = figs["meta"]
    flat = flatten(figs)
    retrieval_rows = []
    for mode, r in figs["retrieval"].items():
        cells = [
            _fmt(r.get(k))
            for k in ("recall@1", "recall@5", "recall@10", "all@10", "mrr@10", "ndcg@10")
        ]
        sm = figs["search_ms"].get(mode, {})
        label = {"lexical": "BM25 (lexical)", "dense": "dense", "hybrid": "hybrid"}.get(mode, mode)
        retrieval_rows.append([label, *cells, _fmt_ms(sm.get("p50")), _fmt_ms(sm.get("p95"))])
    floor = KAZQAD_FLOOR
    retrieval_rows.append(
        [
            "floor: plain BM25, 5-letter prefixes (README)",
            _fmt(floor["recall@1"]),
            _fmt(floor["recall@5"]),
            _fmt(floor["recall@10"]),
            "–",
            _fmt(floor["mrr@10"]),
            "–",
            "–",
            "–",
        ]
    )
    retrieval_rows.append(
        [
            "KazQAD paper, retrieval over 800k passages",
            "–",
            "–",
            "–",
            "–",
            f"{KAZQAD_PAPER['retrieval_mrr']:.3f} (MRR)",
            _fmt(KAZQAD_PAPER["retrieval_ndcg@10"]),
            "–",
            "–",
        ]
    )
    a = figs["answer"]
    lines = [
        "# kazrag evaluation: KazQAD (open book)",
        "",
        f"- data: `{meta['kazqad']}`: {meta['contexts']} contexts indexed as documents, "
        f"{figs['n']} distinct questions asked"
        + (f" (first {meta['limit']})" if meta.get("limit") else ""),
        f"- system: model `{meta['model']}`, generator `{meta['generator']}`, top_k "
        f"{meta['top_k']}, index `{meta['index']}` ({meta['index_chunks']} chunks)",
        f"- run: {meta['created']}, {meta['seconds']} s",
        "",
        "Open-book task: the corpus is the benchmark's own 697 contexts, so retrieval is far "
        "easier than in the paper (800k Wikipedia passages); the paper's figures are context, "
        "not a like-for-like comparison. Recall@k = share of questions with a relevant context "
        "in the top k; all@10 = share of each question's relevant contexts in the top 10. A "
        "context cut into several chunks counts once, at its best chunk. Our lexical mode is "
        "the project's analyzer (Kazakh suffix stripping + 6-letter prefixes), not the floor's.",
        "",
        "## Targets",
        "",
        *_targets_table(figs["targets"], pct=False),
        "",
        "## Retrieval",
        "",
        *_table(
            ["mode", "R@1", "R@5", "R@10", "all@10", "MRR@10", "nDCG@10", "p50 ms", "p95 ms"],
            retrieval_rows,
        ),
        "",
        "## Answers",
        "",
        "The answer is made of whole cited sentences; the *shortest span the system commits to* "
        "is taken to be the first cited sentence (citation [1]), scored SQuAD-style against the "
        "gold answers (best over golds). A sentence rarely equals a short gold span, so EM is "
        "near 0 by construction; *gold in the answer* is the fairer figure for this generator.",
        "",
        *_metric_table(KAZQAD_FIGURES, flat, deltas),
        "",
        *_table(
            ["", "EM", "F1"],
            [
                ["ours: first cited sentence", _fmt(a["exact_match"], True), _fmt(a["f1"], True)],
                [
                    "paper: reader given the gold passage",
                    f"{100 * KAZQAD_PAPER['reader_gold_passage_em']:.1f}%",
                    f"{100 * KAZQAD_PAPER['reader_gold_passage_f1']:.1f}%",
                ],
                [
                    "paper: full open-domain QA",
                    f"{100 * KAZQAD_PAPER['open_domain_em']:.1f}%",
                    f"{100 * KAZQAD_PAPER['open_domain_f1']:.1f}%",
                ],
            ],
        ),
        "",
        "![KazQAD figures](chart.png)",
        "",
        "## Latency (answering)",
        "",
        *_latency_table(figs),
        "",
        "Source: Yeshpanov, Efimov, Boytsov, Shalkarbayuli, Braslavski. *KazQAD: Kazakh Open-"
        "Domain Question Answering Dataset.* LREC-COLING 2024 (CC BY-SA 4.0).",
    ]
    if deltas is not None:
        changed = [
            [f"`{n}`", _fmt_metric(n, flat.get(n)), _fmt_metric(n, p), _fmt_delta(n, d)]
            for n, (p, d) in deltas.items()
            if n.startswith(("retrieval.", "answer.", "citations.")) and d
        ]
        lines += ["", f"## Changes since `{meta.get('compare')}`", ""]
        lines += _table(["Figure", "Value", "Previous", "Δ"], changed) if changed else ["None."]
    return "\n".join(lines) + "\n"


def _bars(ax: Any, groups: Mapping[str, Figures], title: str) -> None:
    import numpy as np

    names = list(groups)
    width = 0.8 / len(CHART_FIGURES)
    x = np.arange(len(names))
    for i, (metric, label) in enumerate(CHART_FIGURES):
        vals = [flatten(groups[g]).get(metric) for g in names]
        xs = x + (i - (len(CHART_FIGURES) - 1) / 2) * width
        ax.bar(xs, [np.nan if v is None else v for v in vals], width, label=label)
        # An empty slot is either a zero or a figure no question of the group defines: say which.
        for xi, v in zip(xs, vals, strict=True):
            if v is None or v == 0:
                ax.text(
                    xi,
                    0.01,
                    "n/a" if v is None else "0",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                    color="0.4",
                )
    ax.set_xticks(x, [f"{g}\n(n={groups[g]['n']})" for g in names], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def questions_chart(figs: Figures, path: Path) -> None:
    """Grouped bars of the main figures by language and by question type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_types = max(1, len(figs["by_type"]))
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(4 + 1.4 * n_types + 1.4 * len(figs["by_lang"]), 4.8),
        gridspec_kw={"width_ratios": [max(1, len(figs["by_lang"])), n_types]},
    )
    _bars(axes[0], figs["by_lang"], "by language")
    _bars(axes[1], figs["by_type"], "by question type")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(CHART_FIGURES), fontsize=8)
    fig.suptitle(f"kazrag: question set ({figs['meta']['split']}, n={figs['n']})")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kazqad_chart(figs: Figures, path: Path) -> None:
    """Retrieval figures by mode (with the BM25 floor) and the answer figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
    modes = list(figs["retrieval"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(keys))
    width = 0.8 / max(1, len(modes))
    for i, mode in enumerate(modes):
        ys = [
            np.nan if figs["retrieval"][mode].get(k) is None else figs["retrieval"][mode][k]
            for k in keys
        ]
        ax1.bar(x + (i - (len(modes) - 1) / 2) * width, ys, width, label=mode)
    floor = [KAZQAD_FLOOR.get(k, np.nan) for k in keys]
    ax1.scatter(x, floor, marker="_", s=400, color="black", zorder=3, label="BM25 floor")
    ax1.set_xticks(x, keys)
    ax1.set_ylim(0, 1.2)  # headroom for the legend above the bars
    ax1.set_title("retrieval of the relevant context")
    ax1.legend(fontsize=8, loc="upper center", ncol=4)
    ax1.grid(axis="y", alpha=0.3)
    a = figs["answer"]
    labels = ["gold in\nanswer", "gold in\npassages", "EM", "F1"]
    vals = [a.get("gold_in_answer"), a.get("gold_in_passages"), a.get("exact_match"), a.get("f1")]
    ax2.bar(range(4), [np.nan if v is None else v for v in vals], color="tab:green", label="ours")
    ax2.scatter(
        [2, 3],
        [KAZQAD_PAPER["reader_gold_passage_em"], KAZQAD_PAPER["reader_gold_passage_f1"]],
        marker="_",
        s=400,
        color="black",
        zorder=3,
        label="paper reader (gold passage)",
    )
    ax2.set_xticks(range(4), labels, fontsize=8)
    ax2.set_ylim(0, 1.2)
    ax2.set_title("answers")
    ax2.legend(fontsize=8, loc="upper center", ncol=2)
    ax2.grid(axis="y", alpha=0.3)
    fig.suptitle(f"kazrag on KazQAD (open book, n={figs['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# =========================================================================== entry point


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in sorted(rows, key=lambda r: str(r["id"])):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_previous(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"--compare {path}: cannot read a figures JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"--compare {path}: not a figures JSON object")
    return data


def _changed_outcomes(
    old_questions: Path, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str]] | None:
    if not old_questions.is_file():
        return None
    before = {}
    with old_questions.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                before[str(r.get("id"))] = str(r.get("outcome"))
    return [
        (r["id"], before[r["id"]], r["outcome"])
        for r in rows
        if r["id"] in before and before[r["id"]] != r["outcome"]
    ]


_GROUP_NAME = re.compile(r"^by_(?:lang|type)\.[^.]+\.(.+)$")


def _precheck(thresholds: Sequence[Threshold], skeleton: Figures) -> None:
    """Reject unknown metric names before a long run (group names are checked after it)."""
    known = set(flatten(skeleton))

    def plausible(name: str) -> bool:
        m = _GROUP_NAME.match(name)
        return name in known or (m is not None and m.group(1) in known)

    check_names([t for t in thresholds if not plausible(t.metric)], known)


def _meta(
    settings: Settings, engine: Any, args: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1),
        "model": engine.embedder.name,
        "backend": getattr(engine.embedder, "backend", None),
        "generator": settings.generator,
        "top_k": engine.settings.top_k,
        "index": str(engine.settings.index),
        "index_chunks": len(engine.index.chunks),
        "limit": args.limit,
        "compare": str(args.compare) if args.compare else None,
    }


def _evaluate_questions(
    args: argparse.Namespace, settings: Settings, embedder: Embedder | None
) -> tuple[Figures, list[dict[str, Any]], str]:
    from rag.pipeline import get_engine, make_engine
    from rag.sources import load_corpus

    path = Path(args.questions) if args.questions else DEFAULT_QUESTIONS
    all_rows = load_questions(path)
    rows = select_questions(all_rows, args.split, args.limit)
    if not rows:
        raise EvalError(f"{path}: no questions in split {args.split!r}")
    t0 = time.perf_counter()
    engine = make_engine(settings, embedder=embedder) if embedder else get_engine(settings)
    # The index's cache of extracted texts: a scanned corpus is not OCR'd a second time.
    docs = load_corpus(settings.corpus, settings.index / TEXTS)
    warm_up(engine)
    print(f"evaluating {len(rows)} questions from {path} ({args.split})", file=sys.stderr)
    locator = EvidenceLocator(docs, engine.index)
    results = run_questions(rows, all_rows, engine, docs, locator)
    if locator.approximate:
        print(f"{locator.approximate} evidence quotes placed approximately", file=sys.stderr)
    # Respelled variants of the Kazakh questions are reported by form only: the headline
    # figures stay those of the questions as written (issue 14).
    originals = [rec for rec, _ in results if not form_of(rec.id, all_rows)]
    figs = figures(originals or [rec for rec, _ in results])
    by_form = form_figures(results, all_rows)
    if by_form:
        figs["by_form"] = by_form
    figs = {
        "meta": {
            "kind": "questions",
            "questions": str(path),
            "split": args.split,
            **_meta(settings, engine, args, time.perf_counter() - t0),
            "evidence_placed_approximately": locator.approximate,
        },
        **figs,
    }
    top_k = engine.settings.top_k
    rows_out = [question_row(rec, ans, score(rec), top_k) for rec, ans in results]
    for row_out, (rec, ans) in zip(rows_out, results, strict=True):
        row_out["form"] = form_of(rec.id, all_rows) or "cyrillic"
        row_out["detected_language"] = ans.language
    return figs, rows_out, "questions"


# =========================================================================== typing forms

FORM_ORDER = ("cyrillic", "russian_keyboard", "translit", "latin", "mixed")


def form_of(qid: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``form`` of a question-set row (``None`` for a question as originally written)."""
    index = _form_index(tuple((str(r["id"]), r.get("form"), r.get("variant_of")) for r in rows))
    return index.get(qid, (None, None))[0]


@functools.lru_cache(maxsize=4)
def _form_index(
    rows: tuple[tuple[str, Any, Any], ...],
) -> dict[str, tuple[str | None, str | None]]:
    return {qid: (form, of) for qid, form, of in rows}


def form_figures(
    results: Sequence[tuple[Record, Answer]], all_rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Figures by typing form for the Kazakh questions that have respelled variants.

    Per form: evidence in the top 5, the answer cites the evidence (some citation overlaps an
    evidence span), detected as Kazakh; and the same figures of the originals of exactly those
    questions (``cyrillic_*``), so that each form is compared with its own twins. The
    ``cyrillic`` row is every original that has a variant. Empty when the set has no variants.
    """
    variant_of = {str(r["id"]): str(r["variant_of"]) for r in all_rows if r.get("variant_of")}
    if not variant_of:
        return {}
    scored = {rec.id: (rec, ans, score(rec)) for rec, ans in results if rec.answerable}
    twins = set(variant_of.values())
    groups: dict[str, list[str]] = {"cyrillic": [q for q in scored if q in twins]}
    for qid in scored:
        form = form_of(qid, all_rows)
        if form:
            groups.setdefault(form, []).append(qid)

    def measure(ids: Sequence[str]) -> dict[str, Any]:
        items = [scored[q] for q in ids if q in scored]
        with_ev = [s for _, _, s in items if s.retrieval is not None]
        return {
            "n": len(items),
            "evidence@5": _share([s.retrieval["hit@5"] == 1.0 for s in with_ev if s.retrieval]),
            "cites_evidence": _share([any(s.evidence_cited) for _, _, s in items]),
            "detected_kk": _share([a.language == "kk" for _, a, _ in items]),
        }

    out: dict[str, Any] = {}
    for form in sorted(groups, key=lambda f: (*FORM_ORDER, f).index(f)):
        figs = measure(groups[form])
        if form != "cyrillic":
            twin = measure([variant_of[q] for q in groups[form]])
            figs.update({f"cyrillic_{k}": v for k, v in twin.items() if k != "n"})
        out[form] = figs
    return out


def _share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _form_cell(figs: Mapping[str, Any], key: str) -> str:
    value = _fmt(figs.get(key))
    twin = figs.get(f"cyrillic_{key}")
    return value if twin is None else f"{value} ({_fmt(twin)})"


def _form_table(by_form: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = [
        [form, str(f["n"])]
        + [_form_cell(f, k) for k in ("evidence@5", "cites_evidence", "detected_kk")]
        for form, f in by_form.items()
    ]
    return _table(
        ["form", "n", "evidence in top 5", "answer cites the evidence", "detected as Kazakh"],
        rows,
    )


def _evaluate_kazqad(
    args: argparse.Namespace, settings: Settings, embedder: Embedder | None
) -> tuple[Figures, list[dict[str, Any]], str]:
    from rag.embedding import make_embedder
    from rag.pipeline import make_engine

    docs, items = load_kazqad(Path(args.kazqad))
    if args.limit:
        items = items[: args.limit]
    folder = Path(args.index) if getattr(args, "index", None) else DEFAULT_KAZQAD_INDEX
    emb = embedder or make_embedder(settings.model, settings.backend)
    t0 = time.perf_counter()
    kazqad_index(docs, folder, emb, settings, Path(args.kazqad))
    # corpus = the JSONL file (not a folder), so the engine never "updates" this index from
    # seeds/; uploads are not part of a benchmark.
    engine = make_engine(
        settings.replace(index=folder, corpus=Path(args.kazqad), uploads=None, store="faiss"),
        embedder=emb,
    )
    print(f"asking {len(items)} KazQAD questions", file=sys.stderr)
    warm_up(engine)
    records = run_kazqad(items, engine)
    figs = kazqad_figures(records)
    figs = {
        "meta": {
            "kind": "kazqad",
            "kazqad": str(args.kazqad),
            "contexts": len(docs),
            "paper": KAZQAD_PAPER,
            "floor": KAZQAD_FLOOR,
            **_meta(settings, engine, args, time.perf_counter() - t0),
        },
        **figs,
    }
    return figs, [kazqad_row(r) for r in records], "kazqad"


def main(args: argparse.Namespace, settings: Settings, embedder: Embedder | None = None) -> int:
    """Run ``kazrag eval``; returns the exit code (0 ok, 1 a ``--min`` gate failed, 2 usage).

    ``embedder`` replaces the real model (tests pass a fake).
    """
    try:
        thresholds = [parse_threshold(t) for t in args.min or []]
        if args.limit is not None and args.limit < 1:
            raise EvalError(f"--limit must be at least 1, got {args.limit}")
        if args.compare and not Path(args.compare).is_file():
            raise EvalError(f"--compare: no figures JSON at {args.compare}")
        _precheck(thresholds, kazqad_figures([]) if args.kazqad else figures([]))
        run = _evaluate_kazqad if args.kazqad else _evaluate_questions
        figs, rows, kind = run(args, settings, embedder)
        flat = flatten(figs)
        check_names(thresholds, flat)
    except (EvalError, ThresholdError) as exc:
        print(f"kazrag eval: error: {exc}", file=sys.stderr)
        return 2

    out = Path(args.out) if args.out else DEFAULT_OUT
    if kind == "kazqad" and out == DEFAULT_OUT:
        out = KAZQAD_OUT
    out.mkdir(parents=True, exist_ok=True)
    deltas = changed = None
    if args.compare:
        deltas = compare(flat, flatten(_read_previous(Path(args.compare))))
    if kind == "kazqad":
        report = kazqad_report(figs, deltas)
        kazqad_chart(figs, out / "chart.png")
    else:
        if args.compare:
            changed = _changed_outcomes(Path(args.compare).parent / "questions.jsonl", rows)
        report = questions_report(figs, rows, deltas, changed)
        questions_chart(figs, out / "chart.png")
    (out / "figures.json").write_text(
        json.dumps(figs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    _write_jsonl(out / "questions.jsonl", rows)
    (out / "report.md").write_text(report, encoding="utf-8")
    print(summary(figs, kind))
    print(f"report: {out / 'report.md'}")

    failures = gate(flat, thresholds)
    for line in failures:
        print(f"kazrag eval: threshold failed: {line}", file=sys.stderr)
    if failures:
        return 1
    if thresholds:
        print(f"all {len(thresholds)} thresholds met", file=sys.stderr)
    return 0


def summary(figs: Figures, kind: str) -> str:
    """A few headline figures on one line for the terminal."""
    flat = flatten(figs)
    if kind == "kazqad":
        names = [
            "retrieval.lexical.recall@5",
            "retrieval.dense.recall@5",
            "retrieval.hybrid.recall@5",
            "retrieval.hybrid.mrr@10",
            "answer.gold_in_answer",
            "answer.f1",
        ]
    else:
        names = [
            "retrieval.hit@5",
            "retrieval.mrr@10",
            "answer.keyfacts_all",
            "citations.precision",
            "abstention.f1",
            "language.match",
            "latency_ms.total.p95",
        ]
    return "  ".join(f"{n}={_fmt_metric(n, flat.get(n))}" for n in names)
