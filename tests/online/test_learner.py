"""OnlineLearner: micro-batches, freshness budget, replay mixing, bounded queue."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from recloop.models.base import OnlineBatch
from recloop.models.popularity import Popularity
from recloop.online import OnlineConfig, OnlineLearner


class Recording(Popularity):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[OnlineBatch] = []
        self.grown: list[tuple[int, int]] = []

    def learn(self, batch: OnlineBatch) -> float:
        self.batches.append(batch)
        return 0.0

    def grow(self, n_users: int, n_items: int) -> None:
        self.grown.append((n_users, n_items))
        super().grow(n_users, n_items)


def make(**kw) -> tuple[Recording, OnlineLearner]:
    model = Recording()
    return model, OnlineLearner(model, OnlineConfig(**kw), threading.RLock(), sizes=lambda: (7, 9))


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_a_full_batch_is_learned_by_the_worker_with_replay_mixed_in():
    model, learner = make(max_batch=8, max_delay_ms=10_000, replay_ratio=1.0)
    for n in range(8):
        learner.add(n % 3, n, 1.0, 1.0, np.arange(n, dtype=np.int64))
        learner.added()
    assert wait_until(lambda: learner.pending() == 0 and model.batches)
    batch = model.batches[0]
    assert list(batch.item_idx[:8]) == list(range(8)), "new events come first, in order"
    assert len(batch.item_idx) == 16, "one replayed interaction per new event"
    assert set(batch.item_idx[8:]) <= set(range(8)), "replay draws from what was seen"
    assert model.grown and model.grown[-1] == (7, 9), "tables grow to the vocabulary before a step"


def test_a_lone_event_is_learned_within_the_freshness_budget():
    model, learner = make(max_batch=1000, max_delay_ms=20)
    learner.add(0, 1, 1.0, 1.0, np.zeros(0, np.int64))
    learner.added()
    assert learner.pending() == 1
    assert wait_until(lambda: learner.pending() == 0), "the worker flushes an idle queue"
    assert len(model.batches) == 1


def test_the_queue_stays_bounded_when_the_worker_is_behind():
    model, learner = make(max_batch=4, max_delay_ms=10_000, backpressure=2)
    with learner.lock:  # hold the model lock: the worker cannot step
        for n in range(7):
            learner.add(0, n, 1.0, 1.0, np.zeros(0, np.int64))
            learner.added()
        assert learner.pending() <= 8
    learner.close()
    assert learner.pending() == 0
    assert sum(int((b.item_idx[: len(b.item_idx) // 2] >= 0).sum()) for b in model.batches) >= 7


def test_disabled_learning_queues_nothing():
    model, learner = make(enabled=False)
    learner.add(0, 1, 1.0, 1.0, np.zeros(0, np.int64))
    assert learner.pending() == 0 and learner.flush() == 0 and not model.batches


def test_reservoir_is_bounded():
    model, learner = make(max_batch=10_000, max_delay_ms=60_000, reservoir_size=50)
    for n in range(500):
        learner.add(n % 5, n, 1.0, 1.0, np.zeros(0, np.int64))
        learner.added()
    assert len(learner._reservoir) == 50
    learner.close()


@pytest.mark.parametrize("kw", [{"max_batch": 0}, {"max_delay_ms": -1}, {"replay_ratio": -0.5}])
def test_invalid_config_is_refused(kw):
    with pytest.raises(ValueError):
        OnlineConfig(**kw)


def test_foreground_mode_steps_in_the_caller_at_each_full_batch():
    model, learner = make(max_batch=4, background=False, replay_ratio=0.0)
    for n in range(10):
        learner.add(0, n, 1.0, 1.0, np.zeros(0, np.int64))
        learner.added()
    assert [list(b.item_idx) for b in model.batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert learner.pending() == 2 and learner._thread is None
