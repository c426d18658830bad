"""``OnlineBias``: its step is SGD on the masked softmax log-likelihood, and served rows are
remembered once, within a byte budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.errors import ConfigError
from recloop.models.online_bias import OnlineBias


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    n_items = draw(st.integers(2, 12))
    rows = draw(st.integers(1, 5))
    scores = np.array(
        draw(st.lists(st.floats(-20, 20), min_size=rows * n_items, max_size=rows * n_items)),
        np.float32,
    ).reshape(rows, n_items)
    items = np.array(
        draw(st.lists(st.integers(0, n_items - 1), min_size=rows, max_size=rows)), np.int64
    )
    seen = [
        np.array(sorted(draw(st.sets(st.integers(0, n_items - 1), max_size=n_items - 1))), np.int64)
        for _ in range(rows)
    ]
    start = np.array(
        draw(st.lists(st.floats(-1, 1), min_size=n_items, max_size=n_items)), np.float32
    )
    return scores, items, seen, start


@settings(max_examples=150, deadline=None)
@given(batches(), st.floats(0.001, 1.0))
def test_a_step_is_sgd_on_the_masked_softmax_log_likelihood(batch: tuple, lr: float) -> None:
    scores, items, seen, start = batch
    bias = OnlineBias(lr, len(start))
    bias.value = start.copy()
    loss = bias.step(scores + start, items, seen)
    # autograd of the same likelihood, rows whose item was already seen left out
    keep = [r for r in range(len(items)) if items[r] not in set(seen[r].tolist())]
    b = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    if keep:
        q = torch.tensor(scores, dtype=torch.float64) + b
        mask = torch.zeros_like(q, dtype=torch.bool)
        for r, s in enumerate(seen):
            mask[r, torch.as_tensor(s, dtype=torch.long)] = True
        logp = torch.log_softmax(q.masked_fill(mask, float("-inf")), 1)
        ll = logp[torch.as_tensor(keep), torch.as_tensor(items[keep])]
        ll.sum().backward()
        assert loss == pytest.approx(float(-ll.mean().detach()), rel=1e-4, abs=1e-4)
        expected = start + lr * b.grad.numpy()
    else:
        assert loss == 0.0
        expected = start
    np.testing.assert_allclose(bias.value, expected, rtol=1e-4, atol=1e-4)
    # the step moves probability mass around: the offsets' sum is kept
    assert float(bias.value.sum()) == pytest.approx(float(start.sum()), abs=1e-3)


def test_items_beyond_the_scores_or_already_seen_teach_nothing() -> None:
    bias = OnlineBias(0.5, 4)
    assert (
        bias.step(
            np.zeros((2, 3), np.float32), np.array([3, 1]), [np.array([], np.int64), np.array([1])]
        )
        == 0.0
    )
    assert not bias.value.any()


def test_growing_adds_zero_offsets_and_scores_get_them_added() -> None:
    bias = OnlineBias(0.5, 2)
    bias.step(np.zeros((1, 2), np.float32), np.array([1]), [np.array([], np.int64)])
    bias.grow(4)
    assert bias.value.tolist() == [-0.25, 0.25, 0.0, 0.0]
    assert bias.add_to(np.ones((1, 3), np.float32)).tolist() == [[0.75, 1.25, 1.0]]


def test_served_rows_are_recalled_once_by_user_and_history_length() -> None:
    bias = OnlineBias(0.1, 3)
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias.remember(np.array([7, 8]), [2, 5], rows)
    rows[:] = -1  # remembered as copies
    assert bias.recall(7, 3, 3) is None  # another history length: another state
    np.testing.assert_array_equal(bias.recall(7, 2, 3), [0, 1, 2])  # type: ignore[arg-type]
    assert bias.recall(7, 2, 3) is None  # once
    assert bias.recall(8, 5, 4) is None  # items grew since: the row is stale


def test_remembering_is_bounded_and_only_for_requests_while_learning() -> None:
    bias = OnlineBias(0.1, 4, cache_bytes=3 * 4 * 4)  # room for 3 rows of 4 items
    for u in range(5):
        bias.remember(np.array([u]), [1], np.zeros((1, 4), np.float32))
    assert [bias.recall(u, 1, 4) is not None for u in range(5)] == [False, False, True, True, True]
    bias.remember(
        np.arange(OnlineBias.REMEMBER_ROWS + 1),
        [1] * (OnlineBias.REMEMBER_ROWS + 1),
        np.zeros((OnlineBias.REMEMBER_ROWS + 1, 4), np.float32),
    )  # an evaluation's batch
    assert bias.recall(0, 1, 4) is None
    off = OnlineBias(0.0, 4)
    off.remember(np.array([0]), [1], np.zeros((1, 4), np.float32))
    assert off.recall(0, 1, 4) is None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), True, None])
def test_bad_rates_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="online_bias_lr"):
        OnlineBias(bad)  # type: ignore[arg-type]
