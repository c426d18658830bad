"""``ease``: the closed form, the per-user running sums, recency weighting, growth and the
online refresh. The shared contract is in ``tests/test_conformance.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.errors import ConfigError
from recloop.models import OnlineBatch
from recloop.models.ease import EASE, _Sums, solve_ease
from recloop.online import OnlineConfig
from synthdata import synthetic


@pytest.fixture(scope="module")
def groups_df() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def fitted(groups_df: pd.DataFrame) -> Recommender:
    return Recommender(model="ease", seed=0, online=OnlineConfig(enabled=False)).fit(groups_df)


def _model(rec: Recommender) -> EASE:
    assert isinstance(rec.model_, EASE)
    return rec.model_


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 12), st.floats(0.1, 50.0))
def test_the_closed_form_solves_the_constrained_ridge(seed: int, k: int, reg: float) -> None:
    """B minimises |X - XB|^2 + reg |B|^2 with diag(B) = 0: off the diagonal,
    (G + reg I) B equals G (the stationarity condition), and its diagonal is 0."""
    x = (np.random.default_rng(seed).random((30, k)) < 0.3).astype(np.float64)
    gram = x.T @ x
    b = solve_ease(gram, reg).astype(np.float64)
    assert np.all(np.diag(b) == 0)
    lhs = (gram + reg * np.eye(k)) @ b
    off = ~np.eye(k, dtype=bool)
    np.testing.assert_allclose(lhs[off], gram[off], rtol=1e-4, atol=1e-4)


def test_scores_are_the_rows_of_b_summed_over_the_history(
    fitted: Recommender, groups_df: pd.DataFrame
) -> None:
    model = _model(fitted)
    # the same B from a user-item matrix built directly
    users = groups_df.user_id.astype(str).map(fitted.users_.get).to_numpy()
    items = groups_df.item_id.astype(str).map(fitted.items_.get).to_numpy()
    x = np.zeros((fitted.n_users, fitted.n_items))
    x[users, items] = 1.0
    b = solve_ease(x.T @ x, model.reg)
    np.testing.assert_allclose(model.b_, b, rtol=1e-4, atol=1e-5)
    for u in (0, 5, 17):
        h = np.asarray(fitted.sequences_[u], np.int64)
        np.testing.assert_allclose(
            model.score(np.array([u]), [h])[0],
            b[h[-model.history_len :]].sum(0),
            rtol=1e-4,
            atol=1e-5,
        )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 11), min_size=1, max_size=40),
    st.integers(1, 6),
    st.lists(st.integers(0, 40), min_size=1, max_size=8),
)
def test_running_sums_equal_a_fresh_sum(history: list[int], length: int, cuts: list[int]) -> None:
    """Requests for growing prefixes of one user's history (in any order, repeated), and
    for another history of the same user now and then (a caller may pass any), give the sum
    over the last ``length`` items asked for, as if computed afresh."""
    b = np.random.default_rng(len(history)).standard_normal((10, 10)).astype(np.float32)
    row_of = np.array([*range(10), -1, -1], np.int64)  # items 10 and 11 are not modelled
    sums, h = _Sums(length), np.asarray(history, np.int64)
    other = (h + 1) % 12
    for j, cut in enumerate(sorted(cuts) + cuts):
        prefix = (other if j % 3 == 2 else h)[: max(1, min(cut, len(h)))]
        tail = row_of[prefix[-length:]]
        expect = b[tail[tail >= 0]].sum(0)
        np.testing.assert_allclose(sums.row(b, row_of, 3, prefix), expect, rtol=1e-5, atol=1e-5)


def test_recent_items_weigh_more_when_asked(groups_df: pd.DataFrame) -> None:
    rec = Recommender(model="ease", seed=0, recent_len=3, recent_weight=2.0).fit(groups_df)
    model = _model(rec)
    h = np.asarray(rec.sequences_[4], np.int64)
    assert len(h) > 3
    b = model.b_
    assert b is not None
    expect = b[h[-model.history_len :]].sum(0) + 2.0 * b[h[-3:]].sum(0)
    np.testing.assert_allclose(model.score(np.array([4]), [h])[0], expect, rtol=1e-4, atol=1e-5)


def test_items_past_max_items_and_new_items_score_zero(groups_df: pd.DataFrame) -> None:
    rec = Recommender(model="ease", seed=0, max_items=10, online=OnlineConfig(enabled=False)).fit(
        groups_df
    )
    model = _model(rec)
    assert len(model.head_) == 10 and model.b_ is not None and model.b_.shape == (10, 10)
    counts = np.bincount([rec.items_.get(str(i)) for i in groups_df.item_id], minlength=rec.n_items)
    assert counts[model.head_].min() >= np.sort(counts)[-10]  # the most frequent items
    rec.update({"user_id": "0", "item_id": "brand-new", "timestamp": 2e9})
    model.grow(rec.n_users, rec.n_items)  # the learner grows the tables (off here)
    row = model.score(np.array([0]), [np.asarray(rec.sequences_[0], np.int64)])[0]
    outside = np.setdiff1d(np.arange(rec.n_items), model.head_)
    assert row.shape == (rec.n_items,) and not row[outside].any() and row[model.head_].any()


def _batch(users: list[int], items: list[int], hists: list[list[int]]) -> OnlineBatch:
    return OnlineBatch(
        np.array(users),
        np.array(items),
        np.ones(len(users), np.float32),
        np.ones(len(users), np.float32),
        [np.asarray(h, np.int64) for h in hists],
    )


def test_online_counts_and_refresh(fitted: Recommender) -> None:
    model = EASE(refresh_every=2)
    model.set_state(_model(fitted).get_state())
    gram, b = model.gram_.copy(), model.b_.copy()  # type: ignore[union-attr]
    model.learn(_batch([0], [5], [[1, 2]]))  # item 5 joins a user who had 1 and 2
    assert (
        model.gram_[5, 5] == gram[5, 5] + 1
        and model.gram_[5, 1] == gram[5, 1] + 1 == model.gram_[1, 5]
    )
    assert model.gram_[1, 2] == gram[1, 2]
    np.testing.assert_array_equal(model.b_, b)  # one event: not solved again yet
    model.learn(_batch([0, 0], [1, 7], [[1, 2, 5], [1, 2, 5, 1]]))  # a repeat counts nothing
    assert model.gram_[1, 1] == gram[1, 1]
    np.testing.assert_allclose(model.b_, solve_ease(model.gram_, model.reg), rtol=1e-5)
    # refresh 0 (as in hybrid): nothing counted, B as fitted
    frozen = EASE(refresh_every=0)
    frozen.set_state(_model(fitted).get_state())
    frozen.learn(_batch([0], [5], [[1, 2]]))
    np.testing.assert_array_equal(frozen.gram_, gram)


def test_save_load_round_trip(fitted: Recommender, tmp_path: Any) -> None:
    fitted.save(tmp_path / "e")
    back = Recommender.load(tmp_path / "e")
    for user in ("3", "8"):
        np.testing.assert_allclose(back.score_all(user)[1], fitted.score_all(user)[1], rtol=1e-6)


def test_invalid_hyperparameters_are_refused() -> None:
    for key, bad in (
        ("reg", 0.0),
        ("reg", float("nan")),
        ("recent_weight", -1.0),
        ("max_items", 0),
        ("history_len", 0),
        ("recent_len", 0),
        ("refresh_every", -1),
        ("refresh_every", 1.5),
    ):
        with pytest.raises(ConfigError, match=key):
            EASE(**{key: bad})


def test_items_held_out_for_early_stopping_count_too(groups_df: pd.DataFrame) -> None:
    """A closed form stops nowhere: fitted with each user's latest item held out (as
    ``hybrid`` shares its data with parts that stop early), it solves the same B."""
    whole = Recommender(model="ease", seed=0).fit(groups_df)
    held = Recommender(model="ease", seed=0).fit(groups_df, validation=True)
    np.testing.assert_allclose(_model(held).b_, _model(whole).b_, rtol=1e-5, atol=1e-6)
