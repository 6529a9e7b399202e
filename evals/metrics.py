"""Pure evaluation metrics: from per-question records to the figures of a run.

Nothing here loads a model or reads a file, so every figure can be checked by hand in
``tests/test_metrics.py``. ``evals/evaluation.py`` runs the system, turns each answer into a
:class:`Record` (what the system did, beside the gold data), and calls :func:`figures`.

Definitions (where the issue left a choice, the choice is written here):

* A *span* is ``(doc_id, start, end)`` in raw character offsets, half-open. Two spans overlap
  when they are in the same document and share at least one character.
* Retrieval (answerable questions whose evidence could be located): a retrieved chunk is
  relevant when it overlaps any evidence span. ``hit@k``: some relevant chunk in the top k (for
  multi-document questions one piece of evidence suffices; ``all_evidence@5`` asks for every
  piece). ``mrr@10``: 1 / rank of the first relevant chunk, 0 beyond 10. ``ndcg@10``: binary
  gains, ``1 / log2(rank + 1)``; the ideal list puts ``min(R, 10)`` relevant chunks first, with
  ``R`` the number of chunks *in the whole index* that overlap the evidence (the usual
  definition; overlapping chunks can make R larger than the number of evidence quotes).
* Key facts: a keyword is found when it occurs in the answer, ignoring case and spacing.
  ``keyfact_recall`` is the mean share found over answerable questions; ``keyfacts_all`` the
  share of answerable questions with every keyword found. Abstentions count as nothing found.
* ``token_f1``: SQuAD-style token F1 of the answer (markers removed) against the reference
  answer, mean over answerable questions. The reference answers of ru/en questions are in
  ru/en while the offline answers quote Kazakh, so read it per language.
* Citations (answerable questions): ``precision`` = cited spans overlapping an evidence span /
  all citations (micro-averaged over citations); ``recall`` = evidence quotes overlapped by some
  citation / all located evidence quotes; ``recall_docs`` = evidence documents cited at least
  once / evidence documents (per question, micro-averaged).
* Abstention: the positive class is *unanswerable*. ``precision`` = abstained-on-unanswerable /
  all abstentions; ``recall`` = abstained-on-unanswerable / unanswerable; ``false_abstention_rate``
  = abstained-on-answerable / answerable; ``accuracy`` = the decision was right.
* Language match: the language of the answer's *own* words (source text quoted in «…» and the
  markers removed; the whole text when nothing else is left) equals the question's language.
* Latency: p50/p95 (linear interpolation) of every ``timings_ms`` stage over all questions.

A figure is ``None`` (``null`` in JSON) when no question defines it (e.g. abstention precision
when the system never abstained).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Span = tuple[str, int, int]
Figures = dict[str, Any]

# --------------------------------------------------------------------------- spans and ranks


def overlaps(a: Span, b: Span) -> bool:
    """True when two half-open raw spans share a character of the same document."""
    return a[0] == b[0] and max(a[1], b[1]) < min(a[2], b[2])


def relevance(retrieved: Sequence[Span], evidence: Sequence[Span]) -> list[bool]:
    """For each retrieved span, whether it overlaps any evidence span."""
    return [any(overlaps(r, e) for e in evidence) for r in retrieved]


def covered(evidence: Sequence[Span], spans: Sequence[Span]) -> list[bool]:
    """For each evidence span, whether some span of ``spans`` overlaps it."""
    return [any(overlaps(e, s) for s in spans) for e in evidence]


def hit_at(rel: Sequence[bool], k: int) -> float:
    """1.0 when a relevant item is in the top ``k``."""
    return 1.0 if any(rel[:k]) else 0.0


def reciprocal_rank(rel: Sequence[bool], k: int = 10) -> float:
    """1 / rank of the first relevant item within the top ``k``, else 0."""
    for i, r in enumerate(rel[:k]):
        if r:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at(rel: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """Binary nDCG@k; the ideal ranking has ``min(n_relevant, k)`` relevant items on top.

    ``n_relevant`` is at least the number of relevant items retrieved (a caller that knows
    fewer would otherwise get a value above 1).
    """
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(rel[:k]) if r)
    ideal_n = min(max(n_relevant, sum(bool(r) for r in rel[:k])), k)
    if ideal_n == 0:
        return 0.0
    idcg = sum(1.0 / math.log2(i + 2) for i in range(ideal_n))
    return dcg / idcg


# --------------------------------------------------------------------------- text


_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")
# A line of the ru/en answer format that is nothing but a quoted source sentence:
# ``- «…» [1]``. Removed whole, so that «quotes» nested inside the sentence cannot leak.
_QUOTED_LINE = re.compile(r"^\s*(?:[-–—•*]\s*)?«.*»\s*(?:\[\d+\]\s*)*$")


def strip_markers(text: str) -> str:
    """The answer text without citation markers ``[n]``."""
    return _MARKER.sub("", text)


def _fold(text: str) -> str:
    return _SPACES.sub(" ", text.casefold()).strip()


def keyfacts(answer: str, keywords: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(found, missing)`` keywords: a case- and spacing-insensitive substring test."""
    folded = _fold(strip_markers(answer))
    found = [k for k in keywords if _fold(k) and _fold(k) in folded]
    return found, [k for k in keywords if k not in found]


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation (any script), no English articles."""
    text = text.casefold()
    text = "".join(
        " " if unicodedata.category(ch).startswith("P") or ch in string.punctuation else ch
        for ch in text
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """SQuAD exact match after :func:`normalize_answer`."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 after :func:`normalize_answer` (two empty strings score 1)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common: dict[str, int] = {}
    for tok in pred:
        common[tok] = common.get(tok, 0) + 1
    same = 0
    for tok in ref:
        if common.get(tok, 0) > 0:
            common[tok] -= 1
            same += 1
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_answer(text: str, gold: str) -> bool:
    """Whether the normalised ``gold`` occurs in the normalised ``text`` as whole words."""
    g = normalize_answer(gold)
    return bool(g) and f" {g} " in f" {normalize_answer(strip_markers(text))} "


def strip_quoted(text: str) -> str:
    """The answer's own words: quoted source lines, «…» spans (nested too) and markers removed."""
    lines = [ln for ln in text.splitlines() if not _QUOTED_LINE.match(ln)]
    out: list[str] = []
    depth = 0
    for ch in strip_markers("\n".join(lines)):
        if ch == "«":
            depth += 1
        elif ch == "»":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def answer_language(answer: str) -> str:
    """The language of the answer's own words (of the whole text when it is all quotation)."""
    from rag.language import detect_language

    own = strip_quoted(answer)
    if not any(ch.isalpha() for ch in own):
        own = strip_markers(answer)
    return detect_language(own)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation (numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """One question of a run: the gold data beside what the system did (JSON-friendly)."""

    id: str
    question: str
    lang: str
    type: str
    answerable: bool
    answer: str
    abstained: bool
    reference: str = ""
    keywords: tuple[str, ...] = ()
    evidence: tuple[Span, ...] = ()  # located evidence quotes
    unlocated: int = 0  # evidence quotes that could not be found in the corpus
    n_relevant: int = 0  # chunks of the index that overlap the evidence (nDCG's ideal list)
    retrieved: tuple[Span, ...] = ()  # the ranked chunks (at least 10 when available)
    citations: tuple[Span, ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    split: str = ""


@dataclass(frozen=True)
class Scores:
    """Per-question figures; the run's figures are means and shares of these."""

    relevant_ranks: tuple[int, ...]
    evidence_ranks: tuple[int | None, ...]  # per evidence span: first rank covering it
    retrieval: dict[str, float] | None  # None: no located evidence (not counted)
    keyfacts_found: tuple[str, ...]
    keyfacts_missing: tuple[str, ...]
    keyfact_recall: float | None
    token_f1: float | None
    citation_hits: tuple[bool, ...]
    evidence_cited: tuple[bool, ...]
    docs_cited: tuple[int, int]  # (evidence documents cited, evidence documents)
    answer_language: str
    language_match: bool


def score(rec: Record) -> Scores:
    """Score one record (see the module docstring for the definitions)."""
    rel = relevance(rec.retrieved, rec.evidence)
    evidence_ranks = tuple(
        next((i + 1 for i, r in enumerate(rec.retrieved) if overlaps(r, e)), None)
        for e in rec.evidence
    )
    retrieval = None
    if rec.answerable and rec.evidence:
        retrieval = {
            "hit@1": hit_at(rel, 1),
            "hit@5": hit_at(rel, 5),
            "mrr@10": reciprocal_rank(rel, 10),
            "ndcg@10": ndcg_at(rel, rec.n_relevant, 10),
            "all_evidence@5": float(all(r is not None and r <= 5 for r in evidence_ranks)),
        }
    found, missing = keyfacts(rec.answer, rec.keywords) if not rec.abstained else ([], [])
    if rec.abstained:
        missing = list(rec.keywords)
    recall = len(found) / len(rec.keywords) if rec.answerable and rec.keywords else None
    f1 = None
    if rec.answerable and rec.reference:
        f1 = 0.0 if rec.abstained else token_f1(strip_markers(rec.answer), rec.reference)
    ev_docs = {e[0] for e in rec.evidence}
    cited_docs = {c[0] for c in rec.citations}
    lang = answer_language(rec.answer)
    return Scores(
        relevant_ranks=tuple(i + 1 for i, r in enumerate(rel) if r),
        evidence_ranks=evidence_ranks,
        retrieval=retrieval,
        keyfacts_found=tuple(found),
        keyfacts_missing=tuple(missing),
        keyfact_recall=recall,
        token_f1=f1,
        citation_hits=tuple(any(overlaps(c, e) for e in rec.evidence) for c in rec.citations),
        evidence_cited=tuple(covered(rec.evidence, rec.citations)),
        docs_cited=(len(ev_docs & cited_docs), len(ev_docs)),
        answer_language=lang,
        language_match=lang == rec.lang,
    )


# --------------------------------------------------------------------------- aggregation


def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _round(x: Any, nd: int = 4) -> Any:
    if isinstance(x, float):
        return round(x, nd)
    if isinstance(x, dict):
        return {k: _round(v, nd) for k, v in x.items()}
    return x


RETRIEVAL_KEYS = ("hit@1", "hit@5", "mrr@10", "ndcg@10", "all_evidence@5")
LATENCY_STAGES = ("retrieve", "generate", "total")


def group_figures(pairs: Sequence[tuple[Record, Scores]]) -> Figures:
    """The figures of one group of scored records (the whole run, a language, a type)."""
    answerable = [(r, s) for r, s in pairs if r.answerable]
    unanswerable = [(r, s) for r, s in pairs if not r.answerable]
    with_ev = [s.retrieval for _, s in answerable if s.retrieval is not None]
    retrieval: dict[str, Any] = {"n": len(with_ev)}
    for key in RETRIEVAL_KEYS:
        retrieval[key] = _mean(m[key] for m in with_ev)

    kf = [s.keyfact_recall for _, s in answerable if s.keyfact_recall is not None]
    answer = {
        "n": len(answerable),
        "keyfact_recall": _mean(kf),
        "keyfacts_all": _mean(1.0 if x == 1.0 else 0.0 for x in kf),
        "token_f1": _mean(s.token_f1 for _, s in answerable),
    }

    hits = [h for _, s in answerable for h in s.citation_hits]
    ev_cited = [c for _, s in answerable for c in s.evidence_cited]
    docs = [s.docs_cited for _, s in answerable]
    answered = [(r, s) for r, s in answerable if not r.abstained]
    citations = {
        "n": len(hits),
        "precision": _ratio(sum(hits), len(hits)),
        "recall": _ratio(sum(ev_cited), len(ev_cited)),
        "recall_docs": _ratio(sum(d[0] for d in docs), sum(d[1] for d in docs)),
        "answers_with_citation": _ratio(sum(bool(r.citations) for r, _ in answered), len(answered)),
    }

    tp = sum(r.abstained for r, _ in unanswerable)
    fp = sum(r.abstained for r, _ in answerable)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, len(unanswerable))
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    abstention = {
        "n_unanswerable": len(unanswerable),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_abstention_rate": _ratio(fp, len(answerable)),
        "accuracy": _ratio(sum(r.abstained != r.answerable for r, _ in pairs), len(pairs)),
    }

    stages = list(LATENCY_STAGES) + sorted(
        {k for r, _ in pairs for k in r.timings_ms} - set(LATENCY_STAGES)
    )
    latency = {}
    for stage in stages:
        vals = [float(r.timings_ms[stage]) for r, _ in pairs if stage in r.timings_ms]
        latency[stage] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95)}

    return _round(
        {
            "n": len(pairs),
            "retrieval": retrieval,
            "answer": answer,
            "citations": citations,
            "abstention": abstention,
            "language": {"match": _ratio(sum(s.language_match for _, s in pairs), len(pairs))},
            "latency_ms": latency,
        }
    )


@dataclass(frozen=True)
class Target:
    """A goal of the issue, shown with pass/fail in the report."""

    metric: str
    op: str  # ">=" or "<="
    value: float
    label: str


# Issue 3's acceptance targets.
TARGETS = (
    Target("answer.keyfacts_all", ">=", 0.8, "key facts in ≥ 80% of answerable answers"),
    Target("citations.precision", ">=", 0.9, "citation precision ≥ 90%"),
    Target("abstention.recall", ">=", 0.8, "abstains on ≥ 80% of unanswerable"),
    Target("abstention.false_abstention_rate", "<=", 0.1, "abstains on ≤ 10% of answerable"),
    Target("language.match", ">=", 0.9, "answer language matches ≥ 90%"),
    Target("latency_ms.total.p95", "<=", 500.0, "offline answer latency p95 ≤ 500 ms"),
)


def passes(value: float | None, op: str, threshold: float) -> bool:
    """Whether ``value`` meets ``op threshold``; an undefined value never passes."""
    if value is None:
        return False
    return value >= threshold if op == ">=" else value <= threshold


def check_targets(flat: Mapping[str, Any], targets: Sequence[Target] = TARGETS) -> list[Figures]:
    """One row per target: metric, op, threshold, value, passed."""
    return [
        {
            "metric": t.metric,
            "label": t.label,
            "op": t.op,
            "threshold": t.value,
            "value": flat.get(t.metric),
            "passed": passes(flat.get(t.metric), t.op, t.value),
        }
        for t in targets
    ]


def figures(records: Sequence[Record]) -> Figures:
    """All figures of a run: overall, by language, by question type, and the issue's targets.

    The overall figures sit at the top level, so their flat names are ``retrieval.hit@5``,
    ``answer.keyfacts_all``…; the groups are ``by_lang.<lang>.…`` and ``by_type.<type>.…``.
    """
    pairs = [(r, score(r)) for r in records]
    out = group_figures(pairs)
    out["evidence_unlocated"] = sum(r.unlocated for r in records)
    out["by_lang"] = {
        lang: group_figures([p for p in pairs if p[0].lang == lang])
        for lang in sorted({r.lang for r in records}, key=_lang_order)
    }
    out["by_type"] = {
        typ: group_figures([p for p in pairs if p[0].type == typ])
        for typ in sorted({r.type for r in records})
    }
    out["targets"] = check_targets(flatten(out))
    return out


def _lang_order(lang: str) -> tuple[int, str]:
    order = {"kk": 0, "ru": 1, "en": 2}
    return order.get(lang, 9), lang


# --------------------------------------------------------------------------- flat names, gates


def flatten(figs: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Numeric leaves under dotted names (``by_lang.kk.retrieval.hit@5``); lists are skipped."""
    out: dict[str, float | None] = {}
    for key, value in figs.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            out[name] = value
    return out


class ThresholdError(ValueError):
    """A ``--min`` argument that cannot be used (bad syntax or unknown metric)."""


@dataclass(frozen=True)
class Threshold:
    """A regression gate: ``metric op value``."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


_THRESHOLD = re.compile(r"^\s*([^\s<>=]+)\s*(<=|>=|=)\s*(\S+)\s*$")


def parse_threshold(text: str) -> Threshold:
    """Parse ``METRIC=VALUE`` (at least VALUE), ``METRIC>=VALUE`` or ``METRIC<=VALUE`` (at most).

    ``<=`` exists for the figures where lower is better (latency, false-abstention rate).
    """
    m = _THRESHOLD.match(text)
    if not m:
        raise ThresholdError(
            f"--min {text!r}: expected METRIC=VALUE (e.g. retrieval.hit@5=0.9) "
            "or METRIC<=VALUE for lower-is-better figures"
        )
    metric, op, raw = m.groups()
    try:
        value = float(raw)
    except ValueError as exc:
        raise ThresholdError(f"--min {text!r}: {raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise ThresholdError(f"--min {text!r}: the value must be a finite number")
    return Threshold(metric, "<=" if op == "<=" else ">=", value)


def check_names(thresholds: Sequence[Threshold], known: Iterable[str]) -> None:
    """Raise :class:`ThresholdError` naming every metric that the figures do not have."""
    names = set(known)
    unknown = [t.metric for t in thresholds if t.metric not in names]
    if unknown:
        sample = ", ".join(sorted(n for n in names if not n.startswith("by_"))[:12])
        raise ThresholdError(
            f"unknown metric(s) for --min: {', '.join(unknown)}. Names are the dotted keys "
            f"of figures.json, e.g. {sample}, by_lang.kk.retrieval.hit@5"
        )


def gate(flat: Mapping[str, float | None], thresholds: Sequence[Threshold]) -> list[str]:
    """The thresholds that fail, each as a readable line (empty list: the gate passes)."""
    failures = []
    for t in thresholds:
        value = flat.get(t.metric)
        if not passes(value, t.op, t.value):
            shown = "undefined (no question defines it)" if value is None else f"{value:g}"
            failures.append(f"{t.metric} = {shown}, required {t.op} {t.value:g}")
    return failures


def compare(
    new: Mapping[str, float | None], old: Mapping[str, float | None]
) -> dict[str, tuple[float | None, float | None]]:
    """``name -> (previous value, delta)`` for every figure of ``new`` (None where unknown)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, value in new.items():
        prev = old.get(name)
        delta = None if value is None or prev is None else round(value - prev, 6)
        out[name] = (prev, delta)
    return out


# --------------------------------------------------------------------------- KazQAD (open book)


@dataclass(frozen=True)
class KazqadRecord:
    """One KazQAD question: gold answers and relevant contexts beside what the system did.

    ``ranked`` holds, per retrieval mode, the distinct contexts (doc ids) of the ranked chunks,
    best first: a context split into several chunks counts at its best chunk's rank. ``span`` is
    the shortest answer span the system commits to: the first cited sentence.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    relevant: tuple[str, ...]
    ranked: Mapping[str, tuple[str, ...]]
    answer: str
    abstained: bool
    span: str
    cited: tuple[str, ...] = ()
    gold_in_passages: bool = False  # a gold answer occurs in the passages the generator read
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    search_ms: Mapping[str, float] = field(default_factory=dict)


# Published and measured anchors (shared/benchmarks/kazqad/README.md). The paper's setting
# differs: retrieval over the full 800k-passage Kazakh Wikipedia, not the 697 contexts here.
KAZQAD_PAPER = {
    "retrieval_ndcg@10": 0.389,
    "retrieval_mrr": 0.382,
    "reader_gold_passage_em": 0.385,
    "reader_gold_passage_f1": 0.542,
    "open_domain_em": 0.178,
    "open_domain_f1": 0.287,
}
KAZQAD_FLOOR = {"recall@1": 0.609, "recall@5": 0.855, "recall@10": 0.903, "mrr@10": 0.715}
KAZQAD_TARGETS = (
    Target("retrieval.lexical.recall@5", ">=", 0.855, "BM25 floor: Recall@5 ≥ 0.855"),
    Target("retrieval.lexical.mrr@10", ">=", 0.715, "BM25 floor: MRR@10 ≥ 0.715"),
    Target("retrieval.hybrid.recall@5", ">=", 0.92, "hybrid target: Recall@5 ≥ 0.92"),
    Target("retrieval.hybrid.mrr@10", ">=", 0.80, "hybrid target: MRR@10 ≥ 0.80"),
)
KAZQAD_MODES = ("lexical", "dense", "hybrid")


def kazqad_scores(rec: KazqadRecord) -> dict[str, Any]:
    """Per-question figures of a KazQAD record."""
    relevant = set(rec.relevant)
    retrieval: dict[str, Any] = {}
    for mode, docs in rec.ranked.items():
        rel = [d in relevant for d in docs[:10]]
        retrieval[mode] = {
            "first_rank": next((i + 1 for i, r in enumerate(rel) if r), None),
            "recall@1": hit_at(rel, 1),
            "recall@5": hit_at(rel, 5),
            "recall@10": hit_at(rel, 10),
            "all@10": sum(rel) / len(relevant) if relevant else 0.0,
            "mrr@10": reciprocal_rank(rel, 10),
            "ndcg@10": ndcg_at(rel, len(relevant), 10),
        }
    span = "" if rec.abstained else rec.span
    return {
        "retrieval": retrieval,
        "gold_in_answer": float(
            not rec.abstained and any(contains_answer(rec.answer, g) for g in rec.answers)
        ),
        "exact_match": max((exact_match(span, g) for g in rec.answers), default=0.0),
        "f1": max((token_f1(span, g) for g in rec.answers), default=0.0),
        "citation_hits": [d in relevant for d in rec.cited],
    }


def kazqad_figures(records: Sequence[KazqadRecord]) -> Figures:
    """Figures of an open-book KazQAD run (Recall@k is the share of questions with a relevant
    context in the top k, the definition behind the published floor)."""
    scored = [kazqad_scores(r) for r in records]
    modes = list(KAZQAD_MODES)  # always all three, so every name exists before a run
    modes += sorted({m for r in records for m in r.ranked} - set(modes))
    retrieval = {}
    for mode in modes:
        per = [s["retrieval"][mode] for s in scored if mode in s["retrieval"]]
        retrieval[mode] = {"n": len(per)} | {
            key: _mean(p[key] for p in per)
            for key in ("recall@1", "recall@5", "recall@10", "all@10", "mrr@10", "ndcg@10")
        }
    hits = [h for s in scored for h in s["citation_hits"]]
    answer = {
        "n": len(records),
        "gold_in_answer": _mean(s["gold_in_answer"] for s in scored),
        "exact_match": _mean(s["exact_match"] for s in scored),
        "f1": _mean(s["f1"] for s in scored),
        "abstained": _mean(float(r.abstained) for r in records),
        "gold_in_passages": _mean(float(r.gold_in_passages) for r in records),
    }
    latency = {}
    for stage in LATENCY_STAGES:
        vals = [float(r.timings_ms[stage]) for r in records if stage in r.timings_ms]
        latency[stage] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95)}
    search = {}
    for mode in modes:
        vals = [float(r.search_ms[mode]) for r in records if mode in r.search_ms]
        search[mode] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95)}
    out: Figures = _round(
        {
            "n": len(records),
            "retrieval": retrieval,
            "answer": answer,
            "citations": {"n": len(hits), "precision": _ratio(sum(hits), len(hits))},
            "latency_ms": latency,
            "search_ms": search,
        }
    )
    out["targets"] = check_targets(flatten(out), KAZQAD_TARGETS)
    return out
