"""Recent popularity: decayed counts for the users a model cannot personalise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.engine.recent import RecentCounts
from recloop.models import OnlineBatch
from recloop.models.popularity import Popularity, decayed_counts


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.integers(0, 9), max_size=300),
    half_life=st.integers(1, 40),
    chunks=st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
def test_recent_counts_rank_like_brute_force_decay(
    events: list[int], half_life: int, chunks: list[int]
) -> None:
    split = len(events) // 3
    r = RecentCounts(half_life)
    r.reset(events[:split], 10)
    rest, pos = events[split:], 0
    while pos < len(rest):  # added in uneven batches, through many rebases
        step = chunks[pos % len(chunks)]
        r.add(rest[pos : pos + step])
        pos += step
    age = len(events) - 1 - np.arange(len(events))
    want = np.bincount(np.asarray(events, np.int64), weights=0.5 ** (age / half_life), minlength=10)
    got = r.values[:10] * 2.0 ** ((r.base - r.n) / half_life)  # back to "the latest event weighs 1"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        decayed_counts(np.asarray(events, np.int64), np.arange(len(events)), 10, half_life),
        want,
        rtol=1e-9,
        atol=1e-12,
    )


def test_cold_users_get_what_is_popular_now() -> None:
    old = [{"user_id": f"u{n}", "item_id": "old", "timestamp": n} for n in range(50)]
    df = pd.DataFrame(
        old
        + [
            {"user_id": "x", "item_id": "new", "timestamp": 60},
            {"user_id": "y", "item_id": "other", "timestamp": 61},
        ]
    )
    recent = Recommender(model="mf", seed=0, popularity_half_life=5, epochs=1).fit(df)
    plain = Recommender(model="mf", seed=0, popularity_half_life=0, epochs=1).fit(df)
    assert plain.recommend("stranger", k=1) == ["old"]
    recent.update([{"user_id": f"v{n}", "item_id": "new", "type": "click"} for n in range(12)])
    assert recent.recommend("stranger", k=1) == ["new"]  # 12 fresh clicks beat 50 stale ones
    assert recent.recommend("stranger", k=3)[1] == "old"


def test_recent_counts_survive_save_and_load(tmp_path) -> None:
    df = pd.DataFrame(
        {"user_id": [1, 2, 3, 4], "item_id": ["a", "a", "b", "c"], "timestamp": [1, 2, 3, 4]}
    )
    rec = Recommender(model="mf", seed=0, popularity_half_life=2, epochs=1).fit(df)
    rec.update([{"user_id": 9, "item_id": "c", "type": "click"}] * 3)
    rec.save(tmp_path / "snap")
    back = Recommender.load(tmp_path / "snap")
    assert back.recent_.half_life == 2 and back.recent_.n == rec.recent_.n
    np.testing.assert_array_equal(back.recent_.values[:3], rec.recent_.values[:3])
    assert back.recommend("nobody", k=3) == rec.recommend("nobody", k=3) == ["c", "a", "b"]


def test_popularity_model_does_not_count_replayed_events_again() -> None:
    model = Popularity(half_life_events=0)
    model.counts_ = np.zeros(3)
    batch = OnlineBatch(
        np.array([0, 1, 2]),
        np.array([2, 0, 0]),
        np.ones(3, np.float32),
        np.ones(3, np.float32),
        [np.zeros(0, np.int64)] * 3,
        n_fresh=1,
    )
    model.learn(batch)
    np.testing.assert_array_equal(model.counts_, [0.0, 0.0, 1.0])


def test_half_life_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match="half_life"):
        RecentCounts(-1)
    with pytest.raises(ValueError, match="half_life"):
        Recommender(model="popularity", popularity_half_life=2.5)  # type: ignore[arg-type]
