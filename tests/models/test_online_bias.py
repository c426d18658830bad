"""``OnlineBias``: its step is SGD on the masked softmax log-likelihood. ``WithOnlineBias``:
served rows are kept once, within a byte budget, and any model takes the offset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.errors import ConfigError
from recloop.models.base import FitOptions, RecModel, TrainData
from recloop.models.online_bias import OnlineBias, WithOnlineBias
from recloop.online import OnlineConfig


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


class _Fixed(RecModel):
    """Zero scores over ``n_items`` items, no parameter steps: served rows stay valid."""

    name = "fixed"

    def __init__(self, n_items: int) -> None:
        super().__init__(0)
        self.n_items_ = n_items

    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        return {}

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.zeros((len(user_idx), self.n_items_), np.float32)

    def hyperparameters(self) -> dict[str, Any]:
        return {}

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


def _hist(*lengths: int) -> list[np.ndarray]:
    return [np.arange(n, dtype=np.int64) for n in lengths]


def test_served_rows_are_recalled_once_by_user_and_history_length() -> None:
    model = WithOnlineBias(_Fixed(3), 0.1)
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    model.served(np.array([7, 8]), _hist(2, 5), rows)
    rows[:] = -1  # kept as copies
    assert model._recall(7, 3, 3) is None  # another history length: another state
    np.testing.assert_array_equal(model._recall(7, 2, 3), [0, 1, 2])  # type: ignore[arg-type]
    assert model._recall(7, 2, 3) is None  # once
    assert model._recall(8, 5, 4) is None  # items grew since: the row is stale


def test_a_row_served_before_a_step_gets_the_offset_as_it_is_now() -> None:
    model = WithOnlineBias(_Fixed(3), 0.5)
    model.served(np.array([1]), _hist(2), model.score(np.array([1]), _hist(2)))
    model.bias.step(np.zeros((1, 3), np.float32), np.array([2]), [np.array([0])])
    np.testing.assert_allclose(model._recall(1, 2, 3), model.bias.value)  # type: ignore[arg-type]


def test_serving_is_kept_bounded_and_only_for_requests_while_learning() -> None:
    model = WithOnlineBias(_Fixed(4), 0.1, cache_bytes=3 * 4 * 4)  # room for 3 rows of 4 items
    for u in range(5):
        model.served(np.array([u]), _hist(1), np.zeros((1, 4), np.float32))
    assert [model._recall(u, 1, 4) is not None for u in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    n = WithOnlineBias.SERVED_ROWS + 1
    model.served(np.arange(n), _hist(*[1] * n), np.zeros((n, 4), np.float32))  # an evaluation
    assert model._recall(0, 1, 4) is None
    off = WithOnlineBias(_Fixed(4), 0.0)
    off.served(np.array([0]), _hist(1), np.zeros((1, 4), np.float32))
    assert off._recall(0, 1, 4) is None


def test_any_model_takes_the_offset_and_keeps_it_through_a_snapshot(tmp_path: Any) -> None:
    """``online_bias_lr`` wraps a model that has no offset of its own (here ``mf``)."""
    from recloop import Recommender
    from synthdata import synthetic

    df = synthetic()
    rec = Recommender(
        model="mf", seed=0, online_bias_lr=0.05, epochs=2, online=OnlineConfig(background=False)
    ).fit(df)
    assert isinstance(rec.model_, WithOnlineBias) and rec.model_.name == "mf"
    users = sorted(df.user_id.astype(str).unique())[:20]
    items = sorted(df.item_id.astype(str).unique())
    rec.update(
        [{"user_id": u, "item_id": items[k % 5], "timestamp": 2e9 + k} for k, u in enumerate(users)]
    )
    rec.flush()
    assert np.abs(rec.model_.bias.value).max() > 1e-3
    rec.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back.model_, WithOnlineBias)
    np.testing.assert_array_equal(back.model_.bias.value, rec.model_.bias.value)
    np.testing.assert_allclose(back.score_all(users[0])[1], rec.score_all(users[0])[1], rtol=1e-6)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), True, None])
def test_bad_rates_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="online_bias_lr"):
        OnlineBias(bad)  # type: ignore[arg-type]
