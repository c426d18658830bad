"""The synthetic generator: deterministic, and its known structure (clusters, popularity, sessions,
arrivals, drift) is really in the events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recloop.data import GroundTruth, SynthConfig, generate, load_synthetic, write_synthetic
from recloop.errors import DataError, InvalidInputError

CFG = SynthConfig(n_users=300, n_items=200, n_events=20_000, n_clusters=5, seed=7, drift_share=0.25)


@pytest.fixture(scope="module")
def synth():
    return generate(CFG)


def _clusters(ds, truth):
    df = ds.interactions
    item_c = df["item_id"].map(truth.item_cluster).to_numpy()
    ts = df["timestamp"].to_numpy()
    before = df["user_id"].map(truth.user_cluster).to_numpy()
    after = df["user_id"].map(truth.user_cluster_after).to_numpy()
    current = np.where(ts >= truth.drift_time, after, before)
    return df, item_c, before, after, current, ts


def test_deterministic_for_a_seed(synth):
    ds, truth = synth
    again, truth2 = generate(CFG)
    assert again.interactions.equals(ds.interactions) and truth2 == truth
    other, _ = generate(SynthConfig(**{**CFG.__dict__, "seed": 8}))
    assert not other.interactions.equals(ds.interactions)


def test_shape_and_columns(synth):
    ds, truth = synth
    df = ds.interactions
    assert len(df) == CFG.n_events and list(df.columns) == [
        "user_id",
        "item_id",
        "timestamp",
        "type",
        "value",
    ]
    assert df["timestamp"].is_monotonic_increasing
    assert set(df["user_id"]) <= set(truth.user_cluster) and set(df["item_id"]) <= set(
        truth.item_cluster
    )
    assert len(truth.user_cluster) == CFG.n_users and len(truth.item_cluster) == CFG.n_items
    assert ds.items is not None and ds.items.loc["i0", "cluster"] == truth.item_cluster["i0"]
    assert ds.users is not None and ds.users["drifted"].sum() == len(truth.drifted_users)


def test_users_mostly_pick_their_current_cluster(synth):
    ds, truth = synth
    _, item_c, _, _, current, _ = _clusters(ds, truth)
    share = (item_c == current).mean()
    assert (
        0.88 <= share <= 0.95
    )  # 0.9 drawn from the own cluster, plus the global draws that land there
    loose, t2 = generate(SynthConfig(**{**CFG.__dict__, "in_cluster": 0.3, "n_events": 5_000}))
    _, ic2, _, _, cur2, _ = _clusters(loose, t2)
    assert 0.35 <= (ic2 == cur2).mean() <= 0.55


def test_drift_switches_a_known_share_of_users_at_a_known_time(synth):
    ds, truth = synth
    df, item_c, before, after, _, ts = _clusters(ds, truth)
    cfg = truth.config
    assert truth.drift_time == int(cfg["start"] + cfg["drift_at"] * cfg["days"] * 86_400)
    assert len(truth.drifted_users) == round(CFG.drift_share * CFG.n_users)
    drifted = set(truth.drifted_users)
    for u, c in truth.user_cluster.items():
        assert (truth.user_cluster_after[u] != c) == (u in drifted)
        assert u not in drifted or truth.user_arrival[u] < truth.drift_time
    is_d = df["user_id"].isin(drifted).to_numpy()
    late = ts >= truth.drift_time
    assert (item_c[is_d & ~late] == before[is_d & ~late]).mean() > 0.85
    assert (item_c[is_d & late] == after[is_d & late]).mean() > 0.85
    assert (item_c[is_d & late] == before[is_d & late]).mean() < 0.1  # the old taste is gone
    assert (is_d & late).sum() > 1_000  # enough signal after the switch to measure recovery


def test_arrivals_popularity_and_sessions(synth):
    ds, truth = synth
    df = ds.interactions
    ts = df["timestamp"].to_numpy()
    assert (ts >= df["user_id"].map(truth.user_arrival).to_numpy()).all()
    assert (ts >= df["item_id"].map(truth.item_arrival).to_numpy()).all()
    start = truth.config["start"]
    late_users = [u for u, t in truth.user_arrival.items() if t > start]
    late_items = [i for i, t in truth.item_arrival.items() if t > start]
    assert len(late_users) == round(CFG.new_user_share * CFG.n_users) and len(late_items) == round(
        CFG.new_item_share * CFG.n_items
    )
    assert df["user_id"].isin(late_users).sum() > 500 and df["item_id"].isin(late_items).sum() > 100
    counts = df["item_id"].value_counts().to_numpy()
    assert counts[: CFG.n_items // 10].sum() > 0.3 * len(
        df
    )  # Zipf-like: the top 10% take far more than 10%
    same_user_next = (df["user_id"].to_numpy()[1:] == df["user_id"].to_numpy()[:-1]).mean()
    assert same_user_next > 0.6  # events come in sessions
    assert truth.cluster_of("u0", truth.drift_time - 1) == truth.user_cluster["u0"]
    assert truth.cluster_of("u0", truth.drift_time) == truth.user_cluster_after["u0"]
    assert sorted(truth.items_of(0)) == sorted(i for i, c in truth.item_cluster.items() if c == 0)


def test_write_and_read_back(tmp_path, synth):
    ds, truth = synth
    folder = write_synthetic(tmp_path / "syn", ds, truth)
    assert {p.name for p in folder.iterdir()} == {
        "events.parquet",
        "items.parquet",
        "users.parquet",
        "truth.json",
    }
    back, truth2 = load_synthetic(folder)
    assert back.interactions.equals(ds.interactions) and truth2 == truth
    assert back.items is not None and back.items.equals(ds.items)
    assert json.loads((folder / "truth.json").read_text())["drift_time"] == truth.drift_time
    with pytest.raises(DataError, match="already holds"):
        write_synthetic(folder, ds, truth)
    write_synthetic(folder, ds, truth, overwrite=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic(folder, ds, truth, overwrite=True)
    (folder / "truth.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="format"):
        load_synthetic(folder)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_users": 0}, "n_users"),
        ({"in_cluster": 1.5}, "in_cluster"),
        ({"n_clusters": 1}, "drift_share"),
        ({"n_clusters": 500}, "n_clusters"),
        ({"new_user_share": 1.0}, "new_user_share"),
        ({"event_types": {}}, "event_types"),
        ({"seed": -1}, "seed"),
        ({"n_events": 2.5}, "n_events"),
    ],
)
def test_bad_configs_name_the_field(changes, field):
    with pytest.raises(InvalidInputError) as info:
        SynthConfig(**{**CFG.__dict__, **changes})
    assert info.value.field == field


def test_event_type_mix_and_edge_sizes():
    ds, truth = generate(
        SynthConfig(
            n_users=5,
            n_items=3,
            n_events=400,
            n_clusters=3,
            seed=0,
            drift_share=0.0,
            event_types={"view": 0.7, "purchase": 0.3},
        )
    )
    share = (ds.interactions["type"] == "view").mean()
    assert 0.6 < share < 0.8 and truth.drifted_users == []
    empty, _ = generate(
        SynthConfig(n_users=3, n_items=2, n_events=0, n_clusters=1, drift_share=0.0)
    )
    assert len(empty.interactions) == 0
    assert isinstance(GroundTruth.from_dict(truth.to_dict()), GroundTruth)
    assert isinstance(ds.interactions["user_id"].iloc[0], str) and pd.api.types.is_integer_dtype(
        ds.interactions["timestamp"]
    )
