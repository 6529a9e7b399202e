"""Fusing ranked lists from the dense and the lexical retriever.

Two standard methods: weighted reciprocal-rank fusion (robust, ignores score scales) and
weighted min-max score fusion (keeps how *much* better the top hit is). Which one and which
weights are chosen on data: see ``evals/experiments`` and BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Sequence

Ranked = Sequence[tuple[int, float]]  # (row, score), best first
# The usual RRF constant (Cormack et al. 2009); the ``rrf_k`` setting defaults to it.
RRF_K = 60


def rrf(
    lists: Sequence[Ranked], weights: Sequence[float], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: ``sum_i w_i / (k + rank_i)``, best first."""
    if len(lists) != len(weights):
        raise ValueError("one weight per ranked list")
    fused: dict[int, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        if w <= 0:
            continue
        for rank, (row, _) in enumerate(ranked, start=1):
            fused[row] = fused.get(row, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


def minmax(lists: Sequence[Ranked], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores (a row missing from a list scores 0 there)."""
    if len(lists) != len(weights):
        raise ValueError("one weight per ranked list")
    fused: dict[int, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        if w <= 0 or not ranked:
            continue
        scores = [s for _, s in ranked]
        lo, hi = min(scores), max(scores)
        span = hi - lo
        for row, s in ranked:
            norm = (s - lo) / span if span > 0 else 1.0
            fused[row] = fused.get(row, 0.0) + w * norm
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


def fuse(
    lists: Sequence[Ranked], weights: Sequence[float], method: str, k: int = RRF_K
) -> list[tuple[int, float]]:
    """Dispatch to :func:`rrf` or :func:`minmax` (the ``fusion`` setting chooses; no default
    here, so the one default lives in :class:`rag.settings.Settings`)."""
    if method == "rrf":
        return rrf(lists, weights, k)
    if method == "minmax":
        return minmax(lists, weights)
    raise ValueError(f"unknown fusion method {method!r} (rrf or minmax)")
