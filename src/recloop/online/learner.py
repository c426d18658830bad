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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recloop.models.base import OnlineBatch, RecModel

log = logging.getLogger(__name__)
_LIVE: weakref.WeakSet[OnlineLearner] = weakref.WeakSet()


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

    def __init__(self, model: RecModel, config: OnlineConfig, lock: threading.RLock,
                 sizes: Callable[[], tuple[int, int]] | None = None) -> None:
        self.model = model
        self.sizes = sizes
        self.config = config
        self.lock = lock
        self._rng = np.random.default_rng(config.seed)
        self._queue: list[tuple[int, int, float, float, np.ndarray]] = []
        self._oldest = 0.0
        self._reservoir: list[tuple[int, int, float, float, np.ndarray]] = []
        self._seen_total = 0
        self.steps = 0
        self.step_ms: list[float] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ intake
    def add(self, user_idx: int, item_idx: int, label: float, weight: float, history: np.ndarray) -> None:
        """Queue one event (``history``: the user's items *before* it); then call ``added``.

        The caller serialises calls.
        """
        if not self.config.enabled:
            return
        if not self._queue:
            self._oldest = time.perf_counter()
        entry = (user_idx, item_idx, label, weight, history[-self.config.history_len:])
        self._queue.append(entry)
        self._remember(entry)

    def added(self) -> None:
        """Apply the stepping policy once after one or many ``add`` calls (one ``update``).

        Checking once per call, not per event, lets a batch of events become one larger
        step, which costs far less than many small ones.
        """
        n = len(self._queue)
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

    def seed_reservoir(self, users: np.ndarray, items: np.ndarray, histories: Callable[[int, int], np.ndarray]) -> None:
        """Fill the reservoir from the fitted history (a uniform sample of it)."""
        n = len(users)
        take = self._rng.choice(n, size=min(n, self.config.reservoir_size), replace=False) if n else []
        for j in take:
            self._reservoir.append((int(users[j]), int(items[j]), 1.0, 1.0, histories(int(users[j]), int(j))))
        self._seen_total = n

    def _remember(self, entry: tuple[int, int, float, float, np.ndarray]) -> None:
        self._seen_total += 1
        if len(self._reservoir) < self.config.reservoir_size:
            self._reservoir.append(entry)
        else:
            j = int(self._rng.integers(0, self._seen_total))
            if j < self.config.reservoir_size:
                self._reservoir[j] = entry

    def _overdue(self) -> bool:
        return bool(self._queue) and (time.perf_counter() - self._oldest) * 1000 >= self.config.max_delay_ms

    # ------------------------------------------------------------------ stepping
    def flush(self) -> int:
        """Learn from everything queued now; returns the number of new events learned."""
        with self.lock:
            fresh, self._queue = self._queue, []  # one atomic swap: add() may run meanwhile
            if not fresh:
                return 0
            if self.sizes is not None:
                self.model.grow(*self.sizes())
            n_replay = int(round(len(fresh) * self.config.replay_ratio))
            picked = [self._reservoir[j] for j in self._rng.integers(0, len(self._reservoir), n_replay)] if n_replay and self._reservoir else []
            entries = fresh + picked
            batch = OnlineBatch(
                user_idx=np.fromiter((e[0] for e in entries), np.int64, len(entries)),
                item_idx=np.fromiter((e[1] for e in entries), np.int64, len(entries)),
                label=np.fromiter((e[2] for e in entries), np.float32, len(entries)),
                weight=np.fromiter((e[3] for e in entries), np.float32, len(entries)),
                histories=[e[4] for e in entries],
            )
            t0 = time.perf_counter()
            self.model.learn(batch)
            self.step_ms.append((time.perf_counter() - t0) * 1000)
            if len(self.step_ms) > 10_000:
                del self.step_ms[:5_000]
            self.steps += 1
            return len(fresh)

    def pending(self) -> int:
        return len(self._queue)

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
            while self._queue and not self._stop.is_set():
                due = self._oldest + budget * 0.5 - time.perf_counter()
                if len(self._queue) >= self.config.max_batch or due <= 0:
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
