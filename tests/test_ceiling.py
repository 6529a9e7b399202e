"""The ceiling study's pure measures, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from evals.experiments.ceiling import Case, auc, oracle_keyfacts, top1
from rag.generation import ScoredSentence
from rag.schema import Chunk, Hit, Sentence


def _case(texts: list[str], labels: list[bool], keywords=("алма",), answerable=True) -> Case:
    chunk = Chunk("c1", "d1", "T", " ".join(texts), 0, 100, ())
    hit = Hit(chunk, 1.0, 1)
    scored = [
        ScoredSentence(Sentence(t, i, i + 1), hit, np.zeros(2), 0.0, 0.0, 0.0, 1.0 - i / 10)
        for i, t in enumerate(texts)
    ]
    return Case(
        "q", "?", "?", "kk", "fact", "dev", answerable, keywords, scored, labels, np.eye(len(texts))
    )


def test_auc_counts_wins_and_half_ties():
    assert auc([3, 2], [1, 0]) == 1.0
    assert auc([1], [1]) == 0.5
    assert auc([2, 0], [1]) == 0.5
    assert np.isnan(auc([], [1]))


def test_top1_with_the_generators_order_and_with_a_reranker():
    cases = [_case(["а", "б"], [False, True]), _case(["в", "г"], [True, False])]
    assert top1(cases) == 0.5
    assert top1(cases, lambda c: c.features[:, 1]) == 0.5  # picks the second sentence
    assert top1([_case(["а"], [True], answerable=False)]) != top1([_case(["а"], [True])])


def test_oracle_keyfacts_grows_with_the_number_of_sentences():
    case = _case(["бір", "алма бар", "үш"], [False, True, False])
    assert oracle_keyfacts([case], 1) == 0.0
    assert oracle_keyfacts([case], 2) == pytest.approx(1.0)
    assert oracle_keyfacts([case], None) == 1.0
