"""Prequential (test-then-train) replay of a time-ordered event log.

History = the first ``history_fraction`` of events (by time): a batch ``fit``. Then, for
every later event in order: recommend top-``k`` for its user (items that user saw before
excluded), record hit and NDCG, then — depending on the mode — learn from it:

- ``static``: never learns (the fitted model and its history only);
- ``online``: ``update`` after every event;
- ``retrain:N``: a full refit on everything seen so far every ``N`` events.

Works on anything with the ``Recommender`` surface (``fit``, ``recommend``, ``update``),
built by a factory, so this module imports nothing above ``evaluation``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    """Streaming metrics of one mode."""

    mode: str
    model: str
    n_events: int
    hr: float
    ndcg: float
    windows: list[dict[str, float]]
    share_new_users: float
    share_new_items: float
    events_per_second: float
    recommend_ms_p50: float
    update_ms_p50: float
    update_ms_p99: float
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def parse_mode(mode: str) -> tuple[str, int]:
    """'static' | 'online' | 'retrain:N' -> (kind, N)."""
    if mode in ("static", "online"):
        return mode, 0
    if mode.startswith("retrain:"):
        try:
            n = int(mode.split(":", 1)[1])
        except ValueError:
            n = 0
        if n > 0:
            return "retrain", n
    raise ValueError(f"mode must be 'static', 'online' or 'retrain:N' with N > 0, got {mode!r}")


def split_history(
    events: pd.DataFrame, history_fraction: float = 0.8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sort by time (stably) and cut into history and the stream to replay."""
    if not 0 < history_fraction < 1:
        raise ValueError(f"history_fraction must be in (0, 1), got {history_fraction}")
    df = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    cut = int(len(df) * history_fraction)
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def replay(
    make: Callable[[], Any],
    events: pd.DataFrame,
    mode: str = "online",
    history_fraction: float = 0.8,
    k: int = 10,
    window: int = 1000,
    max_events: int | None = None,
    model_name: str = "",
    show_progress: bool = False,
    keep_hits: bool = False,
) -> ReplayResult:
    """Run one test-then-train replay of ``events`` (columns of ``recloop.data.COLUMNS``).

    ``make()`` returns an unfitted recommender; it is fitted on the history here.
    ``keep_hits`` keeps the per-event hits in ``extra["hits"]`` (for drift analyses).
    """
    kind, every = parse_mode(mode)
    history, stream = split_history(events, history_fraction)
    if max_events is not None:
        stream = stream.iloc[:max_events]
    t0 = time.perf_counter()
    rec = make().fit(history)
    fit_seconds = time.perf_counter() - t0
    known_users = set(history["user_id"].astype(str))
    known_items = set(history["item_id"].astype(str))
    stream_seen: dict[str, set[str]] = {}
    hits = np.zeros(len(stream))
    gains = np.zeros(len(stream))
    rec_ms = np.zeros(len(stream))
    upd_ms: list[float] = []
    new_u = new_i = 0
    since_refit = 0
    seen_rows: list[pd.DataFrame] = [history]
    buffer: list[dict[str, Any]] = []
    cols = {c: stream[c].to_numpy() for c in stream.columns}
    start = time.perf_counter()
    for n in tqdm(
        range(len(stream)),
        desc=f"replay {mode}",
        disable=not show_progress,
        unit="ev",
        mininterval=1,
    ):
        uid, iid = str(cols["user_id"][n]), str(cols["item_id"][n])
        new_u += uid not in known_users
        new_i += iid not in known_items
        s0 = time.perf_counter()
        user_seen = stream_seen.get(uid, ()) if kind != "online" else ()
        top = rec.recommend(uid, k=min(1000, k + len(user_seen)))
        if user_seen:
            top = [x for x in top if x not in user_seen]
        top = top[:k]
        rec_ms[n] = (time.perf_counter() - s0) * 1000
        if iid in top:
            r = top.index(iid)
            hits[n], gains[n] = 1.0, 1.0 / math.log2(r + 2)
        event = {
            "user_id": uid,
            "item_id": iid,
            "timestamp": float(cols["timestamp"][n]),
            "type": str(cols["type"][n]) if "type" in cols else "click",
            "value": float(cols["value"][n]) if "value" in cols else 1.0,
        }
        if kind == "online":
            s1 = time.perf_counter()
            rec.update(event)
            upd_ms.append((time.perf_counter() - s1) * 1000)
        else:
            stream_seen.setdefault(uid, set()).add(iid)
            if kind == "retrain":
                buffer.append(event)
                since_refit += 1
                if since_refit >= every:
                    seen_rows.append(pd.DataFrame(buffer))
                    buffer, since_refit = [], 0
                    rec = make().fit(pd.concat(seen_rows, ignore_index=True))
                    stream_seen.clear()  # the refit model knows these as seen now
    elapsed = time.perf_counter() - start
    if kind == "online" and hasattr(rec, "flush"):
        rec.flush()
    n_ev = len(stream)
    wins = [
        {
            "start": s,
            "hr": float(hits[s : s + window].mean()),
            "ndcg": float(gains[s : s + window].mean()),
        }
        for s in range(0, n_ev, window)
    ]
    upd = np.asarray(upd_ms) if upd_ms else np.zeros(1)
    return ReplayResult(
        mode=mode,
        model=model_name,
        n_events=n_ev,
        hr=float(hits.mean()) if n_ev else 0.0,
        ndcg=float(gains.mean()) if n_ev else 0.0,
        windows=wins,
        share_new_users=new_u / max(n_ev, 1),
        share_new_items=new_i / max(n_ev, 1),
        events_per_second=n_ev / elapsed if elapsed > 0 else 0.0,
        recommend_ms_p50=float(np.median(rec_ms)) if n_ev else 0.0,
        update_ms_p50=float(np.percentile(upd, 50)),
        update_ms_p99=float(np.percentile(upd, 99)),
        fit_seconds=fit_seconds,
        extra={"hits": hits.tolist()} if keep_hits else {},
    )


def plot_windows(results: list[ReplayResult], path: str, metric: str = "hr") -> None:
    """A PNG of the per-window metric, one line per mode/model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    models = list(dict.fromkeys(r.model for r in results))
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    for r in results:
        xs = [w["start"] for w in r.windows]
        # one colour per model, a line style per mode: static dashed, online solid
        style = "--" if r.mode == "static" else ":" if r.mode.startswith("retrain") else "-"
        ax.plot(
            xs,
            [w[metric] for w in r.windows],
            style,
            color=colours(models.index(r.model) % colours.N),
            label=f"{r.model} {r.mode} ({metric}@10 {getattr(r, metric):.3f})",
        )
    ax.set_xlabel("replayed events")
    ax.set_ylabel(f"{metric.upper()}@10 per window")
    ax.set_title("test-then-train replay")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
