"""``mf`` (BPR matrix factorisation with a recency context): conformance and quality floors.

The conformance checks run over both models built on ``RecencyFactors`` (``mf`` and
``lightgcn``); ``test_lightgcn.py`` holds what is LightGCN's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recloop import Recommender
from recloop.errors import ConfigError
from recloop.models import OnlineBatch, create
from recloop.models._factors import Recency, RecencyFactors, fold_in_gram, ridge_fold_in
from recloop.models.base import Prefixes

MODELS = ["mf", "lightgcn"]


@pytest.fixture(scope="module")
def groups_df() -> pd.DataFrame:
    from synthdata import synthetic

    return synthetic()


@pytest.fixture(scope="module")
def fitted(groups_df: pd.DataFrame) -> dict[str, Recommender]:
    return {name: Recommender(model=name, seed=0).fit(groups_df) for name in MODELS}


def _factors(rec: Recommender) -> RecencyFactors:
    factors = getattr(rec.model_, "factors_", None)
    assert isinstance(factors, RecencyFactors)
    return factors


def _in_group(rec: Recommender, user: object, parity: int, k: int = 5) -> list[bool]:
    return [int(i) % 2 == parity for i in rec.recommend(user, k=k)]


# ----------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", MODELS)
def test_recommendations_come_from_the_users_taste_group(
    fitted: dict[str, Recommender], name: str
) -> None:
    rec = fitted[name]
    hits = [_in_group(rec, u, u % 2) for u in range(60)]
    assert all(h[0] for h in hits), "every user's top item is from their own group"
    assert np.mean(hits) >= 0.95


@pytest.mark.parametrize("name", MODELS)
def test_batch_scores_equal_single_scores(fitted: dict[str, Recommender], name: str) -> None:
    rec = fitted[name]
    model = rec.model_
    users = np.array([0, 5, 17, -1, 42], np.int64)
    hist = [
        np.asarray(rec.sequences_[u], np.int64) if u >= 0 else np.array([1, 3, 5], np.int64)
        for u in users
    ]
    batch = model.score(users, hist)
    assert batch.shape == (len(users), rec.n_items) and batch.dtype == np.float32
    for r, (u, h) in enumerate(zip(users, hist)):
        np.testing.assert_allclose(
            model.score(np.array([u]), [h])[0], batch[r], rtol=1e-5, atol=1e-5
        )
    ids = ["0", "5", "17", "42"]
    assert rec.recommend_batch(ids, k=7) == [rec.recommend(u, k=7) for u in ids]


@pytest.mark.parametrize("name", MODELS)
def test_numpy_scoring_of_a_few_users_equals_the_torch_path(
    fitted: dict[str, Recommender], name: str
) -> None:
    f = _factors(fitted[name])
    n = f.n_trained_users
    # a trained user, and users the fit never saw (served by the fold-in of their history)
    users = np.array([3, n, n + 1, n + 7], np.int64)
    hist = [
        np.array([2, 4, 6], np.int64),
        np.array([1, 3, 5, 7, 9], np.int64),
        np.array([8], np.int64),
        np.arange(0, 80, 2, dtype=np.int64),
    ]
    fast = f._score_few(users, hist)
    assert fast is not None
    with torch.no_grad():
        slow = (
            torch.addmm(f.bias, f.states(users, hist), f.item.T)
            if f.bias is not None
            else f.states(users, hist) @ f.item.T
        )
    np.testing.assert_allclose(fast, slow.numpy(), rtol=1e-4, atol=1e-4)
    assert f._score_few(np.array([-1]), [hist[0]]) is None  # an unknown user goes through torch


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trips(fitted: dict[str, Recommender], name: str, tmp_path) -> None:
    rec = fitted[name]
    rec.save(tmp_path / "snap")
    back = Recommender.load(tmp_path / "snap")
    for u in ("0", "1", "33"):
        np.testing.assert_array_equal(back.score_all(u)[1], rec.score_all(u)[1])
    assert back.model_.hyperparameters() == rec.model_.hyperparameters()
    # both copies learn the same way from the same events
    events = [
        {"user_id": "3", "item_id": "7", "type": "click"},
        {"user_id": "new", "item_id": "9", "type": "click"},
    ]
    copy = Recommender.load(tmp_path / "snap")
    back.update(events), copy.update(events)
    back.flush(), copy.flush()
    np.testing.assert_array_equal(back.score_all("3")[1], copy.score_all("3")[1])


@pytest.mark.parametrize("name", MODELS)
def test_seed_reproduces(
    groups_df: pd.DataFrame, fitted: dict[str, Recommender], name: str
) -> None:
    again = Recommender(model=name, seed=0).fit(groups_df)
    np.testing.assert_array_equal(again.score_all("4")[1], fitted[name].score_all("4")[1])
    other = Recommender(model=name, seed=1).fit(groups_df)
    assert not np.array_equal(other.score_all("4")[1], fitted[name].score_all("4")[1])


@pytest.mark.parametrize("name", MODELS)
def test_learn_changes_only_the_rows_it_touched(groups_df: pd.DataFrame, name: str) -> None:
    rec = Recommender(model=name, seed=0).fit(groups_df)
    model, f = rec.model_, _factors(rec)
    before = {k: v.clone() for k, v in f.get_state().items() if isinstance(v, torch.Tensor)}
    users = np.array([2, 9], np.int64)
    items = np.array([10, 21], np.int64)
    hist = [np.array([4, 6], np.int64), np.array([1], np.int64)]
    model.learn(OnlineBatch(users, items, np.ones(2, np.float32), np.ones(2, np.float32), hist))
    after = f.get_state()

    def changed(key: str) -> set[int]:
        diff = (after[key] != before[key]).reshape(len(before[key]), -1).any(1)
        return set(np.flatnonzero(diff.numpy()).tolist())

    assert changed("user") == {2, 9}
    assert changed("context") == {4, 6, 1}
    n_neg = model.hyperparameters()["online_negatives"]
    item_rows = changed("item")
    assert {10, 21} <= item_rows and len(item_rows) <= 2 * (1 + n_neg)
    if "bias" in before:
        assert changed("bias") <= item_rows | {10, 21}


@pytest.mark.parametrize("name", MODELS)
def test_new_ids_get_rows_and_new_users_are_served_from_their_history(
    fitted: dict[str, Recommender], name: str, tmp_path
) -> None:
    rec = fitted[name]
    rec.save(tmp_path / "snap")
    rec = Recommender.load(tmp_path / "snap")  # keep the shared fixture untouched
    n_users, n_items = rec.n_users, rec.n_items
    rec.update([{"user_id": "newcomer", "item_id": i, "type": "click"} for i in (1, 3, 5)])
    rec.update({"user_id": "newcomer", "item_id": "fresh-item", "type": "click"})
    rec.flush()
    f = _factors(rec)
    assert rec.n_users == n_users + 1 and rec.n_items == n_items + 1
    assert (
        f.user.shape[0] == rec.n_users
        and f.item.shape[0] == rec.n_items
        and f.context.shape[0] == rec.n_items
    )
    assert np.isfinite(rec.score("newcomer", ["fresh-item", "7"])).all()
    # three odd items in the history: the newcomer gets odd items (fold-in + recency context)
    assert np.mean([int(i) % 2 == 1 for i in rec.recommend("newcomer", k=5) if i.isdigit()]) >= 0.8


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="dim"):
        create("mf", dim=0)
    with pytest.raises(ConfigError, match="recency_decay"):
        create("mf", recency_decay=1.5)
    with pytest.raises(ConfigError, match="n_negatives"):
        create("lightgcn", n_negatives=0)
    with pytest.raises(ConfigError, match="online_lr"):
        create("mf", online_lr=-0.1)


@pytest.mark.parametrize("name", MODELS)
def test_online_lr_zero_takes_no_parameter_steps(groups_df: pd.DataFrame, name: str) -> None:
    rec = Recommender(model=name, seed=0, epochs=2, online_lr=0.0).fit(groups_df)
    f = _factors(rec)
    before = [t.clone() for t in (f.user, f.item, f.context)]
    batch = OnlineBatch(
        np.array([2, 3]),
        np.array([4, 5]),
        np.ones(2, np.float32),
        np.ones(2, np.float32),
        [np.array([0, 2], np.int64), np.array([1, 3], np.int64)],
    )
    assert rec.model_.learn(batch) == 0.0
    for b, t in zip(before, (f.user, f.item, f.context)):
        assert torch.equal(b, t)


def test_recency_context_of_rows_matches_the_histories() -> None:
    rec = Recency(3, 0.5)
    users = np.array([0, 1, 0, 0, 1, 0])
    items = np.array([10, 20, 11, 12, 21, 13])
    idx, w = rec.from_rows(users, items)
    # row 5 (user 0's 4th item) sees 12, 11, 10, most recent first
    assert idx[5].tolist() == [12, 11, 10]
    np.testing.assert_allclose(w[5].numpy(), np.array([1, 0.5, 0.25]) / 1.75, rtol=1e-6)
    assert w[0].sum() == 0  # a first item has no context
    h_idx, h_w = rec.from_histories([np.array([10, 11, 12]), np.array([20])])
    assert h_idx[0].tolist() == idx[5].tolist() and torch.allclose(h_w[0], w[5])
    assert h_idx[1, 0] == 20 and h_w[1].tolist() == [1.0, 0.0, 0.0]
    e_idx, e_w = rec.from_histories([np.zeros(0, np.int64)])
    assert e_idx.tolist() == [[0, 0, 0]] and e_w.sum() == 0  # no history: no context


def test_recency_context_of_prefixes_equals_that_of_the_histories() -> None:
    rec = Recency(4, 0.7)
    seqs = [[5, 6, 7, 8, 9, 10], [], [3], np.array([1, 2, 3], np.int64)]
    ends = [6, 0, 1, 2]
    lazy = Prefixes([seqs[0], seqs[1], seqs[2], seqs[3], seqs[0]], ends + [3], max_len=5)
    eager = [
        np.array([6, 7, 8, 9, 10]),
        np.zeros(0, np.int64),
        np.array([3]),
        np.array([1, 2]),
        np.array([5, 6, 7]),
    ]
    assert [h.tolist() for h in lazy] == [h.tolist() for h in eager]
    assert [lazy[j].tolist() for j in (4, -1, 1)] == [[5, 6, 7], [5, 6, 7], []]
    for a, b in zip(rec.from_histories(lazy), rec.from_histories(eager)):
        assert torch.equal(a, b)


def _autograd_learn(
    f: RecencyFactors,
    batch: OnlineBatch,
    opts: dict,
    rng: np.random.Generator,
    n_negatives: int,
    reg: float,
) -> float:
    """``RecencyFactors.learn`` as autograd computes it (the reference for its written-out gradients)."""
    import torch.nn.functional as F

    n = len(batch.item_idx)
    u = np.asarray(batch.user_idx, np.int64)
    pos = torch.as_tensor(np.asarray(batch.item_idx, np.int64))
    neg = torch.as_tensor(rng.integers(0, f.item.shape[0], size=(n, n_negatives)))
    ci, cw = f.recency.from_histories(batch.histories)
    pu = f.user_rows(u, batch.histories).requires_grad_(True)
    cc = f.context[ci].requires_grad_(True)
    qi, qj = f.item[pos].requires_grad_(True), f.item[neg].requires_grad_(True)
    bias = f.bias if f.bias is not None else torch.zeros(f.item.shape[0])
    bi, bj = bias[pos].requires_grad_(True), bias[neg].requires_grad_(True)
    state = pu + torch.einsum("bl,bld->bd", cw, cc)
    diff = ((state * qi).sum(-1) + bi).unsqueeze(1) - (torch.einsum("bd,bnd->bn", state, qj) + bj)
    sign = torch.from_numpy(np.where(np.asarray(batch.label) > 0.5, 1.0, -1.0).astype(np.float32))
    w = torch.as_tensor(np.asarray(batch.weight, np.float32))
    loss = (-F.logsigmoid(sign.unsqueeze(1) * diff).mean(1) * w).sum() / n
    loss = loss + reg * (state.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / n
    g_pu, g_cc, g_qi, g_qj, g_bi, g_bj = torch.autograd.grad(loss, [pu, cc, qi, qj, bi, bj])
    d = f.item.shape[1]
    items = torch.cat([pos, neg.reshape(-1)])
    opts["item"].step(f.item, items, torch.cat([g_qi, g_qj.reshape(-1, d)]))
    if f.bias is not None:
        opts["bias"].step(
            f.bias.unsqueeze(1), items, torch.cat([g_bi, g_bj.reshape(-1)]).unsqueeze(1)
        )
    live = cw.reshape(-1) > 0
    opts["context"].step(f.context, ci.reshape(-1)[live], g_cc.reshape(-1, d)[live])
    in_table = (u >= 0) & (u < f.user.shape[0])
    opts["user"].step(f.user, torch.from_numpy(u[in_table]), g_pu[torch.from_numpy(in_table)])
    return float(loss.detach())


@pytest.mark.parametrize("name", MODELS)
def test_learn_takes_the_step_autograd_would(fitted: dict[str, Recommender], name: str) -> None:
    from recloop.models._factors import new_optimizers

    rec = fitted[name]
    src = _factors(rec)
    n_users, n_items = src.user.shape[0], src.item.shape[0]
    mine, ref = (
        RecencyFactors.from_state(src.get_state(), src.recency, src.fold_in_reg) for _ in range(2)
    )
    for f in (mine, ref):
        f.grow(
            n_users + 3, n_items, torch.Generator().manual_seed(0)
        )  # three users beyond the trained table
    opts_mine, opts_ref = new_optimizers(0.05), new_optimizers(0.05)
    data = np.random.default_rng(1)
    for step in range(3):
        n = 300
        users = data.integers(0, n_users + 3, n)
        hist = [data.integers(0, n_items, data.integers(0, 15)) for _ in range(n)]
        batch = OnlineBatch(
            users,
            data.integers(0, n_items, n),
            (data.random(n) > 0.2).astype(np.float32),
            (data.random(n) * 3).astype(np.float32),
            hist,
        )
        a = mine.learn(batch, opts_mine, np.random.default_rng(step), 4, 1e-3)
        b = _autograd_learn(ref, batch, opts_ref, np.random.default_rng(step), 4, 1e-3)
        assert a == pytest.approx(b, rel=1e-5)
    for key in ("user", "item", "context", "bias"):
        if getattr(ref, key) is None:
            assert getattr(mine, key) is None
            continue
        torch.testing.assert_close(getattr(mine, key), getattr(ref, key), rtol=0, atol=1e-6)
        torch.testing.assert_close(opts_mine[key].state, opts_ref[key].state, rtol=1e-5, atol=1e-7)


def test_batched_fold_in_equals_one_solve_per_history() -> None:
    torch.manual_seed(0)
    items = torch.randn(50, 8)
    gram = fold_in_gram(items, 0.5)
    rng = np.random.default_rng(0)
    hists = [rng.integers(0, 50, n) for n in (0, 1, 7, 230)]
    out = ridge_fold_in(items, hists, gram)
    for row, h in zip(out, hists):
        q = items[torch.from_numpy(h[-200:])]
        ref = torch.linalg.solve(q.T @ q + gram, q.sum(0)) if len(h) else torch.zeros(8)
        torch.testing.assert_close(row, ref, atol=1e-4, rtol=1e-4)


def test_recency_context_moves_scores_towards_the_last_items(
    fitted: dict[str, Recommender],
) -> None:
    """A user without a trained row is scored from the history given: even items in, even items out."""
    rec = fitted["mf"]
    f = _factors(rec)
    u = np.array([f.n_trained_users + 5], np.int64)
    item_parity = np.array([int(i) % 2 for i in rec.items_.to_list()])
    for parity in (0, 1):
        hist = rec.items_.lookup([str(i) for i in range(parity, 16, 4)])
        scores = rec.model_.score(u, [np.asarray(hist, np.int64)])[0]
        scores[hist] = -np.inf
        assert np.mean(item_parity[np.argsort(-scores)[:10]] == parity) >= 0.8


# ----------------------------------------------------------------------- quality floors
@pytest.mark.slow
def test_mf_quality_floor_on_movielens(ml100k_loo) -> None:
    """Measured (seed 0, defaults): full-ranking NDCG@10 0.105, HR@10 0.205; popularity 0.043."""
    from recloop.evaluation.protocols import evaluate

    train, test = ml100k_loo.train, ml100k_loo.test
    rec = Recommender(model="mf", seed=0).fit(train)
    pop = Recommender(model="popularity", seed=0).fit(train)
    full = evaluate(rec, train, test, "full")
    assert full["ndcg@10"] >= 0.09
    assert full["hr@10"] >= 0.17
    assert full["ndcg@10"] >= 2 * evaluate(pop, train, test, "full")["ndcg@10"]
