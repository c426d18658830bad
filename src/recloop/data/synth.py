"""A synthetic interaction log whose structure is known: for tests, demos and drift studies.

Users and items belong to latent taste clusters. Each event of a user picks an item of
the user's current cluster with probability ``in_cluster`` (by Zipf-like popularity
within the cluster), otherwise any item (by global popularity). Events come in sessions
(bursts by one user a minute or so apart); some users and items arrive during the log,
not at its start; and at ``drift_time`` a share of users switch to another cluster. The
ground truth (clusters before and after, arrivals, who drifted and when) is returned
beside the events and written next to them by ``write_synthetic``.

Examples
--------
>>> ds, truth = generate(SynthConfig(n_users=50, n_items=40, n_events=2_000, n_clusters=4, seed=1))
>>> len(ds.interactions), ds.interactions["timestamp"].is_monotonic_increasing
(2000, True)
>>> row = ds.interactions.iloc[0]
>>> 0 <= truth.cluster_of(row["user_id"], row["timestamp"]) < 4
True
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recloop.data.dataset import COLUMNS, Dataset
from recloop.data.preprocess import clean
from recloop.errors import DataError, InvalidInputError

log = logging.getLogger(__name__)

FILES = ("events.parquet", "items.parquet", "users.parquet", "truth.json")
FORMAT = "recloop-synthetic/1"


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Every random choice follows from ``seed``.

    Attributes
    ----------
    n_users, n_items, n_events, n_clusters : sizes
    in_cluster : share of a user's events drawn from their current cluster (the rest from
        the whole catalogue by popularity, so the own-cluster share is a little higher)
    zipf_a : popularity exponent: the r-th most popular item of a cluster weighs 1 / r**a
    activity_sigma : spread of users' activity (log-normal): a few users are very active
    new_user_share, new_item_share : shares that arrive during the log, not at its start
    drift_share : share of all users who switch cluster at ``drift_at``
    drift_at : when the switch happens, as a fraction of the time span
    session_mean : mean events per session (geometric lengths)
    gap_seconds : mean time between two events of a session (exponential)
    start : epoch seconds of the first session (default 2024-01-01 UTC)
    days : length of the log
    event_types : kinds of events and their shares (values are 1.0)
    """

    n_users: int = 1_000
    n_items: int = 500
    n_events: int = 100_000
    n_clusters: int = 10
    seed: int = 0
    in_cluster: float = 0.9
    zipf_a: float = 1.0
    activity_sigma: float = 0.8
    new_user_share: float = 0.2
    new_item_share: float = 0.1
    drift_share: float = 0.2
    drift_at: float = 0.5
    session_mean: float = 8.0
    gap_seconds: float = 60.0
    start: int = 1_704_067_200
    days: float = 60.0
    event_types: Mapping[str, float] = field(default_factory=lambda: {"click": 1.0})

    def __post_init__(self) -> None:
        def need(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise InvalidInputError(name, f"must be {rule}, got {getattr(self, name)!r}")

        def integer(name: str, lo: int) -> None:
            v = getattr(self, name)
            need(
                name,
                bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo),
                f"an integer >= {lo}",
            )

        integer("n_users", 1)
        integer("n_items", 1)
        integer("n_events", 0)
        integer("n_clusters", 1)
        integer("seed", 0)
        need("n_clusters", self.n_clusters <= self.n_items, f"at most n_items ({self.n_items})")
        for name in ("in_cluster", "new_user_share", "new_item_share", "drift_share", "drift_at"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 0 <= v <= 1, "a fraction in [0, 1]")
        need(
            "new_user_share",
            self.new_user_share < 1,
            "below 1 (someone must be there at the start)",
        )
        need(
            "drift_share", self.drift_share == 0 or self.n_clusters >= 2, "0 with a single cluster"
        )
        for name in ("zipf_a", "activity_sigma"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 0 <= v <= 10, "a number in [0, 10]")
        for name in ("session_mean", "days"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 1e-6 <= v <= 1e6, "a number in (0, 1e6]")
        need(
            "gap_seconds",
            isinstance(self.gap_seconds, (int, float)) and 0 <= self.gap_seconds <= 1e6,
            "a number in [0, 1e6]",
        )
        need(
            "start",
            isinstance(self.start, (int, np.integer)) and 0 <= self.start <= 4_000_000_000,
            "epoch seconds between 1970 and 2096",
        )
        types = dict(self.event_types)
        need(
            "event_types",
            bool(types)
            and all(isinstance(k, str) and k for k in types)
            and all(isinstance(v, (int, float)) and v >= 0 for v in types.values())
            and sum(types.values()) > 0,
            "a non-empty mapping of event type -> share >= 0",
        )


@dataclass
class GroundTruth:
    """The structure behind a synthetic log.

    ``user_cluster`` is each user's cluster before ``drift_time``, ``user_cluster_after``
    after it (equal for users who did not drift); ``drifted_users`` lists who switched.
    Arrivals are the first moment a user may act or an item may be picked (epoch seconds).
    """

    n_clusters: int
    user_cluster: dict[str, int]
    user_cluster_after: dict[str, int]
    item_cluster: dict[str, int]
    drift_time: int
    drifted_users: list[str]
    user_arrival: dict[str, int]
    item_arrival: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)

    def cluster_of(self, user_id: str, at: float) -> int:
        """The cluster whose items ``user_id`` mostly picks at time ``at``."""
        return (
            self.user_cluster_after[user_id]
            if at >= self.drift_time
            else self.user_cluster[user_id]
        )

    def items_of(self, cluster: int) -> list[str]:
        return [i for i, c in self.item_cluster.items() if c == cluster]

    def summary(self) -> dict[str, Any]:
        return {
            "n_clusters": self.n_clusters,
            "drift_time": self.drift_time,
            "drifted_users": len(self.drifted_users),
            "users": len(self.user_cluster),
            "items": len(self.item_cluster),
            "in_cluster": self.config.get("in_cluster"),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GroundTruth:
        if d.get("format") != FORMAT:
            raise DataError(f"ground truth format {d.get('format')!r} is not {FORMAT!r}")
        try:
            return cls(
                n_clusters=int(d["n_clusters"]),
                user_cluster={str(k): int(v) for k, v in d["user_cluster"].items()},
                user_cluster_after={str(k): int(v) for k, v in d["user_cluster_after"].items()},
                item_cluster={str(k): int(v) for k, v in d["item_cluster"].items()},
                drift_time=int(d["drift_time"]),
                drifted_users=[str(u) for u in d["drifted_users"]],
                user_arrival={str(k): int(v) for k, v in d["user_arrival"].items()},
                item_arrival={str(k): int(v) for k, v in d["item_arrival"].items()},
                config=dict(d.get("config", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"ground truth is incomplete or malformed: {exc!r}") from exc


def _zipf(n: int, a: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1, dtype=np.float64) ** a


def _pick_prefix(rng: np.random.Generator, cumw: np.ndarray, n_avail: np.ndarray) -> np.ndarray:
    """For each row, a position in ``0 .. n_avail-1`` drawn by the weights behind ``cumw``."""
    r = rng.random(len(n_avail)) * cumw[n_avail - 1]
    return np.asarray(
        np.minimum(np.searchsorted(cumw, r, side="right"), n_avail - 1), dtype=np.int64
    )


def generate(
    config: SynthConfig | None = None, *, show_progress: bool = False
) -> tuple[Dataset, GroundTruth]:
    """Generate a log (a ``Dataset`` sorted by time) and its ``GroundTruth``.

    Deterministic for a given ``config`` (its ``seed`` included); about a second for
    100,000 events.
    """
    cfg = config or SynthConfig()
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c, n_e = cfg.n_users, cfg.n_items, cfg.n_clusters, cfg.n_events
    t0 = float(cfg.start)
    span = cfg.days * 86_400.0
    drift_time = int(t0 + cfg.drift_at * span)
    bar = tqdm(
        total=4,
        desc="synthesising",
        disable=not show_progress,
        file=sys.stderr,
        leave=False,
        unit="step",
    )

    # items: clusters of (nearly) equal size, a popularity rank inside each, some arrive late
    item_cluster = rng.permutation(np.arange(n_i) % n_c)
    rank = np.empty(n_i, np.int64)
    for c in range(n_c):
        members = np.flatnonzero(item_cluster == c)
        rank[members] = rng.permutation(len(members))
    pop = _zipf(int(rank.max()) + 1, cfg.zipf_a)[rank]
    item_arrival = np.full(n_i, t0)
    late_pool = np.flatnonzero(rank > 0)  # a cluster's favourite is there from the start
    n_late = min(len(late_pool), int(round(cfg.new_item_share * n_i)))
    late = rng.choice(late_pool, size=n_late, replace=False)
    item_arrival[late] = t0 + rng.random(n_late) * span * 0.9

    # users: a cluster, an activity level, some arrive late; a share drifts at drift_time
    user_cluster = rng.integers(0, n_c, n_u)
    activity = rng.lognormal(0.0, cfg.activity_sigma, n_u)
    user_arrival = np.full(n_u, t0)
    n_new = min(n_u - 1, int(round(cfg.new_user_share * n_u)))
    new = rng.choice(n_u, size=n_new, replace=False)
    user_arrival[new] = t0 + rng.random(n_new) * span
    eligible = np.flatnonzero(user_arrival < drift_time)
    n_drift = min(len(eligible), int(round(cfg.drift_share * n_u)))
    drifted = (
        np.sort(rng.choice(eligible, size=n_drift, replace=False))
        if n_drift
        else np.zeros(0, np.int64)
    )
    cluster_after = user_cluster.copy()
    if n_drift:
        cluster_after[drifted] = (user_cluster[drifted] + rng.integers(1, n_c, n_drift)) % n_c
    bar.update(1)

    # sessions: geometric lengths, uniform starts; the user is drawn among those already there
    p = 1.0 / max(cfg.session_mean, 1.0)
    lengths = rng.geometric(p, size=max(1, int(math.ceil(n_e * p * 1.3)) + 8))
    while lengths.sum() < n_e:
        lengths = np.concatenate([lengths, rng.geometric(p, size=len(lengths))])
    ends = np.cumsum(lengths)
    n_s = int(np.searchsorted(ends, n_e)) + 1 if n_e else 0
    lengths = lengths[:n_s].copy()
    if n_s:
        lengths[-1] -= int(ends[n_s - 1] - n_e)
    starts = np.sort(t0 + rng.random(n_s) * span)
    by_arrival = np.argsort(user_arrival, kind="stable")
    cum_activity = np.cumsum(activity[by_arrival])
    n_there = np.searchsorted(user_arrival[by_arrival], starts, side="right")
    sess_user = by_arrival[_pick_prefix(rng, cum_activity, n_there)]
    bar.update(1)

    # events: times inside each session, then an item per event
    ev_sess = np.repeat(np.arange(n_s), lengths)
    gaps = rng.exponential(cfg.gap_seconds, n_e) if cfg.gap_seconds > 0 else np.zeros(n_e)
    csum = np.cumsum(gaps)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n_s else np.zeros(0, np.int64)
    offset = csum - (csum[first] - gaps[first])[ev_sess] if n_e else csum
    ev_time = np.floor(starts[ev_sess] + offset).astype(np.int64) if n_e else np.zeros(0, np.int64)
    ev_user = sess_user[ev_sess]
    ev_cluster = np.where(ev_time >= drift_time, cluster_after[ev_user], user_cluster[ev_user])
    own = rng.random(n_e) < cfg.in_cluster
    ev_item = np.empty(n_e, np.int64)
    groups = [(np.flatnonzero(item_cluster == c), own & (ev_cluster == c)) for c in range(n_c)]
    groups.append((np.arange(n_i), ~own))
    for members, mask in groups:
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        order = members[np.argsort(item_arrival[members], kind="stable")]
        n_avail = np.maximum(np.searchsorted(item_arrival[order], ev_time[rows], side="right"), 1)
        ev_item[rows] = order[_pick_prefix(rng, np.cumsum(pop[order]), n_avail)]
    bar.update(1)

    kinds = list(cfg.event_types)
    shares = np.asarray([cfg.event_types[k] for k in kinds], np.float64)
    ev_type = (
        np.asarray(kinds, dtype=object)[rng.choice(len(kinds), size=n_e, p=shares / shares.sum())]
        if len(kinds) > 1
        else np.full(n_e, kinds[0], dtype=object)
    )
    user_ids = np.asarray([f"u{u}" for u in range(n_u)], dtype=object)
    item_ids = np.asarray([f"i{i}" for i in range(n_i)], dtype=object)
    order = np.argsort(ev_time, kind="stable")
    inter = pd.DataFrame(
        {
            "user_id": pd.array(user_ids[ev_user[order]], dtype="str"),
            "item_id": pd.array(item_ids[ev_item[order]], dtype="str"),
            "timestamp": ev_time[order],
            "type": pd.array(ev_type[order], dtype="str"),
            "value": np.ones(n_e),
        },
        columns=list(COLUMNS),
    )
    items = pd.DataFrame(
        {
            "title": [f"Item {i} (cluster {c})" for i, c in enumerate(item_cluster)],
            "genres": [f"cluster-{c}" for c in item_cluster],
            "cluster": item_cluster,
            "arrival": item_arrival.astype(np.int64),
            "popularity": pop,
        },
        index=pd.Index(item_ids, name="item_id", dtype="str"),
    )
    is_drifted = np.zeros(n_u, bool)
    is_drifted[drifted] = True
    users = pd.DataFrame(
        {
            "cluster": user_cluster,
            "cluster_after": cluster_after,
            "drifted": is_drifted,
            "arrival": user_arrival.astype(np.int64),
            "activity": activity,
        },
        index=pd.Index(user_ids, name="user_id", dtype="str"),
    )
    truth = GroundTruth(
        n_clusters=n_c,
        user_cluster=dict(zip(user_ids.tolist(), user_cluster.tolist())),
        user_cluster_after=dict(zip(user_ids.tolist(), cluster_after.tolist())),
        item_cluster=dict(zip(item_ids.tolist(), item_cluster.tolist())),
        drift_time=drift_time,
        drifted_users=user_ids[drifted].tolist(),
        user_arrival=dict(zip(user_ids.tolist(), user_arrival.astype(np.int64).tolist())),
        item_arrival=dict(zip(item_ids.tolist(), item_arrival.astype(np.int64).tolist())),
        config={**asdict(cfg), "event_types": dict(cfg.event_types)},
    )
    bar.update(1)
    bar.close()
    ds = Dataset(
        inter,
        items,
        users,
        name=f"synthetic-{cfg.seed}",
        meta={"source": "synthetic", "truth": truth},
    )
    return ds, truth


def write_synthetic(
    folder: str | Path, ds: Dataset, truth: GroundTruth, *, overwrite: bool = False
) -> Path:
    """Write ``events.parquet``, ``items.parquet``, ``users.parquet`` and ``truth.json`` to ``folder``.

    A folder that holds anything else is refused; an earlier synthetic set in it is
    replaced only with ``overwrite``. Each file is written aside and moved into place.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} exists and is not a folder")
    if folder.is_dir():
        present = {p.name for p in folder.iterdir()}
        others = sorted(present - set(FILES))
        if others:
            raise DataError(
                f"{folder} is not empty (it holds {others[0]}); choose a new or empty folder"
            )
        if present and not overwrite:
            raise DataError(
                f"{folder} already holds a synthetic data set; pass overwrite (--force) to replace it"
            )
    folder.mkdir(parents=True, exist_ok=True)

    def put(name: str, write: Any) -> None:
        part = folder / f".{name}.part"
        write(part)
        os.replace(part, folder / name)

    put("events.parquet", lambda p: ds.interactions.to_parquet(p, index=False))
    for name, table in (("items.parquet", ds.items), ("users.parquet", ds.users)):
        if table is not None:
            put(name, table.to_parquet)
    put("truth.json", lambda p: p.write_text(json.dumps(truth.to_dict())))
    return folder


def load_synthetic(folder: str | Path) -> tuple[Dataset, GroundTruth]:
    """Read a folder written by ``write_synthetic`` (or ``recloop data synth``)."""
    folder = Path(folder)
    for name in ("events.parquet", "truth.json"):
        if not (folder / name).is_file():
            raise DataError(f"{folder} is not a synthetic data set: {name} is missing")
    try:
        truth = GroundTruth.from_dict(json.loads((folder / "truth.json").read_text()))
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / 'truth.json'} could not be read: {exc}") from exc
    try:
        raw = pd.read_parquet(folder / "events.parquet")
        items = (
            pd.read_parquet(folder / "items.parquet")
            if (folder / "items.parquet").is_file()
            else None
        )
        users = (
            pd.read_parquet(folder / "users.parquet")
            if (folder / "users.parquet").is_file()
            else None
        )
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(
            f"{folder} holds an unreadable parquet file: {' '.join(str(exc).split())}"
        ) from exc
    inter, report = clean(
        raw,
        timestamp_unit="s",
        drop_exact_duplicates=False,
        max_invalid_fraction=0.0,
        source=str(folder / "events.parquet"),
    )
    ds = Dataset(
        inter,
        items,
        users,
        name=folder.name,
        meta={"source": str(folder), "cleaning": report, "truth": truth},
    )
    return ds, truth
