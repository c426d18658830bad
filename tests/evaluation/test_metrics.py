"""Metric bounds and invariances (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recloop.evaluation.metrics import auc, coverage, hit_rate, log_loss, mrr, ndcg, target_ranks

ranks = arrays(np.int64, st.integers(1, 50), elements=st.integers(0, 500))


@given(ranks, st.integers(1, 100))
def test_ranking_metrics_are_bounded_and_ordered(r, k):
    hr, nd, m = hit_rate(r, k), ndcg(r, k), mrr(r)
    assert 0 <= nd <= hr <= 1 and 0 < m <= 1
    assert hit_rate(r, k + 1) >= hr and ndcg(r, k + 1) >= nd


def test_ranking_metrics_known_values():
    r = np.array([0, 1, 9, 10])
    assert hit_rate(r, 10) == 0.75
    assert np.isclose(ndcg(r, 10), (1 + 1 / np.log2(3) + 1 / np.log2(11)) / 4)
    assert np.isclose(mrr(r), (1 + 1 / 2 + 1 / 10 + 1 / 11) / 4)


scores = arrays(np.float64, st.integers(4, 60), elements=st.floats(-5, 5))


@settings(max_examples=80)
@given(scores, st.data())
def test_auc_is_bounded_rank_invariant_and_antisymmetric(s, data):
    y = np.array(data.draw(st.lists(st.booleans(), min_size=len(s), max_size=len(s))))
    if y.all() or not y.any():
        assert np.isnan(auc(y, s))
        return
    a = auc(y, s)
    assert 0 <= a <= 1
    assert np.isclose(auc(y, s * 2.0), a)  # increasing maps that keep ties as they are
    assert np.isclose(auc(y, np.where(s > 0, s * 4.0, s)), a)
    assert np.isclose(auc(~y, s), 1 - a)


def test_auc_known_values():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5


@given(arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1)), st.data())
def test_log_loss_is_non_negative_and_zero_only_when_certain_and_right(p, data):
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(p), max_size=len(p))))
    assert log_loss(y, p) >= 0
    assert log_loss(y, y.astype(float)) < 1e-5


@settings(max_examples=60)
@given(arrays(np.float64, (3, 20), elements=st.floats(-3, 3, allow_nan=False)), st.data())
def test_target_ranks_match_a_sort_and_ignore_excluded(s, data):
    targets = np.array([data.draw(st.integers(0, 19)) for _ in range(3)])
    exclude = [
        np.array(
            [j for j in data.draw(st.lists(st.integers(0, 19), max_size=5)) if j != t],
            dtype=np.int64,
        )
        for t in targets
    ]
    r = target_ranks(s, targets, exclude)
    for b in range(3):
        keep = np.setdiff1d(np.arange(20), np.append(exclude[b], targets[b]))
        assert r[b] == int((s[b, keep] >= s[b, targets[b]]).sum())
    assert np.array_equal(target_ranks(s * 2.0, targets, exclude), r)


def test_coverage():
    assert coverage([["a", "b"], ["b", "c"]], 6) == 0.5
    assert coverage([], 5) == 0.0
