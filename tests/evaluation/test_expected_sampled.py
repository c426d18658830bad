"""The sampled protocol's expected HR@k, checked against enumeration and against draws."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.evaluation.metrics import expected_sampled_hit_rate
from recloop.evaluation.protocols import evaluate


@settings(max_examples=60, deadline=None)  # the first call imports scipy.stats
@given(
    st.integers(1, 9).flatmap(
        lambda m: st.tuples(st.just(m), st.integers(0, m), st.integers(1, m))
    ),
    st.integers(1, 4),
)
def test_matches_enumeration_of_every_draw(case, k):
    pool, rank, n = case
    # items 0..rank-1 score above the held-out item; a hit is fewer than k of them drawn
    draws = list(itertools.combinations(range(pool), n))
    exact = np.mean([sum(x < rank for x in d) < k for d in draws])
    assert np.isclose(expected_sampled_hit_rate(np.array([rank]), np.array([pool]), n, k), exact)


@settings(deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=30), st.integers(1, 20))
def test_bounded_and_falls_as_ranks_grow(ranks, k):
    r, pools = np.array(ranks), np.full(len(ranks), 500)
    p = expected_sampled_hit_rate(r, pools, 100, k)
    assert 0.0 <= p <= 1.0
    assert expected_sampled_hit_rate(r + 10, pools, 100, k) <= p + 1e-12
    if (r < k).all():
        assert p == 1.0


class _FixedScores:
    """A fixed random score per item, the same for every user: a scorer with no model."""

    def __init__(self, items: list[str], seed: int) -> None:
        self.items = items
        self.values = dict(
            zip(items, np.random.default_rng(seed).permutation(len(items)).astype(float))
        )

    def score(self, user_id: object, item_ids: list[str]) -> np.ndarray:
        return np.array([self.values[i] for i in item_ids])

    def score_all(self, user_id: object) -> tuple[list[str], np.ndarray]:
        return self.items, self.score(user_id, self.items)


def test_full_protocol_reports_what_sampled_draws_average_to():
    rng = np.random.default_rng(0)
    items = [str(i) for i in range(300)]
    rows = [(u, str(i)) for u in range(40) for i in rng.choice(300, 30, replace=False)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    test = df.groupby("user_id").tail(1)
    train = df.drop(test.index)
    rec = _FixedScores(items, 1)
    expected = evaluate(rec, train, test, "full", k=10, n_negatives=50)["sampled_hr@10_expected"]
    draws = [
        evaluate(rec, train, test, "sampled", k=10, n_negatives=50, seed=s)["hr@10"]
        for s in range(60)
    ]
    # 60 draws of 40 users: the mean of draws sits within a few standard errors of the expectation
    assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / np.sqrt(len(draws)) + 1e-9
    assert 0.0 < expected < 1.0


def test_sampled_protocol_ranks_among_what_is_left_when_few_items_are_unseen():
    """A user who has seen all but a few items is ranked among those (the draw of 100
    negatives cannot be filled, and must not loop)."""
    import pandas as pd

    from recloop.evaluation.protocols import evaluate

    items = [f"i{n}" for n in range(6)]
    # the catalogue is every item of train and test: another user brings i4 and i5
    train = pd.DataFrame({"user_id": ["u"] * 3 + ["v"] * 2, "item_id": items[:3] + items[4:]})
    test = pd.DataFrame({"user_id": ["u"], "item_id": [items[3]]})
    asked: list[list[str]] = []

    class Scorer:
        def score(self, user_id: object, item_ids: list[str]) -> np.ndarray:
            asked.append(list(item_ids))
            return np.array([1.0 if i == "i5" else 0.5 if i == "i3" else 0.0 for i in item_ids])

    out = evaluate(Scorer(), train, test, protocol="sampled", k=1, n_negatives=100)
    assert sorted(asked[0][1:]) == ["i4", "i5"]  # every unseen item but the held-out one
    assert out["hr@1"] == 0.0  # i5 outranks the held-out i3
