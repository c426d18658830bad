"""Cleaning with a report, duplicate policies, bots, k-core, implicit feedback, normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recloop.data import CleaningReport, Normalizer, clean, k_core, to_implicit
from recloop.data.splits import random_split
from recloop.errors import DataError, InvalidInputError, NotFittedError

T = 1_700_000_000


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "type", "value"])


def test_each_reason_is_counted_once_and_reported():
    rows = [("u1", "a", T, "click", 1.0)] * 2  # one exact duplicate
    rows += [
        (None, "a", T, "click", 1.0),
        ("u1", "", T, "click", 1.0),
        ("x" * 300, "a", T, "click", 1.0),
        (1.5, "a", T, "click", 1.0),
    ]  # 4 bad ids
    rows += [
        ("u2", "a", "soon", "click", 1.0),
        ("u2", "b", None, "click", 1.0),
    ]  # 2 unparseable times
    rows += [("u2", "c", -5, "click", 1.0), ("u2", "d", 5e9, "click", 1.0)]  # 2 out of range
    rows += [("u3", "a", T, "click", float("inf")), ("u3", "b", T, "click", "n/a")]  # 2 bad values
    rows += [
        ("u3", "c", T, "", 1.0),
        (None, "c", "soon", None, float("nan")),
    ]  # 1 bad type, 1 bad (id first)
    rows += [(f"u{k}", "z", T + k, "view", 1.0) for k in range(40)]
    df, report = clean(frame(rows), max_invalid_fraction=0.5)
    assert report.rows_in == len(rows) and report.rows_out == len(df) == 41
    assert report.dropped == {
        "bad_id": 5,
        "bad_timestamp": 2,
        "timestamp_out_of_range": 2,
        "bad_value": 2,
        "bad_type": 1,
        "exact_duplicate": 1,
    }
    assert report.malformed == 12 and report.total_dropped == 13
    assert report.examples["bad_timestamp"] == "row 7: timestamp='soon'"
    text = str(report)
    assert (
        "missing or malformed ids" in text and "exact duplicates" in text and "e.g. row 7" in text
    )
    assert CleaningReport.from_dict(report.to_dict()) == report
    assert df["timestamp"].is_monotonic_increasing and df["timestamp"].dtype == np.int64


def test_ids_are_normalised_to_strings():
    df, _ = clean(pd.DataFrame({"user_id": [5, 6], "item_id": [7.0, 8.0], "timestamp": [1, 2]}))
    assert df["user_id"].tolist() == ["5", "6"] and df["item_id"].tolist() == ["7", "8"]
    df, _ = clean(
        pd.DataFrame(
            {
                "user_id": pd.Series([5, "5", np.int64(5)], dtype=object),
                "item_id": ["a"] * 3,
                "timestamp": [1, 2, 3],
            }
        )
    )
    assert df["user_id"].tolist() == ["5", "5", "5"]


@pytest.mark.parametrize(
    ("unit", "raw", "seconds"),
    [
        ("auto", [T, T + 1], [T, T + 1]),
        ("auto", [T * 1000, T * 1000 + 1500], [T, T + 1]),
        ("auto", [T * 10**6], [T]),
        ("ns", [T * 10**9], [T]),
        ("auto", ["2023-11-14T22:13:20Z", "2023-11-14T23:13:21+01:00"], [T, T + 1]),
        ("auto", pd.to_datetime([T, T + 1], unit="s"), [T, T + 1]),
    ],
)
def test_timestamp_units(unit, raw, seconds):
    df, _ = clean(
        pd.DataFrame({"user_id": ["u"] * len(raw), "item_id": ["i"] * len(raw), "timestamp": raw}),
        timestamp_unit=unit,
    )
    assert df["timestamp"].tolist() == seconds


def test_malformed_beyond_the_threshold_is_one_line_error():
    rows = [("u", "i", "bad", "click", 1.0)] * 10 + [
        ("u", "i", T + k, "click", 1.0) for k in range(90)
    ]
    with pytest.raises(DataError) as info:
        clean(frame(rows), source="log.csv")
    msg = str(info.value)
    assert msg.startswith("log.csv: 10 of 100 rows (10.0%) are malformed, above the 5% allowed")
    assert "bad_timestamp 10" in msg and "\n" not in msg
    df, report = clean(frame(rows), max_invalid_fraction=0.1)
    assert report.rows_out == 90


def test_unknown_types_when_types_are_given():
    rows = [("u", "i", T, "click", 1.0), ("u", "j", T, "teleport", 1.0)] + [
        ("v", f"k{n}", T, "view", 1.0) for n in range(98)
    ]
    df, report = clean(frame(rows), types=["click", "view"])
    assert report.dropped["bad_type"] == 1 and "teleport" not in set(df["type"])


@pytest.mark.parametrize(
    ("policy", "values", "times"),
    [
        ("keep", [1.0, 2.0, 4.0], [T, T + 1, T + 2]),
        ("first", [1.0], [T]),
        ("last", [4.0], [T + 2]),
        ("sum", [7.0], [T + 2]),
    ],
)
def test_duplicate_policies(policy, values, times):
    rows = [
        ("u", "i", T + 2, "click", 4.0),
        ("u", "i", T, "click", 1.0),
        ("u", "i", T + 1, "click", 2.0),
        ("u", "i", T + 1, "view", 1.0),
    ]
    df, report = clean(frame(rows), duplicates=policy)
    clicks = df[df["type"] == "click"]
    assert clicks["value"].tolist() == values and clicks["timestamp"].tolist() == times
    assert (df["type"] == "view").sum() == 1  # another type of event is not a repeat
    assert report.dropped.get("duplicate", 0) == 3 - len(values)


def test_bots_beyond_the_activity_quantile():
    rows = [(f"u{u}", f"i{k}", T + k, "click", 1.0) for u in range(99) for k in range(5)]
    rows += [("bot", f"i{k}", T + k, "click", 1.0) for k in range(500)]
    df, report = clean(frame(rows), bot_quantile=0.99)
    assert report.dropped["bot"] == 500 and "bot" not in set(df["user_id"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=150), st.integers(1, 4))
def test_k_core_properties(pairs, k):
    df = pd.DataFrame(pairs, columns=["user_id", "item_id"]).astype(str)
    core = k_core(df, k)
    if len(core):
        assert (
            core.groupby("user_id").size().min() >= k and core.groupby("item_id").size().min() >= k
        )
    assert k_core(core, k).equals(core)  # a fixed point
    # the k-core is unique, so peeling one sparse user or item at a time must give the same rows
    rows = list(zip(df["user_id"], df["item_id"]))
    while True:
        users = pd.Series([u for u, _ in rows]).value_counts()
        items = pd.Series([i for _, i in rows]).value_counts()
        sparse = next((("u", u) for u, n in users.items() if n < k), None) or next(
            (("i", i) for i, n in items.items() if n < k), None
        )
        if sparse is None:
            break
        rows = [r for r in rows if (r[0] if sparse[0] == "u" else r[1]) != sparse[1]]
    assert list(zip(core["user_id"], core["item_id"])) == rows


def test_k_core_cascades():
    df = pd.DataFrame({"user_id": list("aaabbc"), "item_id": list("xyzxyz")})
    assert k_core(df, 2)[["user_id", "item_id"]].values.tolist() == [
        ["a", "x"],
        ["a", "y"],
        ["b", "x"],
        ["b", "y"],
    ]
    assert len(k_core(df, 3)) == 0
    with pytest.raises(InvalidInputError, match="k: must be an integer >= 1"):
        k_core(df, 0)


def test_to_implicit_by_threshold_and_by_type():
    df = frame(
        [
            ("u", "a", 1, "rating", 5.0),
            ("u", "b", 2, "rating", 3.0),
            ("u", "c", 3, "rating", 4.0),
            ("u", "d", 4, "purchase", 1.0),
            ("u", "e", 5, "skip", 1.0),
            ("u", "f", 6, "view", 1.0),
        ]
    )
    assert to_implicit(df)["item_id"].tolist() == ["a", "c", "d", "f"]
    assert to_implicit(df, threshold=5)["item_id"].tolist() == ["a", "d", "f"]
    assert to_implicit(df, positive_types=["purchase"])["item_id"].tolist() == ["d"]
    both = to_implicit(df, keep_negatives=True)
    assert both["label"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    with pytest.raises(InvalidInputError, match="type"):
        to_implicit(frame([("u", "a", 1, "teleport", 1.0)]))


def test_normalizer_is_fitted_on_training_data_only(ml100k):
    split = random_split(ml100k.interactions, test_size=0.2, seed=42)
    norm = Normalizer("zscore").fit(split.train)
    mean, std = split.train["value"].mean(), split.train["value"].std(ddof=0)
    assert norm.stats_["value"] == pytest.approx((mean, std))
    test_scaled = norm.transform(split.test)["value"]
    assert test_scaled.tolist() == pytest.approx(((split.test["value"] - mean) / std).tolist())
    assert test_scaled.mean() != pytest.approx(0.0, abs=1e-6)  # not refitted on the test part
    back = norm.inverse_transform(norm.transform(split.test))
    assert np.allclose(back["value"], split.test["value"])
    mm = Normalizer("minmax").fit(split.train)
    assert mm.transform(split.train)["value"].between(0, 1).all()
    assert Normalizer.from_dict(mm.to_dict()).stats_ == mm.stats_
    with pytest.raises(NotFittedError):
        Normalizer().transform(split.test)
    with pytest.raises(InvalidInputError, match="missing"):
        Normalizer(columns=["missing"]).fit(split.train)
    with pytest.raises(InvalidInputError, match="method"):
        Normalizer("log")  # type: ignore[arg-type]


cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["", " ", "2024-01-01", "2024-01-01T10:00:00+02:00", "1e12", "x" * 300]),
    st.just(T),
    st.just(float(T)),
    st.just(str(T)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells, cells, cells), min_size=1, max_size=30))
def test_clean_on_any_input_gives_valid_rows_and_a_consistent_report(rows):
    raw = pd.DataFrame(
        rows, columns=["user_id", "item_id", "timestamp", "type", "value"], dtype=object
    )
    df, report = clean(raw, max_invalid_fraction=1.0)
    assert report.rows_in == len(raw) and report.rows_out == len(df)
    assert report.rows_in - report.rows_out == sum(report.dropped.values())
    for col, longest in (("user_id", 256), ("item_id", 256), ("type", 64)):
        assert all(isinstance(v, str) and v.strip() and len(v) <= longest for v in df[col])
    assert df["timestamp"].between(0, 4_102_444_800).all() and np.isfinite(df["value"]).all()
    assert df["timestamp"].is_monotonic_increasing and not df.duplicated().any()
