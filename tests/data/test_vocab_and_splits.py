"""Property tests: vocabularies round-trip and only grow; splits partition the rows and do not leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.data import Vocab, leave_one_out, random_split, time_split
from recloop.errors import InvalidInputError

ids = st.lists(st.text(min_size=1, max_size=8), max_size=60)


@settings(max_examples=80, deadline=None)
@given(ids)
def test_vocab_round_trip(keys):
    v = Vocab(keys)
    unique = list(dict.fromkeys(keys))
    assert len(v) == len(unique) and v.to_list() == unique
    for k in keys:
        assert v.id(v.index(k)) == k and k in v
    assert v.ids(v.lookup(keys).tolist()) == keys
    assert Vocab.from_list(v.to_list()).to_list() == unique


@settings(max_examples=80, deadline=None)
@given(ids, ids)
def test_vocab_growth_keeps_old_indices(first, later):
    v = Vocab(first)
    before = {k: v.index(k) for k in first}
    new_idx = v.add_many(later)
    assert all(v.index(k) == i for k, i in before.items())
    assert sorted(set(v.to_list())) == sorted(set(first) | set(later))
    fresh = [k for k in dict.fromkeys(later) if k not in before]
    assert [v.index(k) for k in fresh] == list(range(len(before), len(before) + len(fresh)))
    assert all(v.id(i) == k for k, i in zip(later, new_idx.tolist()))
    assert v.get("\x00never", -1) == -1 and v.lookup(["\x00never"]).tolist() == [-1]


def test_vocab_refuses_duplicate_lists():
    with pytest.raises(
        ValueError, match="duplicate ids .first: 'a'"
    ):  # a DataError, still a ValueError
        Vocab.from_list(["b", "a", "a"])


logs = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 9), st.integers(0, 20)), max_size=80
).map(
    lambda rows: pd.DataFrame(
        {
            "user_id": [f"u{u}" for u, _, _ in rows],
            "item_id": [f"i{i}" for _, i, _ in rows],
            "timestamp": np.asarray([t for _, _, t in rows], np.int64),
            "row": np.arange(len(rows)),
        }
    )
)


def _rows(*parts: pd.DataFrame) -> list[int]:
    return sorted(int(r) for p in parts for r in p["row"])


@settings(max_examples=80, deadline=None)
@given(logs, st.booleans(), st.integers(1, 3))
def test_leave_one_out_no_leak_and_a_partition(df, valid, min_train):
    sp = leave_one_out(df, valid=valid, min_train=min_train)
    assert _rows(sp.train, sp.valid, sp.test) == list(range(len(df)))
    for u, test in sp.test.groupby("user_id"):
        assert len(test) == 1
        train_ts = sp.train.loc[sp.train["user_id"] == u, "timestamp"]
        valid_ts = sp.valid.loc[sp.valid["user_id"] == u, "timestamp"]
        assert len(train_ts) >= min_train
        assert (test["timestamp"].iloc[0] >= train_ts).all() and (
            test["timestamp"].iloc[0] >= valid_ts
        ).all()
        assert len(valid_ts) == int(valid) and (valid_ts.max() >= train_ts).all() if valid else True
    sizes = df.groupby("user_id").size()
    eligible = set(sizes[sizes >= min_train + 1 + int(valid)].index)
    assert set(sp.test["user_id"]) == eligible


@settings(max_examples=60, deadline=None)
@given(logs, st.floats(0.05, 0.5), st.floats(0.0, 0.3), st.integers(0, 1000))
def test_random_split_is_a_seeded_partition(df, test_size, valid_size, seed):
    sp = random_split(df, test_size=test_size, valid_size=valid_size, seed=seed)
    assert _rows(sp.train, sp.valid, sp.test) == list(range(len(df)))
    assert len(sp.test) == round(len(df) * test_size) and len(sp.valid) == round(
        len(df) * valid_size
    )
    again = random_split(df, test_size=test_size, valid_size=valid_size, seed=seed)
    assert again.test.equals(sp.test) and again.train.equals(sp.train)


@settings(max_examples=60, deadline=None)
@given(logs, st.floats(0.05, 0.5), st.floats(0.0, 0.3))
def test_time_split_is_a_cut_in_time(df, test_fraction, valid_fraction):
    sp = time_split(df, test_fraction=test_fraction, valid_fraction=valid_fraction)
    assert _rows(sp.train, sp.valid, sp.test) == list(range(len(df)))
    parts = [p["timestamp"] for p in (sp.train, sp.valid, sp.test) if len(p)]
    assert all(a.max() <= b.min() for a, b in zip(parts, parts[1:]))


def test_design_document_split_is_80_20_with_seed_42(ml100k):
    sp = random_split(ml100k.interactions)
    assert (len(sp.train), len(sp.test), len(sp.valid)) == (80_000, 20_000, 0)
    assert sp.test.equals(random_split(ml100k.interactions, seed=42).test)
    with pytest.raises(InvalidInputError):
        random_split(ml100k.interactions, test_size=1.5)
    with pytest.raises(InvalidInputError):
        time_split(ml100k.interactions, test_fraction=0.0)
