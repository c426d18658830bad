"""Generic CSV / Parquet tables with a column mapping, and the one ``load`` entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recloop.data import (
    CleanOptions,
    SynthConfig,
    generate,
    load,
    load_table,
    summarize,
    write_synthetic,
)
from recloop.errors import DataError


@pytest.fixture
def log_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [1, 1, 2, 2, 3, 3],
            "sku": ["a", "b", "a", "c", "b", "c"],
            "ms": [1_700_000_000_000 + k * 1000 for k in range(6)],
            "action": ["view", "click", "purchase", "view", "click", "click"],
            "amount": [1.0, 1.0, 20.0, 1.0, 1.0, 1.0],
            "extra": list("xxxxxx"),
        }
    )


MAPPING = {
    "user_id": "uid",
    "item_id": "sku",
    "timestamp": "ms",
    "type": "action",
    "value": "amount",
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".tsv"])
def test_a_table_with_a_mapping(tmp_path, log_frame, suffix):
    path = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        log_frame.to_parquet(path)
    else:
        log_frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    ds = load_table(path, mapping=MAPPING, timestamp_unit="ms")
    inter = ds.interactions
    assert inter["user_id"].tolist() == ["1", "1", "2", "2", "3", "3"]
    assert inter["timestamp"].tolist() == [1_700_000_000 + k for k in range(6)]
    assert inter["type"].tolist() == log_frame["action"].tolist()
    assert inter["value"].tolist() == log_frame["amount"].tolist()
    assert ds.meta["mapping"] == MAPPING
    assert load(path, MAPPING).interactions.equals(inter)  # auto unit: ms from the magnitude


def test_columns_found_by_common_names(tmp_path):
    path = tmp_path / "ratings.csv"
    pd.DataFrame(
        {
            "userId": [1, 2],
            "movieId": [10, 20],
            "rating": [4.5, 3.0],
            "timestamp": ["2024-01-01T00:00:00Z", "2024-01-02 00:00:00+01:00"],
        }
    ).to_csv(path, index=False)
    ds = load(path)
    assert ds.meta["mapping"] == {
        "user_id": "userId",
        "item_id": "movieId",
        "timestamp": "timestamp",
        "value": "rating",
    }
    assert ds.interactions["timestamp"].tolist() == [1_704_067_200, 1_704_067_200 + 86_400 - 3_600]
    assert set(ds.interactions["type"]) == {"rating"}


def test_without_timestamps_the_row_order_is_the_time(tmp_path):
    path = tmp_path / "clicks.csv"
    pd.DataFrame({"user": ["x", "y", "x"], "item": ["p", "q", "r"]}).to_csv(path, index=False)
    inter = load(path).interactions
    assert inter["timestamp"].tolist() == [0, 1, 2] and set(inter["type"]) == {"click"}


def test_an_unknown_column_is_named(tmp_path, log_frame):
    path = tmp_path / "log.csv"
    log_frame.to_csv(path, index=False)
    with pytest.raises(
        DataError,
        match="column 'user' .*mapped to user_id.* not found in log.csv; columns: uid, sku",
    ):
        load(path, {"user_id": "user", "item_id": "sku"})
    with pytest.raises(DataError, match="mapping key 'rating' is not one of user_id"):
        load(path, {"user_id": "uid", "item_id": "sku", "rating": "amount"})
    log_frame.drop(columns="sku").to_csv(tmp_path / "noitem.csv", index=False)
    with pytest.raises(DataError, match="no item_id column in noitem.csv"):
        load(tmp_path / "noitem.csv", {"user_id": "uid"})


def test_metadata_tables_are_kept(tmp_path, log_frame):
    log_frame.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame(
        {"sku": ["a", "b", "c"], "title": ["A", "B", "C"], "genres": ["x", "y", "x|y"]}
    ).to_csv(tmp_path / "items.csv", index=False)
    ds = load_table(tmp_path / "log.csv", MAPPING, items=tmp_path / "items.csv")
    assert ds.items is not None and ds.items.loc["c", "genres"] == "x|y" and ds.title("b") == "B"


def test_too_many_malformed_rows_is_an_error_and_a_few_are_reported(tmp_path):
    rows = [{"user_id": u, "item_id": "i", "timestamp": 1_700_000_000 + u} for u in range(100)]
    rows[3]["timestamp"] = "garbage"
    pd.DataFrame(rows).to_csv(tmp_path / "few.csv", index=False)
    ds = load(tmp_path / "few.csv")
    assert len(ds.interactions) == 99 and ds.meta["cleaning"].dropped["bad_timestamp"] == 1
    for r in rows[:20]:
        r["user_id"] = ""
    pd.DataFrame(rows).to_csv(tmp_path / "many.csv", index=False)
    with pytest.raises(DataError, match=r"many.csv: 20 of 100 rows \(20.0%\) are malformed"):
        load(tmp_path / "many.csv")
    assert (
        len(
            load(
                tmp_path / "many.csv", cleaning=CleanOptions(max_invalid_fraction=0.5)
            ).interactions
        )
        == 80
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b'user_id,item_id\n1,"unterminated\n', "could not be read|malformed"),
        (b"user_id,item_id\n1,2,3,4\n", "malformed"),
        (b"user_id,item_id\n1,2\n1,2,3,4\n", "malformed"),
    ],
)
def test_broken_csv_files(tmp_path, content, words):
    (tmp_path / "x.csv").write_bytes(content)
    with pytest.raises(DataError, match=words) as info:
        load(tmp_path / "x.csv")
    assert "\n" not in str(info.value)


def test_broken_parquet(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="x.parquet could not be read"):
        load(tmp_path / "x.parquet")


def test_load_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'movielens-1b'.*movielens-100k"):
        load("movielens-1b")
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type .json"):
        load(tmp_path / "x.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a MovieLens release"):
        load(tmp_path / "empty")
    with pytest.raises(DataError, match="mapping applies to CSV or Parquet"):
        load("movielens-100k", {"user_id": "u"})


def test_load_a_synthetic_folder_with_extra_cleaning(tmp_path):
    ds, truth = generate(SynthConfig(n_users=40, n_items=30, n_events=1_500, n_clusters=3, seed=3))
    write_synthetic(tmp_path / "syn", ds, truth)
    back = load(tmp_path / "syn")
    assert back.interactions.equals(ds.interactions) and back.meta["truth"] == truth
    cored = load(tmp_path / "syn", cleaning=CleanOptions(k=5, duplicates="first"))
    report = cored.meta["cleaning"]
    assert report.rows_in == 1_500 and report.rows_out == len(cored.interactions) < 1_500
    assert report.dropped["duplicate"] > 0
    assert len(cored.interactions) and cored.interactions.groupby("user_id").size().min() >= 5


def test_summarize_movielens(ml100k):
    s = summarize(ml100k)
    assert (s["interactions"], s["users"], s["items"]) == (100_000, 943, 1_682)
    assert s["time_span"]["first"] == "1997-09-20" and s["time_span"]["last"] == "1998-04-22"
    assert s["sparsity"] == pytest.approx(1 - 100_000 / (943 * 1_682))
    assert s["per_user"]["min"] == 20 and s["event_types"] == {"rating": 100_000}
    assert np.isclose(s["value"]["mean"], ml100k.interactions["value"].mean(), atol=1e-4)
