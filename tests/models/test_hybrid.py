"""``hybrid``: its scores are the weighted blend of its parts' plus an online item offset, a
dot product without its EASE part, and its low-rank parts learn online when asked. The shared contract is in
``tests/test_conformance.py``; ``OnlineBias`` itself in ``tests/models/test_online_bias.py``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recloop import Recommender
from recloop.errors import ConfigError
from recloop.models import OnlineBatch, create
from recloop.models.hybrid import Hybrid
from recloop.models.online_bias import WithOnlineBias
from recloop.online import OnlineConfig
from synthdata import synthetic

SMALL: dict[str, Any] = {"sasrec": {"epochs": 30, "dim": 32, "ffn_dim": 32}}


@pytest.fixture(scope="module")
def groups_df() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def fitted(groups_df: pd.DataFrame) -> Recommender:
    return Recommender(model="hybrid", seed=0, **SMALL).fit(groups_df)


def _wrapper(rec: Recommender) -> WithOnlineBias:
    """The engine's model: the blend inside its online item offset."""
    assert isinstance(rec.model_, WithOnlineBias)
    return rec.model_


def _model(rec: Recommender) -> Hybrid:
    inner = _wrapper(rec).inner
    assert isinstance(inner, Hybrid)
    return inner


def _cases(rec: Recommender) -> tuple[np.ndarray, list[np.ndarray]]:
    """Two trained users and two the fit never saw (rows beyond the tables), with histories."""
    n = rec.n_users
    users = np.array([0, 7, n, n + 3], np.int64)
    hist = [
        np.asarray(rec.sequences_[0], np.int64),
        np.asarray(rec.sequences_[7], np.int64),
        np.array([1, 3, 5], np.int64),
        np.array([2, 4, 6, 8, 10], np.int64),
    ]
    return users, hist


@pytest.mark.parametrize("rows", [1, 4, 6])  # numpy paths (few rows) and torch paths (more)
def test_scores_are_the_weighted_blend_of_the_parts(fitted: Recommender, rows: int) -> None:
    model = _model(fitted)
    users, hist = _cases(fitted)
    users, hist = np.resize(users, rows), [hist[r % len(hist)] for r in range(rows)]
    parts = {name: model.parts[name].score(users, hist) for name in ("sasrec", "mf", "ease")}
    assert np.abs(parts["ease"]).max() > 0
    expected = 0.65 * parts["sasrec"] + 0.35 * parts["mf"] + 0.75 * parts["ease"]
    np.testing.assert_allclose(model.score(users, hist), expected, rtol=1e-5, atol=1e-5)


def test_scores_are_a_dot_product_without_the_ease_part(
    fitted: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(fitted)
    assert (
        model.item_vectors() is None
    )  # EASE's item-item sums are no dot product: no retrieval index
    monkeypatch.setattr(model, "config", dataclasses.replace(model.config, ease_weight=0.0))
    users, hist = _cases(fitted)
    vectors, bias = model.item_vectors(), model.item_bias()
    assert vectors is not None and bias is not None
    assert vectors.shape == (fitted.n_items, 32 + 64)
    via_dot = model.user_states(users, hist) @ vectors.T + bias
    np.testing.assert_allclose(via_dot, model.score(users, hist), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("weight", "alone"), [(0.0, "sasrec"), (1.0, "mf")])
def test_a_weight_of_zero_or_one_is_one_part_alone(
    groups_df: pd.DataFrame, weight: float, alone: str
) -> None:
    rec = Recommender(model="hybrid", seed=0, mf_weight=weight, ease_weight=0.0, **SMALL).fit(
        groups_df
    )
    # the blend holds out each user's latest item for its parts' early stopping; sasrec alone would not
    # and its parts' defaults where they differ from the models' own (sasrec reads fewer views)
    from recloop.models.configs import HYBRID_PART_DEFAULTS as PART_DEFAULTS

    ref = Recommender(model=alone, seed=0, **{**PART_DEFAULTS[alone], **SMALL.get(alone, {})}).fit(
        groups_df, validation=True
    )
    for user in ("3", "8", "41"):
        assert rec.recommend(user, k=10) == ref.recommend(user, k=10)


def test_both_parts_learn_online_when_asked(groups_df: pd.DataFrame) -> None:
    # online steps are off by default in the blend; turned on, both parts step
    rec = Recommender(
        model="hybrid",
        seed=0,
        sasrec={**SMALL["sasrec"], "online_lr": 1e-4},
        mf={"online_lr": 0.05},
    ).fit(groups_df)
    model = _model(rec)
    sas, mf = model.parts["sasrec"], model.parts["mf"]
    before = (sas.online_steps_, mf._steps)  # type: ignore[attr-defined]
    batch = OnlineBatch(
        np.array([2, 3]),
        np.array([4, 5]),
        np.ones(2, np.float32),
        np.ones(2, np.float32),
        [np.array([0, 2], np.int64), np.array([1, 3], np.int64)],
    )
    loss = model.learn(batch)
    assert np.isfinite(loss) and loss > 0
    assert (sas.online_steps_, mf._steps) == (before[0] + 1, before[1] + 1)  # type: ignore[attr-defined]


def test_no_online_parameter_steps_by_default(groups_df: pd.DataFrame) -> None:
    rec = Recommender(model="hybrid", seed=0, **SMALL).fit(groups_df)
    model = _model(rec)
    assert [model.parts[p].hyperparameters()["online_lr"] for p in ("sasrec", "mf")] == [0.0, 0.0]
    before = {k: v.copy() for k, v in _tables(model).items()}
    batch = OnlineBatch(
        np.array([2, 3]),
        np.array([4, 5]),
        np.ones(2, np.float32),
        np.ones(2, np.float32),
        [np.array([0, 2], np.int64), np.array([1, 3], np.int64)],
    )
    loss = _wrapper(rec).learn(batch)  # the online item offset's loss: the parts' tables stay put
    assert np.isfinite(loss) and loss > 0
    for k, v in _tables(model).items():
        np.testing.assert_array_equal(v, before[k])
    # and the state still adapts: a new event changes the next answer
    top = rec.recommend("2", k=5)
    rec.update({"user_id": "2", "item_id": top[0], "timestamp": 2e9})
    assert rec.recommend("2", k=5) != top


def _tables(model: Hybrid) -> dict[str, np.ndarray]:
    sas, mf = model.parts["sasrec"], model.parts["mf"]
    return {
        "sasrec.item": sas.item_vectors(),
        "mf.item": mf.item_vectors(),  # type: ignore[dict-item]
        "mf.user": mf.factors_.user.numpy(),
    }  # type: ignore[attr-defined]


def test_save_load_keeps_the_weight_and_both_parts(fitted: Recommender, tmp_path: Any) -> None:
    fitted.save(tmp_path / "h")
    back = Recommender.load(tmp_path / "h")
    assert (_model(back).mf_weight, _model(back).ease_weight) == (0.35, 0.75)
    assert _model(back).parts["sasrec"].hyperparameters()["dim"] == 32
    for user in ("3", "8"):
        np.testing.assert_allclose(back.score_all(user)[1], fitted.score_all(user)[1], rtol=1e-6)
    # a snapshot without an EASE part loads with it off: the other two blended
    state = _model(fitted).get_state()
    del state["parts"]["ease"]
    _model(back).set_state(state)
    assert _model(back).ease_weight == 0.0 and _model(back).item_vectors() is not None


def _stream(groups_df: pd.DataFrame, n: int = 120) -> list[dict[str, Any]]:
    """``n`` later events: known users each choosing an item they have not seen yet."""
    rng = np.random.default_rng(3)
    items = sorted(groups_df.item_id.astype(str).unique())
    seen = (
        groups_df.groupby(groups_df.user_id.astype(str))
        .item_id.apply(lambda x: set(x.astype(str)))
        .to_dict()
    )
    users = sorted(seen)
    out = []
    for k in range(n):
        u = users[int(rng.integers(len(users)))]
        fresh = [i for i in items if i not in seen[u]]
        i = fresh[int(rng.integers(len(fresh)))]
        seen[u].add(i)
        out.append({"user_id": u, "item_id": i, "timestamp": 2e9 + k})
    return out


def _online(groups_df: pd.DataFrame, **kw: Any) -> Recommender:
    # steps in the caller every 16 events: reproducible
    return Recommender(
        model="hybrid", seed=0, online=OnlineConfig(max_batch=16, background=False), **SMALL, **kw
    ).fit(groups_df)


def test_the_online_offset_learns_from_events_and_stays_a_dot_product(
    groups_df: pd.DataFrame,
) -> None:
    rec = _online(groups_df, ease_weight=0.0)
    model, blend_of = _wrapper(rec), _model(rec).score
    users, hist = _cases(rec)
    blend = blend_of(users, hist)
    np.testing.assert_array_equal(model.score(users, hist), blend)  # offset 0 after the fit
    rec.update(_stream(groups_df))
    rec.flush()
    offset = model.bias.value
    assert offset.shape == (rec.n_items,) and np.abs(offset).max() > 1e-3
    assert (
        abs(float(offset.sum())) < 1e-3
    )  # each step moves the chosen items up by what it takes from the rest
    np.testing.assert_allclose(
        model.score(users, hist), blend_of(users, hist) + offset, rtol=1e-5, atol=1e-5
    )
    via_dot = model.user_states(users, hist) @ model.item_vectors().T + model.item_bias()  # type: ignore[union-attr]
    np.testing.assert_allclose(via_dot, model.score(users, hist), rtol=1e-4, atol=1e-4)


def test_served_scores_teach_the_offset_as_recomputed_ones_would(groups_df: pd.DataFrame) -> None:
    """The step reuses the rows served to each user just before the event; a user shown
    nothing gets the row computed in the step. Both ways give the same offset."""
    served, unserved = _online(groups_df), _online(groups_df)
    recall, hits = _wrapper(served)._recall, []

    def counted(*args: Any) -> Any:
        row = recall(*args)
        hits.append(row is not None)
        return row

    _wrapper(served)._recall = counted  # type: ignore[method-assign]
    for event in _stream(groups_df):
        served.recommend(event["user_id"], k=5)
        served.update(event)
        unserved.update(event)
    served.flush()
    unserved.flush()
    assert len(hits) == 120 and all(hits)  # every row came from what was served
    np.testing.assert_allclose(
        _wrapper(served).bias.value, _wrapper(unserved).bias.value, atol=1e-5
    )


def test_a_large_catalogue_steps_the_offset_in_chunks(
    groups_df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step holds at most ``STEP_FLOATS`` scores: smaller sequential steps, much the same offset."""
    import recloop.models.online_bias as online_bias

    whole = _online(groups_df)
    whole.update(_stream(groups_df))
    whole.flush()
    monkeypatch.setattr(online_bias, "STEP_FLOATS", 3 * whole.n_items)  # 3 rows at a time
    chunked = _online(groups_df)
    steps: list[int] = []
    step = _wrapper(chunked).bias.step

    def counted(scores: np.ndarray, *args: Any) -> float:
        steps.append(len(scores))
        return step(scores, *args)

    _wrapper(chunked).bias.step = counted  # type: ignore[method-assign]
    chunked.update(_stream(groups_df))
    chunked.flush()
    assert max(steps) == 3 and sum(steps) == 120
    np.testing.assert_allclose(_wrapper(chunked).bias.value, _wrapper(whole).bias.value, atol=5e-3)
    assert np.abs(_wrapper(chunked).bias.value).max() > 1e-2


def test_a_first_event_teaches_the_offset_against_the_offset_alone(groups_df: pd.DataFrame) -> None:
    """A user with no history is served by popularity and the blend knows nothing of them:
    their event is one softmax example of the offset's own scores (nothing masked)."""
    rec = _online(groups_df)
    model = _wrapper(rec)
    before = model.bias.value.copy()
    item = rec.items_.get("5")
    rec.update({"user_id": "newcomer", "item_id": "5", "timestamp": 2e9})
    rec.flush()
    p = np.exp(before - before.max())
    p /= p.sum()
    expect = before - 0.03 * p
    expect[item] += 0.03
    np.testing.assert_allclose(model.bias.value, expect, rtol=1e-5, atol=1e-7)


def test_an_offset_rate_of_zero_keeps_the_blend(groups_df: pd.DataFrame) -> None:
    rec = _online(groups_df, online_bias_lr=0)
    rec.update(_stream(groups_df))
    rec.flush()
    assert not _wrapper(rec).bias.value.any()


def test_save_load_keeps_the_offset(groups_df: pd.DataFrame, tmp_path: Any) -> None:
    rec = _online(groups_df)
    rec.update(_stream(groups_df))
    rec.save(tmp_path / "h")
    back = Recommender.load(tmp_path / "h")
    np.testing.assert_array_equal(_wrapper(back).bias.value, _wrapper(rec).bias.value)
    assert _wrapper(back).bias.lr == 0.03
    # a snapshot of the bare blend loads with a zero offset
    state = _wrapper(rec).get_state()
    del state["online_bias"]
    _wrapper(back).set_state(state)
    assert not _wrapper(back).bias.value.any()


def test_invalid_hyperparameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="mf_weight"):
        Hybrid(mf_weight=1.5)
    with pytest.raises(ConfigError, match="mf_weight"):
        Hybrid(mf_weight=float("nan"))
    with pytest.raises(ConfigError, match="sasrec"):
        Hybrid(sasrec="big")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_len"):  # a part's own check, before any fit
        Hybrid(sasrec={"max_len": 0})
    for bad in (-0.1, float("inf"), True, "0.1"):
        with pytest.raises(ConfigError, match="online_bias_lr"):
            create("hybrid", online_bias_lr=bad)
        with pytest.raises(ConfigError, match="ease_weight"):
            Hybrid(ease_weight=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="recent_weight"):  # the EASE part's own check
        Hybrid(ease={"recent_weight": -1})


@pytest.mark.slow
def test_quality_floor_on_movielens_100k(ml100k_loo: Any) -> None:
    """Defaults, seed 0: the floors sit below the figures in docs/benchmarks.md by a margin."""
    from recloop.evaluation.protocols import evaluate

    rec = Recommender(model="hybrid", seed=0).fit(ml100k_loo.train)
    full = evaluate(rec, ml100k_loo.train, ml100k_loo.test, "full")
    assert full["ndcg@10"] >= 0.12 and full["hr@10"] >= 0.21, full
    assert evaluate(rec, ml100k_loo.train, ml100k_loo.test, "sampled")["hr@10"] >= 0.74


def test_the_learner_draws_no_replayed_events_while_the_parts_are_frozen(
    groups_df: pd.DataFrame,
) -> None:
    """The offset learns from new events only, so with no part stepping the learner mixes in
    nothing from its reservoir; a part that steps gets its replayed events back."""
    for kw, replayed in (({}, False), ({"mf": {"online_lr": 0.05}}, True)):
        rec = _online(groups_df, **kw)
        model = _wrapper(rec)
        assert model.learns_from_replay is replayed
        sizes: list[tuple[int, int | None]] = []

        def counted(
            batch: OnlineBatch,
            sizes: list[tuple[int, int | None]] = sizes,
            learn: Any = model.learn,
        ) -> float:
            sizes.append((len(batch.item_idx), batch.n_fresh))
            return learn(batch)

        model.learn = counted  # type: ignore[method-assign]
        rec.update(_stream(groups_df, 32))
        rec.flush()
        assert sizes and all((n > fresh) is replayed for n, fresh in sizes), sizes
