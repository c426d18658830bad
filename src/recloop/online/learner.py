"""``OnlineLearner``: micro-batched, replay-mixed parameter updates on a live model.

The engine applies an event's *state* (vocabularies, the user's history, seen items)
at once, before ``update`` returns; this class owns the *parameter* step. Events queue
up and a background worker learns them in micro-batches of at most ``max_batch`` events,
at the latest half of ``max_delay_ms`` after the oldest arrived, so the caller of
``update`` does not wait for parameter steps; each step mixing in ``replay_ratio`` earlier interactions from a reservoir against
forgetting.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recloop.models.base import OnlineBatch, Prefixes, RecModel

log = logging.getLogger(__name__)
_LIVE: weakref.WeakSet[OnlineLearner] = weakref.WeakSet()
#: a history source: a user's item sequence (list or array) that only grows at its end
Hist = Sequence[int] | np.ndarray


def _column(chunks: list[Any], k: int, dtype: type) -> np.ndarray:
    """Column ``k`` of every queued chunk as one array."""
    if len(chunks) == 1:
        return np.asarray(chunks[0][k], dtype)
    return np.concatenate([np.asarray(c[k], dtype) for c in chunks])


@atexit.register
def _stop_workers() -> None:
    """Stop every worker before the interpreter tears torch down under it."""
    for learner in list(_LIVE):
        learner._stop.set()
        learner._wake.set()
        if learner._thread is not None:
            learner._thread.join(timeout=2.0)


@dataclass(frozen=True)
class OnlineConfig:
    """Online learning policy.

    Attributes
    ----------
    enabled : learn parameters online (state updates happen regardless)
    max_batch : events per parameter step at most
    max_delay_ms : freshness budget: no event waits longer than this for its step
    replay_ratio : earlier interactions mixed into a step per new event
    reservoir_size : how many earlier interactions the replay reservoir keeps
    history_len : items of history kept with each reservoir entry
    backpressure : when this many full batches wait, ``add`` steps itself (bounded queue)
    background : step in a worker thread (default); ``False`` steps in the caller at every
        ``max_batch`` events — slower per call but reproducible (replays, tests)
    """

    enabled: bool = True
    max_batch: int = 64
    max_delay_ms: float = 50.0
    replay_ratio: float = 1.0
    reservoir_size: int = 20_000
    history_len: int = 50
    backpressure: int = 4
    background: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {self.max_delay_ms}")
        if self.replay_ratio < 0:
            raise ValueError(f"replay_ratio must be >= 0, got {self.replay_ratio}")


class OnlineLearner:
    """Queue events for a model and learn from them in bounded-delay micro-batches.

    ``lock`` is the engine's model lock: every parameter step holds it, so a reader
    that holds it too (scoring) never sees a half-applied step. ``sizes()`` gives the
    current numbers of users and items; tables grow to them before each step.
    """

    def __init__(
        self,
        model: RecModel,
        config: OnlineConfig,
        lock: threading.RLock,
        sizes: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.model = model
        self.sizes = sizes
        self.config = config
        self.lock = lock
        self._rng = np.random.default_rng(config.seed)
        # queued events in chunks (one per add / add_many): columns (users, items, labels,
        # weights, seqs, ends); histories are read at step time as ``Prefixes``
        self._queue: list[
            tuple[
                Sequence[int],
                Sequence[int],
                Sequence[float],
                Sequence[float],
                Sequence[Hist],
                Sequence[int],
            ]
        ] = []
        self._pending = 0
        self._qlock = threading.Lock()  # add vs the step's swap of the queue
        self._oldest = 0.0
        self._reservoir: list[tuple[int, int, float, float, Hist, int]] = []
        self._seen_total = 0
        self.steps = 0
        self.step_ms: list[float] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ intake
    def add(
        self, user_idx: int, item_idx: int, label: float, weight: float, history: np.ndarray
    ) -> None:
        """Queue one event (``history``: the user's items *before* it); then call ``added``.

        The caller serialises calls.
        """
        if not self.config.enabled:
            return
        hist = history[-self.config.history_len :]
        self.add_many([user_idx], [item_idx], [label], [weight], [hist], [len(hist)])

    def add_many(
        self,
        users: Sequence[int],
        items: Sequence[int],
        labels: Sequence[float],
        weights: Sequence[float],
        seqs: Sequence[Hist],
        ends: Sequence[int],
    ) -> None:
        """Queue a batch of events, in order; then call ``added`` once.

        Event ``r``'s history (the user's items before it) is ``seqs[r][:ends[r]]``, read
        at step time: ``seqs[r]`` must only grow at its end from now on (the engine's
        per-user sequences do), so what is read then is what it held at ``ends[r]``.
        The caller serialises calls.
        """
        n = len(users)
        if not self.config.enabled or n == 0:
            return
        if not (len(items) == len(labels) == len(weights) == len(seqs) == len(ends) == n):
            raise ValueError("add_many: every column must have one entry per event")
        with self._qlock:
            if not self._pending:
                self._oldest = time.perf_counter()
            self._queue.append((users, items, labels, weights, seqs, ends))
            self._pending += n
        self._remember(users, items, labels, weights, seqs, ends)

    def added(self) -> None:
        """Apply the stepping policy once after one or many ``add`` calls (one ``update``).

        Checking once per call, not per event, lets a batch of events become one larger
        step, which costs far less than many small ones.
        """
        n = self._pending
        if not n:
            return
        if not self.config.background:
            if n >= self.config.max_batch:
                self.flush()
        elif n >= self.config.max_batch * self.config.backpressure:
            self.flush()  # the worker is behind: the caller pays, so the queue stays bounded
        else:
            self._ensure_thread()
            if n == 1 or n >= self.config.max_batch:
                self._wake.set()

    def seed_reservoir(
        self, users: np.ndarray, items: np.ndarray, histories: Callable[[int, int], Hist]
    ) -> None:
        """Fill the reservoir from the fitted history (a uniform sample of it).

        ``histories(user, row)`` gives the user's items before that row (an array, or a
        list that is not changed afterwards).
        """
        n = len(users)
        take: list[int] = (
            self._rng.choice(n, size=min(n, self.config.reservoir_size), replace=False).tolist()
            if n
            else []
        )
        for j in take:
            h = histories(int(users[j]), int(j))
            self._reservoir.append((int(users[j]), int(items[j]), 1.0, 1.0, h, len(h)))
        self._seen_total = n

    def _remember(
        self,
        users: Sequence[int],
        items: Sequence[int],
        labels: Sequence[float],
        weights: Sequence[float],
        seqs: Sequence[Hist],
        ends: Sequence[int],
    ) -> None:
        """Reservoir sampling (algorithm R) of the events, in order."""
        n = len(users)
        size = self.config.reservoir_size
        res = self._reservoir
        fill = min(n, max(0, size - len(res)))
        if fill:
            users, items = (c.tolist() if isinstance(c, np.ndarray) else c for c in (users, items))
            labels, weights = (
                c.tolist() if isinstance(c, np.ndarray) else c for c in (labels, weights)
            )
            res.extend(
                zip(
                    users[:fill],
                    items[:fill],
                    labels[:fill],
                    weights[:fill],
                    seqs[:fill],
                    ends[:fill],
                )
            )
        if fill < n:
            # event r is the t-th seen: it replaces a uniform slot j < t when j < size (one draw
            # per event, in order: the same draws whether the events come one by one or at once)
            first = self._seen_total + fill + 1
            if n - fill <= 8:
                slots = [
                    int(self._rng.integers(0, t)) for t in range(first, self._seen_total + n + 1)
                ]
            else:
                slots = self._rng.integers(0, np.arange(first, self._seen_total + n + 1)).tolist()
            for r, j in enumerate(slots, fill):
                if j < size:
                    res[j] = (
                        int(users[r]),
                        int(items[r]),
                        float(labels[r]),
                        float(weights[r]),
                        seqs[r],
                        int(ends[r]),
                    )
        self._seen_total += n

    def _overdue(self) -> bool:
        return (
            bool(self._pending)
            and (time.perf_counter() - self._oldest) * 1000 >= self.config.max_delay_ms
        )

    # ------------------------------------------------------------------ stepping
    def flush(self) -> int:
        """Learn from everything queued now; returns the number of new events learned."""
        with self.lock:
            with self._qlock:  # one atomic swap: add() may run meanwhile
                chunks, self._queue = self._queue, []
                n_fresh, self._pending = self._pending, 0
            if not n_fresh:
                return 0
            if self.sizes is not None:
                self.model.grow(*self.sizes())
            wants = getattr(self.model, "learns_from_replay", True)
            n_replay = round(n_fresh * self.config.replay_ratio) if wants else 0
            picked = (
                [
                    self._reservoir[j]
                    for j in self._rng.integers(0, len(self._reservoir), n_replay).tolist()
                ]
                if n_replay and self._reservoir
                else []
            )
            if picked:
                chunks.append(tuple(zip(*picked)))  # type: ignore[arg-type]
            seqs: list[Hist] = []
            ends: list[int] = []
            for c in chunks:
                seqs.extend(c[4])
                ends.extend(c[5])
            batch = OnlineBatch(
                user_idx=_column(chunks, 0, np.int64),
                item_idx=_column(chunks, 1, np.int64),
                label=_column(chunks, 2, np.float32),
                weight=_column(chunks, 3, np.float32),
                histories=Prefixes(seqs, ends, self.config.history_len),
                n_fresh=n_fresh,
            )
            t0 = time.perf_counter()
            self.model.learn(batch)
            self.step_ms.append((time.perf_counter() - t0) * 1000)
            if len(self.step_ms) > 10_000:
                del self.step_ms[:5_000]
            self.steps += 1
            return n_fresh

    def pending(self) -> int:
        return self._pending

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="recloop-online", daemon=True)
            self._thread.start()
            _LIVE.add(self)

    def _run(self) -> None:
        """Worker: step when a full batch waits or the oldest event reaches its deadline."""
        budget = self.config.max_delay_ms / 1000
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            while self._pending and not self._stop.is_set():
                due = self._oldest + budget * 0.5 - time.perf_counter()
                if self._pending >= self.config.max_batch or due <= 0:
                    try:
                        self.flush()
                    except Exception:  # keep serving; the next step retries with fresh events
                        log.exception("online step failed")
                else:
                    self._wake.wait(timeout=due)
                    self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self.flush()
