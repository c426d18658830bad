"""``Recommender._top_rows``: the best ``k`` recommendable items of each row, best first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.engine.recommender import Recommender

scores_st = st.integers(1, 4).flatmap(
    lambda rows: st.integers(1, 30).flatmap(
        lambda cols: st.tuples(
            st.lists(
                st.lists(
                    st.one_of(
                        st.integers(-3, 3).map(float), st.sampled_from([np.inf, -np.inf, np.nan])
                    ),
                    min_size=cols,
                    max_size=cols,
                ),
                min_size=rows,
                max_size=rows,
            ),
            st.lists(
                st.lists(st.integers(0, cols - 1), max_size=cols), min_size=rows, max_size=rows
            ),
        )
    )
)


@settings(max_examples=300, deadline=None)
@given(data=scores_st, k=st.integers(1, 35), exclude=st.booleans())
def test_top_rows_are_the_best_finite_unseen_items(
    data: tuple[list[list[float]], list[list[int]]], k: int, exclude: bool
) -> None:
    values, seen_lists = data
    scores = np.asarray(values, np.float32)
    seen = [np.asarray(sorted(set(s)), np.int64) for s in seen_lists]
    tops = Recommender._top_rows(scores.copy(), seen, k, exclude)
    for row, s, top in zip(scores, seen, tops):
        allowed = np.isfinite(row)
        if exclude:
            allowed[s] = False
        assert len(top) == len(set(top)) == min(k, int(allowed.sum()))
        assert all(allowed[t] for t in top)
        got = row[top]
        want = np.sort(row[allowed])[::-1][:k]
        np.testing.assert_array_equal(got, want)  # best first, and none better left out
