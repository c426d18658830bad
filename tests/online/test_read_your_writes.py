"""Once ``update`` returns, ``recommend`` for that user never shows the item again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recloop import Recommender
from synthdata import synthetic

events = st.lists(
    st.tuples(
        st.integers(0, 70),
        st.one_of(st.integers(0, 90), st.sampled_from(["x1", "x2", "x3"])),
        st.sampled_from(["view", "click", "purchase", "rating", "skip", "dislike", "add_to_cart"]),
    ),
    min_size=1,
    max_size=40,
)


@pytest.fixture(scope="module")
def fitted():
    return {m: Recommender(model=m, seed=0).fit(synthetic()) for m in ("mf", "sasrec")}


@pytest.mark.parametrize("model", ["mf", "sasrec"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(evs=events)
def test_an_updated_item_never_comes_back(fitted, model, evs):
    rec = fitted[model]
    for user, item, kind in evs:
        rec.update({"user_id": user, "item_id": item, "type": kind, "value": 4.0})
        shown = rec.recommend(user, k=1000)
        assert str(item) not in shown
        assert str(item) not in rec.recommend_batch([str(user)], k=50)[0]


def test_dataframe_updates_with_event_column_are_accepted():
    rec = Recommender(model="mf", seed=0).fit(synthetic())
    df = pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [3, 5],
            "event": ["click", "view"],
            "value": [1.0, np.nan],
            "timestamp": [2_000_000, 2_000_001],
        }
    )
    assert rec.update(df) == 2
    assert "3" not in rec.recommend(1, k=1000) and "5" not in rec.recommend("2", k=1000)
