"""``sasrec``: what is its own (history-driven scores, online steps on grown tables) and
a quality floor on MovieLens-100K. The shared contract is in ``tests/test_conformance.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.errors import ConfigError
from recloop.models import OnlineBatch
from recloop.models._sasrec_ties import _shuffle_ties, _tie_runs, tie_orders
from recloop.models.sasrec import SASRec
from recloop.online import OnlineConfig
from synthdata import synthetic

# enough passes for the tiny two-groups set (60 users x 12 items) to be learned
SMALL: dict[str, Any] = {"epochs": 30, "dim": 32, "ffn_dim": 32}


@pytest.fixture(scope="module")
def groups_df() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def fitted(groups_df: pd.DataFrame) -> Recommender:
    return Recommender(model="sasrec", seed=0, **SMALL).fit(groups_df)


def _model(rec: Recommender) -> SASRec:
    assert isinstance(rec.model_, SASRec)
    return rec.model_


def _params(rec: Recommender) -> dict[str, torch.Tensor]:
    net = _model(rec).net
    assert net is not None
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_the_reported_training_loss_is_finite_and_falls(fitted: Recommender) -> None:
    losses = [row["loss"] for row in fitted.fit_report_["history"]]
    assert len(losses) == SMALL["epochs"] and all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0]


def test_scores_read_the_history_not_the_user(fitted: Recommender) -> None:
    model = _model(fitted)
    h = np.asarray(fitted.sequences_[4], np.int64)
    a = model.score(np.array([4]), [h])
    np.testing.assert_array_equal(a, model.score(np.array([37]), [h]))
    np.testing.assert_array_equal(a, model.score(np.array([-1]), [h]))
    assert not np.allclose(a, model.score(np.array([4]), [h[:-3]]))


def test_batch_with_padding_equals_single_rows(fitted: Recommender) -> None:
    model = _model(fitted)
    hist = [np.asarray(fitted.sequences_[u], np.int64) for u in (0, 1, 2)] + [
        np.array([3], np.int64),
        np.array([0, 2, 4, 6], np.int64),
    ]
    batch = model.score(np.arange(len(hist)), hist)
    for r, h in enumerate(hist):
        np.testing.assert_allclose(
            model.score(np.array([r]), [h])[0], batch[r], rtol=1e-5, atol=1e-5
        )
    # a dot product, so the serving layer's retrieval index can serve it
    items, bias = model.item_vectors(), model.item_bias()
    assert items is not None and bias is not None
    np.testing.assert_allclose(
        model.user_states(np.arange(len(hist)), hist) @ items.T + bias, batch, rtol=1e-4, atol=1e-4
    )


def test_a_click_changes_the_next_output_without_learning(groups_df: pd.DataFrame) -> None:
    rec = Recommender(model="sasrec", seed=0, online=OnlineConfig(enabled=False), **SMALL).fit(
        groups_df
    )
    before, params = rec.score_all("0")[1], _params(rec)
    rec.update({"user_id": "0", "item_id": "1", "type": "click"})
    after = rec.score_all("0")[1]
    assert not np.allclose(before, after)
    for name, value in _params(rec).items():
        torch.testing.assert_close(value, params[name], rtol=0, atol=0)
    # a user the fit never saw is personalised from their clicks: odd clicks, odd items
    rec.update([{"user_id": "stranger", "item_id": str(i), "type": "click"} for i in (1, 5, 9)])
    top = rec.recommend("stranger", k=10)
    assert np.mean([int(i) % 2 == 1 for i in top]) >= 0.8, top


def test_save_load_round_trips_parameters_and_online_state(
    groups_df: pd.DataFrame, tmp_path: Path
) -> None:
    rec = Recommender(
        model="sasrec",
        seed=0,
        online=OnlineConfig(enabled=True, background=False, max_batch=4),
        **SMALL,
    )
    rec.fit(groups_df)
    rec.update(
        [{"user_id": str(u), "item_id": str(90 + u), "type": "click"} for u in range(8)]
    )  # new items, 2 steps
    rec.flush()
    state = _model(rec).get_state()
    assert (
        "online_opt" in state and state["online_opt"]["item"]["exp_avg"].shape[0] == rec.n_items + 1
    )
    rec.save(tmp_path / "snap")
    torch.load(tmp_path / "snap" / "state.pt", weights_only=True)  # tensors and plain values only
    back = Recommender.load(tmp_path / "snap")
    assert back.model_.hyperparameters() == rec.model_.hyperparameters()
    for u in ("0", "3", "90", "never-seen"):
        assert back.recommend(u, k=10) == rec.recommend(u, k=10)
        np.testing.assert_array_equal(back.score_all(u)[1], rec.score_all(u)[1])
    # the online optimiser's moments come back too: both copies take the same next step
    model, copy = _model(rec), SASRec(seed=0, **SMALL)
    copy.set_state(model.get_state())
    batch = OnlineBatch(
        np.array([5, 6]),
        np.array([11, 92]),
        np.ones(2, np.float32),
        np.ones(2, np.float32),
        [np.array([1, 3], np.int64), np.array([90, 91], np.int64)],
    )
    assert model.learn(batch) == copy.learn(batch)
    h = [np.array([1, 3, 11], np.int64)]
    np.testing.assert_array_equal(model.score(np.array([0]), h), copy.score(np.array([0]), h))


def test_a_seed_reproduces(groups_df: pd.DataFrame, fitted: Recommender) -> None:
    again = Recommender(model="sasrec", seed=0, **SMALL).fit(groups_df)
    other = Recommender(model="sasrec", seed=1, **SMALL).fit(groups_df)
    np.testing.assert_array_equal(again.score_all("7")[1], fitted.score_all("7")[1])
    assert not np.allclose(other.score_all("7")[1], fitted.score_all("7")[1])


def test_learn_on_items_added_by_grow(groups_df: pd.DataFrame) -> None:
    rec = Recommender(
        model="sasrec", seed=0, online=OnlineConfig(enabled=False), **{**SMALL, "online_lr": 1e-2}
    )
    rec.fit(groups_df)
    model = _model(rec)
    n = model.n_items_
    hist = [np.array([1, 3, 5], np.int64), np.array([0, 2], np.int64)]
    model.learn(
        OnlineBatch(
            np.array([1, 2]), np.array([7, 4]), np.ones(2, np.float32), np.ones(2, np.float32), hist
        )
    )
    model.grow(rec.n_users + 1, n + 3)
    assert (
        model.net is not None
        and model.net.item.shape[0] == n + 4
        and model.net.bias.shape[0] == n + 3
    )
    assert model.score(np.array([0]), [hist[0]]).shape == (1, n + 3)
    # new rows start near the mean item, below the typical item
    new_scores = model.score(np.array([0]), [hist[0]])[0, n:]
    assert (
        np.all(np.isfinite(new_scores))
        and new_scores.max() < np.median(model.score(np.array([0]), [hist[0]])[0, :n]) + 1.0
    )
    batch = OnlineBatch(
        np.array([1, 2, 3]),
        np.array([n, n + 1, n + 2]),
        np.ones(3, np.float32),
        np.ones(3, np.float32),
        [hist[0], hist[1], np.array([1, n], np.int64)],
    )
    first = model.learn(batch)
    for _ in range(30):
        last = model.learn(batch)
    assert np.isfinite(first) and last < first
    ranked = np.argsort(-model.score(np.array([0]), [hist[0]])[0])
    assert n in ranked[:5], "the item the history kept leading to climbs the ranking"
    # the optimiser's state follows the grown table; another growth keeps it consistent
    model.grow(rec.n_users + 1, n + 5)
    assert np.isfinite(model.learn(batch))


@pytest.mark.parametrize("layers", [1, 2])
def test_one_user_numpy_path_equals_the_torch_path(
    groups_df: pd.DataFrame, layers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recloop.models.sasrec as sasrec_module

    rec = Recommender(
        model="sasrec",
        seed=0,
        online=OnlineConfig(enabled=False),
        **{**SMALL, "epochs": 3, "n_layers": layers, "max_len": 4},
    ).fit(groups_df)
    model = _model(rec)
    hists = [
        np.array([3], np.int64),
        np.array([1, 3, 5], np.int64),
        np.asarray(rec.sequences_[2], np.int64),
    ]
    assert len(hists[2]) > 4  # longer than the window: the long-term term reads the rest

    def both() -> tuple[np.ndarray, np.ndarray]:
        fast = np.concatenate([model.score(np.array([0]), [h]) for h in hists])
        with monkeypatch.context() as m:
            m.setattr(sasrec_module, "_NUMPY_ROWS", 0)
            slow = np.concatenate([model.score(np.array([0]), [h]) for h in hists])
        return fast, slow

    fast, slow = both()
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    # after a grown table and an online step the numpy weights follow the parameters
    model.grow(rec.n_users, model.n_items_ + 2)
    model.config = dataclasses.replace(model.config, online_lr=1e-2)
    model.learn(
        OnlineBatch(
            np.array([1]),
            np.array([model.n_items_ - 1]),
            np.ones(1, np.float32),
            np.ones(1, np.float32),
            [hists[1]],
        )
    )
    fast2, slow2 = both()
    assert fast2.shape[1] == fast.shape[1] + 2
    np.testing.assert_allclose(fast2, slow2, rtol=1e-5, atol=1e-5)
    assert not np.allclose(fast2[:, :-2], fast)


@pytest.mark.parametrize("scope", ["items", "all"])
def test_online_scope_decides_what_learn_moves(groups_df: pd.DataFrame, scope: str) -> None:
    rec = Recommender(
        model="sasrec",
        seed=0,
        online=OnlineConfig(enabled=False),
        **{**SMALL, "epochs": 2, "online_lr": 1e-2, "online_scope": scope},
    ).fit(groups_df)
    before = _params(rec)
    _model(rec).learn(
        OnlineBatch(
            np.array([1, 2]),
            np.array([7, 4]),
            np.ones(2, np.float32),
            np.ones(2, np.float32),
            [np.array([1, 3, 5], np.int64), np.array([0, 2], np.int64)],
        )
    )
    after = _params(rec)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"item", "bias"} <= moved
    if scope == "items":
        assert moved == {"item", "bias"}
    else:
        assert any(k.startswith("blocks.") for k in moved)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_shuffle_ties_permutes_within_each_run_only(gaps: list[int], seed: int) -> None:
    times = np.cumsum(gaps)
    runs = np.concatenate([[0], np.cumsum(np.diff(times) != 0)])
    seq = np.arange(100, 100 + len(times))
    out = _shuffle_ties([seq], [runs], np.random.default_rng(seed))[0]
    assert sorted(out.tolist()) == seq.tolist()
    # every item stays among the items logged at its own timestamp, runs keep their order
    np.testing.assert_array_equal(times[out - 100], times)


@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=25),
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(0, 99),
)
def test_tie_orders_shuffle_only_the_runs_that_reach_the_window(
    gaps: list[int], window: int, n_orders: int, seed: int
) -> None:
    times = np.cumsum(gaps).astype(float)
    hist = np.arange(100, 100 + len(times))
    out = tie_orders(hist, times, window, n_orders, seed)
    np.testing.assert_array_equal(out[0], hist)  # the logged order is always one of them
    np.testing.assert_array_equal(
        out, tie_orders(hist, times, window, n_orders, seed)
    )  # deterministic
    start = max(0, len(hist) - window)
    reach = times >= times[start]  # the runs the window reads (one may begin before it)
    tied_in_reach = bool((np.diff(times[reach]) == 0).any()) if reach.sum() > 1 else False
    assert len(out) == (n_orders if tied_in_reach and n_orders > 1 else 1)
    for row in out:
        np.testing.assert_array_equal(row[~reach], hist[~reach])  # nothing before them moves
        np.testing.assert_array_equal(times[row - 100], times)  # each item stays in its own second


def test_scoring_averages_the_orders_of_same_second_events(fitted: Recommender) -> None:
    model = _model(fitted)
    hists = [np.asarray(fitted.sequences_[u], np.int64)[:9] for u in (0, 1, 2)] + [
        np.array([5, 1, 3], np.int64)
    ]
    apart = [np.arange(len(h), dtype=float) for h in hists]  # no ties: exactly the plain scores
    np.testing.assert_allclose(
        model.score(np.arange(4), hists, apart), model.score(np.arange(4), hists), atol=1e-6
    )
    tied = [np.array([0.0] * 3 + [1.0] * (len(h) - 3)) for h in hists]
    states = model.user_states(np.arange(4), hists, tied)
    expect = np.stack(
        [
            model.user_states(np.zeros(len(o), np.int64), list(o)).mean(0)
            for o in (
                tie_orders(h, t, model.config.max_len, model.config.tie_samples, model.seed)
                for h, t in zip(hists, tied)
            )
        ]
    )
    np.testing.assert_allclose(states, expect, rtol=1e-5, atol=1e-5)
    assert not np.allclose(states, model.user_states(np.arange(4), hists), atol=1e-3)
    # still a dot-product model, so the retrieval index applies
    net = model.net
    assert net is not None
    np.testing.assert_allclose(
        model.score(np.arange(4), hists, tied),
        states @ net.item.detach().numpy()[1:].T + net.bias.detach().numpy(),
        rtol=1e-5,
        atol=1e-4,
    )


def test_shorter_windows_are_read_and_averaged(fitted: Recommender) -> None:
    from recloop.models.sasrec import numpy_state

    model = _model(fitted)
    h = np.asarray(fitted.sequences_[3], np.int64)
    assert len(h) > model.config.max_len
    w = model._numpy_weights(model._net())
    saved = model.config
    try:
        model.config = dataclasses.replace(saved, extra_windows=())
        np.testing.assert_allclose(
            model.user_states(np.array([3]), [h])[0], numpy_state(w, h), rtol=1e-5, atol=1e-6
        )
        model.config = dataclasses.replace(
            saved, extra_windows=(3, saved.max_len + 5)
        )  # a length past max_len is ignored
        both = (numpy_state(w, h) + numpy_state(w, h, 3)) / 2
        np.testing.assert_allclose(
            model.user_states(np.array([3]), [h])[0], both, rtol=1e-5, atol=1e-6
        )
        assert not np.allclose(numpy_state(w, h, 3), numpy_state(w, h), atol=1e-3)
    finally:
        model.config = saved


@pytest.mark.parametrize("length", [1, 2, 4, 12, 40])
def test_several_windows_in_one_pass_equal_separate_passes(
    fitted: Recommender, length: int
) -> None:
    """Windows are read in one batch, a shorter one as the whole window with its earlier keys
    masked: the same as cutting the history to it, per order."""
    from recloop.models.sasrec import numpy_state

    model = _model(fitted)
    w = model._numpy_weights(model._net())
    rng = np.random.default_rng(length)
    base = rng.integers(0, fitted.n_items, length)
    orders = np.stack([base, *(rng.permutation(base) for _ in range(2))])
    windows = [model.config.max_len, 5, 2, 1]
    separate = np.mean([numpy_state(w, orders, x) for x in windows], 0)
    np.testing.assert_allclose(numpy_state(w, orders, windows), separate, rtol=1e-5, atol=1e-5)


def test_the_engine_keeps_each_events_timestamp_for_scoring(
    groups_df: pd.DataFrame, tmp_path: Path
) -> None:
    rec = Recommender(
        model="sasrec", seed=0, online=OnlineConfig(enabled=False), **{**SMALL, "epochs": 2}
    ).fit(groups_df)
    u = str(groups_df.user_id.iloc[0])
    uidx = rec.users_.get(u)
    before = len(rec.times_[uidx])
    assert before == len(rec.sequences_[uidx])
    rec.update(
        [
            {"user_id": u, "item_id": str(i), "timestamp": 2e9, "type": "click"}
            for i in groups_df.item_id.unique()[:3]
        ]
    )
    assert rec.times_[uidx][before:] == [2e9] * (len(rec.sequences_[uidx]) - before)
    _, scores = rec.score_all(u)
    model = _model(rec)
    hist, times = np.asarray(rec.sequences_[uidx], np.int64), np.asarray(rec.times_[uidx])
    np.testing.assert_allclose(
        scores[: model.n_items_], model.score(np.array([uidx]), [hist], [times])[0], rtol=1e-5
    )
    rec.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert back.times_ == rec.times_
    np.testing.assert_allclose(back.score_all(u)[1], scores, rtol=1e-5)


def test_tie_runs_follow_the_fitted_sequences(
    groups_df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recloop.models import registry

    seen: dict[str, Any] = {}

    class Spy(SASRec):
        name = "sasrec_spy"

        def fit(self, data: Any, options: Any) -> dict[str, Any]:
            seen["data"], seen["runs"] = data, _tie_runs(data)
            return super().fit(data, options)

    monkeypatch.setitem(registry._REGISTRY, Spy.name, Spy)
    # a coarse clock: many ratings share a timestamp
    Recommender(model=Spy.name, seed=0, epochs=1, dim=8, ffn_dim=8).fit(
        groups_df.assign(timestamp=groups_df["timestamp"] // 120)
    )
    data, runs = seen["data"], seen["runs"]
    assert runs is not None and sum(r is not None for r in runs) > 10
    for u, (s, r) in enumerate(zip(data.sequences, runs)):
        t = data.timestamp[(data.user_idx == u) & (data.label > 0.5)]
        assert len(t) == len(s)
        if r is not None:  # a new run exactly where the timestamp changes
            np.testing.assert_array_equal(np.diff(r) == 0, np.diff(t) == 0)


def test_fit_trains_on_each_users_latest_item_unless_asked_to_hold_it_out(
    groups_df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recloop.models import registry

    seen: list[Any] = []

    class Spy(SASRec):
        name = "sasrec_spy"

        def fit(self, data: Any, options: Any) -> dict[str, Any]:
            seen.append(data)
            return super().fit(data, options)

    monkeypatch.setitem(registry._REGISTRY, Spy.name, Spy)
    n_positive = len(groups_df)
    rec = Recommender(model=Spy.name, seed=0, epochs=2, dim=8, ffn_dim=8).fit(groups_df)
    assert len(seen[0].valid_user_idx) == 0 and sum(map(len, seen[0].sequences)) == n_positive
    assert rec.fit_report_["best_valid_ndcg@10"] is None
    rec = Recommender(model=Spy.name, seed=0, epochs=2, dim=8, ffn_dim=8).fit(
        groups_df, validation=True
    )
    held = len(seen[1].valid_user_idx)
    assert (
        held == groups_df["user_id"].nunique()
        and sum(map(len, seen[1].sequences)) == n_positive - held
    )
    assert rec.fit_report_["best_valid_ndcg@10"] is not None
    # the others hold out by default
    assert (
        Recommender(model="mf", seed=0, epochs=2).fit(groups_df).fit_report_["best_valid_ndcg@10"]
        is not None
    )


def test_shuffling_ties_changes_training_only_where_there_are_ties(groups_df: pd.DataFrame) -> None:
    def fit(df: pd.DataFrame, shuffle: bool) -> np.ndarray:
        return (
            Recommender(model="sasrec", seed=0, epochs=3, shuffle_ties=shuffle)
            .fit(df)
            .score_all("7")[1]
        )

    np.testing.assert_array_equal(
        fit(groups_df, True), fit(groups_df, False)
    )  # no ties: the same fit
    tied = groups_df.assign(timestamp=groups_df["timestamp"] // 120)
    assert not np.allclose(fit(tied, True), fit(tied, False))


def test_invalid_hyperparameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_len"):
        SASRec(max_len=0)
    with pytest.raises(ConfigError, match="n_heads"):
        SASRec(dim=30, n_heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        SASRec(dropout=1.0)
    with pytest.raises(ConfigError, match="online_scope"):
        SASRec(online_scope="blocks")
    with pytest.raises(ConfigError, match="tie_samples"):
        SASRec(tie_samples=0)
    with pytest.raises(ConfigError, match="extra_windows"):
        SASRec(extra_windows=[5, 0])


@pytest.mark.slow
def test_quality_floor_on_movielens_100k(ml100k_loo: Any) -> None:
    """Defaults, seed 0: the floors sit below the figures in docs/benchmarks.md by a margin
    that covers another machine's floating-point results."""
    from recloop.evaluation.protocols import evaluate

    rec = Recommender(model="sasrec", seed=0).fit(ml100k_loo.train)
    full = evaluate(rec, ml100k_loo.train, ml100k_loo.test, "full")
    sampled = evaluate(rec, ml100k_loo.train, ml100k_loo.test, "sampled")
    assert full["ndcg@10"] >= 0.13 and full["hr@10"] >= 0.235, full
    assert full["sampled_hr@10_expected"] >= 0.77 and sampled["hr@10"] >= 0.76, (full, sampled)


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("length", [1, 3, 7, 25])
def test_numpy_windows_match_torch_for_any_depth(n_layers: int, length: int) -> None:
    """The windows share one pass (a one-block model branches per window only at the top
    block's scores, a deeper one from its first block on); each window equals torch reading
    the history cut to it, with the rest in the long-term mean."""
    from recloop.models._sasrec_train import item_bag as _bag
    from recloop.models.sasrec import SASRecNet, _NumpyWeights, numpy_state

    torch.manual_seed(n_layers * 100 + length)
    net = SASRecNet(30, 16, 6, n_layers, 2, 0.0, 24, long_term=True).eval()
    w = _NumpyWeights(net)
    rng = np.random.default_rng(length)
    base = rng.integers(0, 30, length)
    orders = np.stack([base, *(rng.permutation(base) for _ in range(2))])
    windows = [6, 4, 2, 1]

    def torch_state(h: np.ndarray, window: int) -> np.ndarray:
        cut = h[-window:]
        with torch.no_grad():
            out = net(
                torch.from_numpy(cut + 1).unsqueeze(0),
                False,
                _bag([h[:-window] if len(h) > window else h[:0]]),
                last_only=True,
            )
        return out[0, -1].numpy()

    expect = np.mean([[torch_state(o, x) for o in orders] for x in windows], 0)
    np.testing.assert_allclose(numpy_state(w, orders, windows), expect, rtol=1e-4, atol=1e-5)


def _one_block_net(long_term: bool, seed: int) -> Any:
    from recloop.models.sasrec import SASRecNet

    torch.manual_seed(seed)
    return SASRecNet(30, 16, 6, 1, 2, 0.0, 24, long_term=long_term).eval()


@pytest.mark.parametrize("long_term", [True, False])
@settings(deadline=None)  # the first example loads (or compiles) the numba kernel
@given(
    st.lists(st.integers(0, 29), min_size=1, max_size=40),
    st.integers(1, 5),
    st.lists(st.integers(1, 9), min_size=0, max_size=3),
    st.integers(0, 3),
)
def test_the_compiled_state_equals_numpy_state(
    long_term: bool, history: list[int], n_orders: int, extra: list[int], seed: int
) -> None:
    """``jit_state`` (one numba call) is ``numpy_state``'s maths: every order, every window
    (longer than the history or not, repeated or not), with and without the long-term mean."""
    from recloop.models.sasrec import _NumpyWeights, jit_state, numpy_state

    w = _NumpyWeights(_one_block_net(long_term, seed))
    if w.jit is None:
        pytest.skip("numba is not available: the numpy path serves")
    h = np.asarray(history, np.int64)
    rng = np.random.default_rng(seed)
    orders = np.stack(
        [h, *(np.concatenate([h[:-3], rng.permutation(h[-3:])]) for _ in range(n_orders - 1))]
    )
    windows = [6, *extra]
    np.testing.assert_allclose(
        jit_state(w, orders, windows), numpy_state(w, orders, windows).mean(0), rtol=1e-4, atol=2e-5
    )


def test_the_compiled_state_sees_in_place_steps_and_serves_scoring(fitted: Recommender) -> None:
    """Its weights are views of the net's parameters, so an online step shows through; and
    scoring a one-block model goes through it."""
    from recloop.models.sasrec import jit_state, numpy_state

    model = _model(fitted)
    w = model._numpy_weights(model._net())
    if w.jit is None:
        pytest.skip("numba is not available: the numpy path serves")
    h = np.asarray(fitted.sequences_[3], np.int64)
    before = jit_state(w, h[None], [model.config.max_len])
    net = model.net
    assert net is not None
    saved = net.blocks[0].ff2.weight.detach().clone()
    try:
        with torch.no_grad():
            net.blocks[0].ff2.weight.mul_(1.5)
        after = jit_state(w, h[None], [model.config.max_len])
        assert not np.allclose(before, after, atol=1e-4)
        np.testing.assert_allclose(after, numpy_state(w, h), rtol=1e-4, atol=2e-5)
        calls: list[int] = []
        real = w.jit_fn
        w.jit_fn = lambda *a: calls.append(1) or real(*a)
        try:
            model.user_states(np.array([3]), [h])
        finally:
            w.jit_fn = real
        assert calls
    finally:
        with torch.no_grad():
            net.blocks[0].ff2.weight.copy_(saved)


def test_without_numba_the_numpy_state_serves() -> None:
    """``RECLOOP_NO_JIT=1`` (as without numba) leaves ``jit`` unset, so scoring takes
    ``numpy_state``; it gives what the compiled state gives here, for the same weights."""
    import os
    import subprocess
    import sys

    from recloop.models.sasrec import _NumpyWeights, jit_state

    code = (
        "import numpy as np, torch\n"
        "from recloop.models import _sasrec_jit\n"
        "from recloop.models.sasrec import SASRecNet, _NumpyWeights, numpy_state\n"
        "torch.manual_seed(0)\n"
        "w = _NumpyWeights(SASRecNet(30, 16, 6, 1, 2, 0.0, 24, long_term=True).eval())\n"
        "assert _sasrec_jit.STATE is None and w.jit is None\n"
        "print(' '.join(map(repr, numpy_state(w, np.array([3, 4, 5]), [6, 2]).tolist())))\n"
    )
    env = {**os.environ, "RECLOOP_NO_JIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    there = np.array([float(x) for x in out.stdout.split()], np.float32)
    w = _NumpyWeights(_one_block_net(True, 0))  # the same seed and shape: the same weights
    if w.jit is None:
        pytest.skip("numba is not available here: nothing to compare with")
    np.testing.assert_allclose(
        there, jit_state(w, np.array([[3, 4, 5]]), [6, 2]), rtol=1e-4, atol=2e-5
    )
