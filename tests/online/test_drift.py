"""Drift: after a known taste switch, the online model recovers; the static one does not.

Synthetic log (recloop.data.synth): half of the users switch cluster at the middle of the log.
History = everything before the switch; then a test-then-train replay. We follow the drifted
users' events after the switch, by how many events each has made since.
"""

from __future__ import annotations

import numpy as np
import pytest

from recloop import Recommender
from recloop.data.synth import SynthConfig, generate
from recloop.evaluation.replay import replay, split_history

MODEL = "sasrec"


@pytest.fixture(scope="module")
def drift_runs():
    ds, truth = generate(
        SynthConfig(
            n_users=200,
            n_items=150,
            n_events=16_000,
            n_clusters=5,
            drift_share=0.5,
            drift_at=0.5,
            new_user_share=0.0,
            new_item_share=0.0,
            seed=0,
        )
    )
    events = ds.interactions
    frac = float((events.timestamp < truth.drift_time).mean())
    _, stream = split_history(events, frac)
    runs = {
        mode: replay(
            lambda: Recommender(model=MODEL, seed=0),
            events,
            mode=mode,
            history_fraction=frac,
            max_events=2500,
            keep_hits=True,
        )
        for mode in ("static", "online")
    }
    stream = stream.iloc[:2500]
    since = stream.groupby("user_id").cumcount().to_numpy()
    drifted = stream.user_id.isin(set(truth.drifted_users)).to_numpy()
    return runs, since, drifted


def test_online_recovers_after_the_switch_and_static_does_not(drift_runs):
    runs, since, drifted = drift_runs
    after = drifted & (since >= 5)  # a drifted user's 6th event after the switch onwards
    online = np.asarray(runs["online"].extra["hits"])[after].mean()
    static = np.asarray(runs["static"].extra["hits"])[after].mean()
    assert after.sum() > 200
    assert online >= 0.10, f"online HR@10 for drifted users after 5 events: {online:.3f}"
    assert online >= 4 * max(static, 0.01), f"online {online:.3f} vs static {static:.3f}"
    assert static < 0.05, "the static model keeps recommending the old taste"


def test_online_beats_static_overall(drift_runs):
    runs, _, _ = drift_runs
    assert runs["online"].hr > runs["static"].hr
