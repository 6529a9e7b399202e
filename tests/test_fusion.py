"""Fusion of ranked lists."""

import pytest

from rag.fusion import fuse, minmax, rrf


def test_rrf_matches_hand_computed_scores():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (1, 5.0)]
    fused = dict(rrf([dense, lexical], [1.0, 1.0], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [r for r, _ in rrf([dense, lexical], [1.0, 1.0])][:2] == [1, 3]


def test_minmax_normalises_each_list():
    dense = [(1, 0.90), (2, 0.85), (3, 0.80)]
    lexical = [(3, 10.0), (2, 0.0)]
    fused = dict(minmax([dense, lexical], [1.0, 1.5]))
    assert fused[1] == pytest.approx(1.0)
    assert fused[2] == pytest.approx(0.5)
    assert fused[3] == pytest.approx(0.0 + 1.5)


def test_zero_weight_ignores_a_list():
    dense = [(1, 0.9), (2, 0.8)]
    noise = [(7, 3.0), (8, 2.0)]
    assert [r for r, _ in fuse([dense, noise], [1.0, 0.0], "minmax")] == [1, 2]
    assert [r for r, _ in fuse([dense, noise], [1.0, 0.0], "rrf")] == [1, 2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="one weight"):
        rrf([[]], [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse([[]], [1.0], "max")
    assert fuse([[], []], [1.0, 1.0], "minmax") == []
