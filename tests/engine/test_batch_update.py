"""``Recommender.update`` on a batch: the column fast path gives exactly the state, the learner's
queue and the errors of applying the events one by one with ``parse_event`` (the reference)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.errors import InvalidInputError
from recloop.events import DEFAULT_EVENT_TYPES, Event, parse_events
from recloop.models.base import Prefixes
from recloop.online import OnlineConfig
from synthdata import synthetic

HISTORY_LEN = 50

ids = st.one_of(st.integers(0, 90), st.sampled_from(["a", "b", "x1", "7", "ü"]))
values = st.one_of(st.floats(-10, 10, allow_nan=False), st.integers(-5, 5), st.none())
stamps = st.one_of(
    st.floats(0, 4e9), st.integers(0, 2_000_000_000), st.none(), st.just("2024-01-01T00:00:00Z")
)
valid = st.fixed_dictionaries(
    {"user_id": ids, "item_id": ids},
    optional={
        "type": st.sampled_from(DEFAULT_EVENT_TYPES),
        "value": values,
        "timestamp": stamps,
        "context": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    },
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=4),
    st.sampled_from(["", " ", "x" * 257, "nope", "rating", "2024-13-01"]),
    st.lists(st.integers(), max_size=2),
    st.just(1e300),
    st.just(5.0),
    st.just(-1.0),
)
fields = st.sampled_from(
    ["user_id", "item_id", "type", "event", "value", "timestamp", "context", "extra"]
)
invalid = st.tuples(valid, fields, junk).map(lambda t: {**t[0], t[1]: t[2]})
batches = st.one_of(
    st.lists(valid, min_size=1, max_size=30),
    st.lists(
        st.one_of(valid, valid, valid, invalid, st.just("not an event")), min_size=1, max_size=30
    ),
)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    rec = Recommender(
        model="popularity",
        seed=0,
        online=OnlineConfig(
            background=False, max_batch=10**9, replay_ratio=0.0, history_len=HISTORY_LEN
        ),
    )
    rec.fit(synthetic())
    path = tmp_path_factory.mktemp("rec") / "popularity"
    rec.save(path)
    return path


def state(rec: Recommender) -> dict:
    return {
        "users": rec.users_.to_list(),
        "items": rec.items_.to_list(),
        "sequences": [list(s) for s in rec.sequences_],
        "seen": [set(s) for s in rec.seen_],
        "item_counts": rec.item_counts_[: rec.n_items].tolist(),
        "events_applied": rec.events_applied_,
    }


def queued(rec: Recommender) -> list[tuple]:
    """The learner's queue as (user, item, label, weight, history) rows."""
    out = []
    for users, items, labels, weights, seqs, ends in rec._learner._queue:
        hist = Prefixes(seqs, ends, HISTORY_LEN)
        out += [
            (int(u), int(i), float(lab), float(w), h.tolist())
            for u, i, lab, w, h in zip(users, items, labels, weights, hist)
        ]
    return out


def reference(before: dict, events: list[Event], rec: Recommender) -> tuple[dict, list[tuple]]:
    """What applying the events one at a time gives: a per-event reference for the batch path."""
    s = {k: (list(v) if isinstance(v, list) else v) for k, v in before.items()}
    s["sequences"] = [list(x) for x in before["sequences"]]
    s["seen"] = [set(x) for x in before["seen"]]
    users = {u: n for n, u in enumerate(s["users"])}
    items = {i: n for n, i in enumerate(s["items"])}
    rows = []
    for ev in events:
        u = users.setdefault(ev.user_id, len(users))
        i = items.setdefault(ev.item_id, len(items))
        if u == len(s["users"]):
            s["users"].append(ev.user_id)
            s["sequences"].append([])
            s["seen"].append(set())
        if i == len(s["items"]):
            s["items"].append(ev.item_id)
            s["item_counts"].append(0.0)
        sig = rec.feedback.signal(ev)
        positive = rec.feedback.is_positive(ev)
        hist = s["sequences"][u][-HISTORY_LEN:]
        s["seen"][u].add(i)
        if positive:
            s["sequences"][u].append(i)
            s["item_counts"][i] += 1
        label = 1.0 if positive and sig.label > 0.5 else (1.0 if ev.type == "rating" else 0.0)
        rows.append((u, i, label, float(np.float32(sig.weight)), list(hist)))
    s["events_applied"] += len(events)
    return s, rows


def as_float32(rows: list[tuple]) -> list[tuple]:
    return [(u, i, lab, float(np.float32(w)), h) for u, i, lab, w, h in rows]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches)
def test_a_batch_equals_the_events_one_by_one(snapshot, batch):
    rec = Recommender.load(snapshot)
    before = state(rec)
    try:
        events = parse_events(batch, rec.feedback)
    except InvalidInputError as exc:
        expected: InvalidInputError | None = exc
    else:
        expected = None
    if expected is not None:
        with pytest.raises(InvalidInputError) as got:
            rec.update(batch)
        assert (got.value.field, str(got.value)) == (expected.field, str(expected))
        assert state(rec) == before, "an invalid batch applies nothing"
        assert queued(rec) == []
        return
    assert rec.update(batch) == len(batch)
    want, rows = reference(before, events, rec)
    assert state(rec) == want
    assert as_float32(queued(rec)) == rows
    # the same events one at a time reach the same state
    one = Recommender.load(snapshot)
    for ev in batch:
        one.update(ev)
    assert state(one) == want
    assert as_float32(queued(one)) == rows


def test_event_objects_and_dicts_mix(snapshot):
    rec = Recommender.load(snapshot)
    n = rec.update(
        [
            Event("new-user", "3", "purchase"),
            {"user_id": "new-user", "item_id": 5, "event": "skip"},
            {"user_id": "new-user", "item_id": "fresh", "type": "rating", "value": 2.0},
        ]
    )
    assert n == 3
    u = rec.users_.index("new-user")
    assert rec.items_.ids(rec.sequences_[u]) == [
        "3",
        "fresh",
    ]  # a skip is no positive; every rating is one
    assert set(rec.items_.ids(sorted(rec.seen_[u]))) == {"3", "5", "fresh"}
    labels_weights = [
        (float(lab), float(w)) for c in rec._learner._queue for lab, w in zip(c[2], c[3])
    ]
    assert labels_weights == [(1.0, 3.0), (0.0, 0.5), (1.0, pytest.approx(2.0 / 3.5))]


def test_an_event_with_an_unknown_type_object_rejects_the_batch_before_applying_anything(snapshot):
    rec = Recommender.load(snapshot)
    before = state(rec)
    with pytest.raises(InvalidInputError) as exc:
        rec.update([{"user_id": "u1", "item_id": "i1"}, Event("u2", "i2", "not-a-type")])
    assert exc.value.field == "type"
    assert state(rec) == before


def test_a_dataframe_batch_with_gaps_is_applied_like_its_rows(snapshot):
    rec, one = Recommender.load(snapshot), Recommender.load(snapshot)
    df = pd.DataFrame(
        {
            "user_id": [1, 2, 70],
            "item_id": [3, 5, 999],
            "event": ["click", "view", "rating"],
            "value": [1.0, np.nan, 4.5],
            "timestamp": [2_000_000, np.nan, 2_000_002],
        }
    )
    assert rec.update(df) == 3
    for r in df.to_dict("records"):
        one.update({k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))})
    assert state(rec) == state(one)
    with pytest.raises(InvalidInputError) as exc:
        rec.update(pd.DataFrame({"user_id": [1, 2], "item_id": [3, ""]}))
    assert exc.value.field == "events[1].item_id"


@pytest.mark.parametrize("model", ["mf", "sasrec"])
def test_learning_from_a_batch_equals_learning_from_its_events_in_order(model):
    """Histories read lazily at step time are the ones the events had: same parameters."""
    online = OnlineConfig(background=False, max_batch=10**9, replay_ratio=1.0)
    kw = {"epochs": 2} if model == "mf" else {"epochs": 1, "dim": 16, "max_len": 20}
    a = Recommender(model=model, seed=0, online=online, **kw).fit(synthetic())
    b = Recommender(model=model, seed=0, online=online, **kw).fit(synthetic())
    events = [
        {"user_id": u % 7, "item_id": (u * 5) % 80, "type": "click" if u % 4 else "skip"}
        for u in range(60)
    ]
    events.append({"user_id": "newcomer", "item_id": "new-item", "type": "purchase"})
    a.update(events)
    for ev in events:
        b.update(ev)
    a.flush(), b.flush()
    assert a._learner.steps == b._learner.steps == 1
    sa, sb = a.model_.get_state(), b.model_.get_state()

    def flat(x):
        if isinstance(x, dict):
            return {k: flat(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [flat(v) for v in x]
        return x.detach().numpy() if hasattr(x, "detach") else x

    fa, fb = flat(sa), flat(sb)

    def same(x, y):
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                same(x[k], y[k])
        elif isinstance(x, list):
            assert len(x) == len(y)
            for p, q in zip(x, y):
                same(p, q)
        elif isinstance(x, np.ndarray):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        else:
            assert x == y

    same(fa, fb)
