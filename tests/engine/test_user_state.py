"""Columnar per-user state (``engine.userstate``) and the ``max_users`` bound.

The state must say exactly what per-user Python lists and sets would say (histories,
timestamps, seen items, and the learner's prefixes read later), whatever order events
arrive in; past ``max_users`` the least recently active users go, and only they.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.engine.userids import UserIds
from recloop.engine.userstate import UserState
from recloop.errors import ConfigError, InvalidInputError
from recloop.models.base import Prefixes
from recloop.online import OnlineConfig

event = st.tuples(
    st.integers(0, 7), st.integers(0, 30), st.booleans(), st.floats(0, 1e9, allow_nan=False)
)
batches = st.lists(st.lists(event, min_size=0, max_size=12), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(start=st.lists(st.lists(st.integers(0, 30), max_size=6), max_size=5), batches=batches)
def test_state_matches_lists_and_sets(start, batches):
    ref_seq = [list(s) for s in start]
    ref_time = [[float(j) for j in range(len(s))] for s in start]
    ref_seen = [set(s) for s in start]
    state = UserState()
    state.reset(
        [np.asarray(s, np.int64) for s in start],
        [np.asarray(t) for t in ref_time],
        [np.asarray(sorted(s), np.int64) for s in ref_seen],
    )
    prefixes: list[tuple[object, int, list[int]]] = []  # (ref, end, what it must read)
    for batch in batches:
        state.ensure(8)
        while len(ref_seq) < 8:
            ref_seq.append([]), ref_time.append([]), ref_seen.append(set())
        users = [u for u, _, _, _ in batch]
        refs, ends = state.append(
            users,
            [i for _, i, _, _ in batch],
            [p for *_, p, _ in batch],
            [t for *_, t in batch],
            True,
        )
        for (u, i, p, t), r, e in zip(batch, refs, ends):
            prefixes.append((r, e, list(ref_seq[u])))
            assert e == len(ref_seq[u])
            ref_seen[u].add(i)
            if p:
                ref_seq[u].append(i)
                ref_time[u].append(t)
    for u in range(len(state)):
        assert state.history(u).tolist() == ref_seq[u]
        assert state.times(u).tolist() == ref_time[u]
        assert state.seen(u).tolist() == sorted(ref_seen[u])
    # the learner reads every queued event's history after later events moved the chunks
    refs = [r for r, _, _ in prefixes]
    ends = [e for _, e, _ in prefixes]
    read = Prefixes(refs, ends, max_len=1000)
    assert [h.tolist() for h in read] == [want for _, _, want in prefixes]
    back = UserState.from_flat(state.to_flat())
    for u in range(len(state)):
        assert back.history(u).tolist() == ref_seq[u]
        assert back.seen(u).tolist() == sorted(ref_seen[u])


def test_a_queued_history_survives_eviction_and_the_rows_next_user():
    state = UserState()
    state.ensure(2)
    refs, ends = state.append([0, 0], [5, 6], [True, True], [1.0, 2.0], True)
    assert refs[0] is refs[1]  # one copy per user and call, not per event
    state.clear(np.array([0]))
    state.append([0], [9], [True], [3.0], False)  # the row's next user
    assert refs[1][: ends[1]].tolist() == [5] and refs[0][: ends[0]].tolist() == []


def test_user_ids_reuse_rows_from_the_floor_only():
    ids = UserIds(["a", "b", "c", "d"])
    ids.reuse_from = 2
    assert ids.remove([1, 3]) == ["b", "d"]
    assert ids.add("e") == 3 and ids.add("f") == 4  # row 1 belongs to the fit: not reused
    back = UserIds.from_list(ids.to_list(), reuse_from=2)
    assert back.to_list() == ["a", "", "c", "e", "f"] and back.get("b") == -1


def frame(n_users: int, per_user: int, n_items: int = 40, t0: int = 1_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", int(rng.integers(0, n_items)), t0 + u * per_user + j)
        for u in range(n_users)
        for j in range(per_user)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def clicks(users: range, per_user: int = 3, n_items: int = 40) -> list[dict]:
    rng = np.random.default_rng(users.start)
    return [
        {"user_id": f"new{u}", "item_id": int(rng.integers(0, n_items)), "timestamp": 2e6 + u}
        for u in users
        for _ in range(per_user)
    ]


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bounded") / "mf"
    Recommender(model="mf", seed=0, epochs=2).fit(frame(30, 8)).save(path)
    return path


def test_max_users_evicts_the_least_recently_active(fitted_dir):
    rec = Recommender.load(fitted_dir, max_users=100)
    gone: list[str] = []
    rec.on_evict = gone.extend
    for start in range(0, 300, 25):
        rec.update(clicks(range(start, start + 25)))
        rec.update([{"user_id": "u0", "item_id": 1, "timestamp": 3e6 + start}])  # stays active
    status = rec.memory_status()
    assert rec.n_users <= 100 and status["users_resident"] == rec.n_users
    assert status["users_evicted"] == len(gone) >= 200
    # freed rows are reused (but the fit's 30): tables stay within fit + bound + one batch
    assert status["user_rows"] <= 30 + 100 + 25
    assert "u0" not in gone and rec.history("u0")
    assert "new299" not in gone and rec.history("new299")
    assert set(gone) >= {f"new{u}" for u in range(150)}  # the oldest new users went
    assert rec.history("new0") == []  # an evicted user starts over
    assert rec.recommend("new0", 5) == rec.recommend("never-seen", 5)


def test_evicted_rows_go_to_new_users_with_a_fresh_model_row():
    rec = Recommender(
        model="mf", seed=0, epochs=2, online=OnlineConfig(background=False, max_batch=10**9)
    ).fit(frame(30, 8))
    rec.limit_users(45)
    rec.update(clicks(range(0, 40)))  # the fit's users are the least recently active: they go
    rec.flush()  # one online step: the new users' rows are learned
    rows = rec.users_.lookup([f"new{u}" for u in range(40)])
    user = rec.model_.factors_.user
    assert float(user[torch.from_numpy(rows)].abs().sum()) > 0
    rec.update(clicks(range(40, 60)))  # evicts the oldest new users; no step yet
    rec.update(clicks(range(60, 80)))  # takes their rows
    taken = rec.users_.lookup([f"new{u}" for u in range(60, 80)])
    reused = taken[np.isin(taken, rows)]
    assert len(reused)  # new users took evicted rows ...
    assert float(user[torch.from_numpy(reused)].abs().sum()) == 0.0  # ... starting from zero


def test_restore_user_rebuilds_an_evicted_users_state(fitted_dir):
    rec = Recommender.load(fitted_dir, max_users=40)
    mine = clicks(range(0, 1), per_user=4)
    rec.update(mine)
    before = rec.user_state("new0")
    rec.update(clicks(range(1, 80)))
    assert rec.history("new0") == []
    applied = rec.events_applied
    assert rec.restore_user("new0", mine) == 4
    after = rec.user_state("new0")
    assert (after.items, after.timestamps, after.seen) == (
        before.items,
        before.timestamps,
        before.seen,
    )
    assert rec.events_applied == applied  # nothing is applied twice
    with pytest.raises(InvalidInputError, match="events"):
        rec.restore_user("new0", clicks(range(5, 6)))


def test_save_and_load_keep_free_rows(fitted_dir, tmp_path):
    rec = Recommender.load(fitted_dir, max_users=40)
    rec.update(clicks(range(0, 80)))
    rec.save(tmp_path / "snap")
    back = Recommender.load(tmp_path / "snap", max_users=40)
    assert back.n_users == rec.n_users and back.users_.to_list() == rec.users_.to_list()
    for uid in ("new79", "u3"):
        assert back.history(uid) == rec.history(uid)
    back.update(clicks(range(100, 110)))
    assert len(back.users_) == len(rec.users_)  # new users took free rows


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_max_users_is_validated(bad):
    with pytest.raises(ConfigError, match="max_users"):
        Recommender(model="popularity", max_users=bad)
