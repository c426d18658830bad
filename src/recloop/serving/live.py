"""Live figures for the dashboard and ``/metrics``: events per second and the online hit rate.

The online hit rate answers "do users act on what they are shown?": the server keeps the
top-10 it last served each user (``GET /recommend`` and the dashboard's user view), for at
most ``served_capacity`` users (least recently served dropped first); of the last
``hit_window`` positive events by a user who had been served a list, the hit rate is the
share whose item was in that list. Negative feedback (``skip``, ``dislike``) and events of
users never served are not counted.

Every method is called on the event loop; a lock still guards the state, so calls from a
worker thread stay safe.

Examples
--------
>>> live = LiveStats(clock=lambda: 100.0)
>>> live.served("u1", ["a", "b"])
>>> live.record_events(
...     [{"user_id": "u1", "item_id": "a"}, {"user_id": "u1", "item_id": "z", "type": "view"},
...      {"user_id": "u1", "item_id": "b", "type": "skip"}, {"user_id": "u2", "item_id": "a"}],
...     FeedbackMapping(),
... )
>>> live.hit_rate(), live.hit_window_events()
(0.5, 2)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from recloop.events import FeedbackMapping, parse_id

#: items of a served list that count for the hit rate
SERVED_TOP = 10


class LiveStats:
    """What the dashboard's live panel shows, kept by the serving layer.

    Parameters
    ----------
    served_capacity
        How many users' last served top-10 are kept.
    hit_window
        How many recent counted events the hit rate is computed over.
    rate_seconds
        The window of the events-per-second figure.
    series_seconds
        How far back the sampled series for the chart goes (one sample a second at most).
    clock
        Seconds, monotonic (``time.monotonic``); a test passes its own.
    """

    def __init__(
        self,
        served_capacity: int = 100_000,
        hit_window: int = 1000,
        rate_seconds: int = 10,
        series_seconds: int = 600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.served_capacity = served_capacity
        self.rate_seconds = rate_seconds
        self.clock = clock
        self.started = clock()
        self.events_total = 0
        self._lock = threading.Lock()
        self._served: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._hits: deque[bool] = deque(maxlen=hit_window)
        self._buckets: deque[list[int]] = deque()  # [second, events] for the last rate_seconds
        self._series: deque[dict[str, Any]] = deque(maxlen=series_seconds)

    def served(self, user_id: str, item_ids: Sequence[str]) -> None:
        """Remember the top-10 of the list just served to ``user_id`` (a parsed id)."""
        top = frozenset(item_ids[:SERVED_TOP])
        with self._lock:
            served = self._served
            served[user_id] = top
            served.move_to_end(user_id)
            while len(served) > self.served_capacity:
                served.popitem(last=False)

    def count(self, n: int) -> None:
        """Count ``n`` events applied now (for events per second)."""
        sec = int(self.clock())
        with self._lock:
            self.events_total += n
            buckets = self._buckets
            if buckets and buckets[-1][0] == sec:
                buckets[-1][1] += n
            else:
                buckets.append([sec, n])
            while buckets and buckets[0][0] <= sec - self.rate_seconds:
                buckets.popleft()

    def watching(self) -> bool:
        """Whether any user has a served list (if not, events need no hit check)."""
        return bool(self._served)

    def record_events(self, events: Sequence[Any], feedback: FeedbackMapping) -> None:
        """Count hits among event objects that ``Recommender.update`` has accepted (so every
        id and type is valid); positive as ``FeedbackMapping.is_positive``."""
        positive: dict[Any, bool] = {}
        with self._lock:
            served, hits = self._served, self._hits
            for ev in events:
                u = ev["user_id"]
                top = served.get(u if type(u) is str else _id(u, "user_id"))
                if top is None:
                    continue
                kind = ev.get("type")
                if kind is None:
                    kind = ev.get("event", "click")
                pos = positive.get(kind)
                if pos is None:
                    sig = feedback.signals.get(kind)
                    pos = positive[kind] = sig is not None and (sig.label > 0.5 or kind == "rating")
                if pos:
                    i = ev["item_id"]
                    hits.append((i if type(i) is str else _id(i, "item_id")) in top)

    def hit_rate(self) -> float | None:
        """Share of the recent counted events that were hits; ``None`` before any."""
        with self._lock:
            return sum(self._hits) / len(self._hits) if self._hits else None

    def hit_window_events(self) -> int:
        """How many events the hit rate is computed over now."""
        return len(self._hits)

    def events_per_second(self) -> float:
        """Events applied per second over the last ``rate_seconds`` (or since start)."""
        now = self.clock()
        with self._lock:
            recent = sum(n for sec, n in self._buckets if sec > now - self.rate_seconds)
        span = min(float(self.rate_seconds), max(now - self.started, 1.0))
        return recent / span

    def sample(self, point: dict[str, Any]) -> list[dict[str, Any]]:
        """Add ``point`` to the series unless one was added this second; the series, oldest
        first. ``point["t"]`` is its time in epoch seconds."""
        with self._lock:
            series = self._series
            if not series or int(series[-1]["t"]) != int(point["t"]):
                series.append(point)
            return list(series)


def _id(value: Any, field: str) -> str:
    return str(value) if type(value) is int else parse_id(value, field)
