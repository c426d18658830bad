"""``OnlineBias``: a per-item offset on a fitted model's scores, learned from the stream.

A model fitted on the log up to now ranks with the popularity of that log. On a live
stream tastes drift (new releases, a list the site promotes this week), and the fitted
item biases lag. Each new positive event is one softmax example: the model's scores for
that user just before the event, the items the user had already seen masked out, and the
item they chose. ``step`` takes plain SGD on that example's log-likelihood with respect
to an additive per-item term: ``offset += lr * (onehot(item) - p)``, summed over a
micro-batch. The chosen item rises by ``lr (1 - p_item)``; every other item falls by
``lr`` times its predicted probability, so the offsets of items the model over-predicts
sink and those of items people choose more than predicted rise.

It is dense over the catalogue but costs one (batch, n_items) softmax, and it needs the
full scores of the events' users. Those are usually the scores just served: a user is
shown recommendations, then reacts. So the owning model ``remember``s the rows it scores
for a request's few users, keyed by user and history length, and its online step
``recall``s them, computing only the rows it misses; on the replay that keeps recommend +
update at about 0.9 of its speed without the offset, against 0.8 when every row is scored
again (the step holds the model lock, which requests wait for).
Masking the seen items matters: without the mask, every event pushes down the items its
user already has, which the model was right to rank high, and on the MovieLens-100K
replay the offset then hurt (scratch replays in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from recloop.errors import ConfigError


def _check_rate(name: str, lr: object) -> float:
    """``lr`` as a float, or ``ConfigError`` naming ``name`` unless it is a finite number >= 0."""
    if (
        isinstance(lr, bool)
        or not isinstance(lr, (int, float))
        or not (math.isfinite(lr) and lr >= 0)
    ):
        raise ConfigError(f"{name} must be a finite number >= 0, got {lr!r}")
    return float(lr)


class OnlineBias:
    """A growable (n_items,) offset added to a model's scores and stepped online.

    >>> b = OnlineBias(lr=0.5, n_items=3)
    >>> loss = b.step(np.zeros((1, 3)), np.array([2]), [np.array([0])])
    >>> b.value.round(2).tolist()  # item 0 was seen: masked, untouched
    [0.0, -0.25, 0.25]
    """

    #: rows scored for at most this many users at once are remembered (requests, not evaluations)
    REMEMBER_ROWS = 4

    def __init__(self, lr: float, n_items: int = 0, cache_bytes: int = 16 << 20) -> None:
        self.lr = _check_rate("online_bias_lr", lr)
        self.value = np.zeros(n_items, np.float32)
        self.cache_bytes = cache_bytes
        self._served: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = (
            threading.Lock()
        )  # the owner's callers normally hold the model lock; this one is cheap

    def remember(self, user_idx: np.ndarray, lengths: Sequence[int], scores: np.ndarray) -> None:
        """Keep copies of these rows of scores *without* the offset, as served to each user with
        a history of ``lengths[r]`` items (oldest dropped past ``cache_bytes``).

        Only when learning and for a request's few rows.
        """
        if self.lr == 0 or len(user_idx) > self.REMEMBER_ROWS or not scores.size:
            return
        cap = max(1, self.cache_bytes // max(1, scores.shape[1] * 4))
        rows = {
            (int(u), int(n)): np.array(scores[r], np.float32)
            for r, (u, n) in enumerate(zip(np.asarray(user_idx).tolist(), lengths))
        }
        with self._lock:
            served = self._served
            for key, row in rows.items():
                served[key] = row
                served.move_to_end(key)
            while len(served) > cap:
                served.popitem(last=False)

    def recall(self, user: int, length: int, n_items: int) -> np.ndarray | None:
        """The row remembered for ``user`` with a history of ``length`` items, if it covers
        ``n_items`` items (none grown since); each row is recalled once."""
        with self._lock:
            row = self._served.pop((user, length), None)
        return row if row is not None and len(row) == n_items else None

    def forget(self) -> None:
        """Drop every remembered row (the model's parameters changed)."""
        with self._lock:
            self._served.clear()

    def grow(self, n_items: int) -> None:
        """New items start at 0: their fitted (or initial) bias alone."""
        if n_items > len(self.value):
            self.value = np.concatenate(
                [self.value, np.zeros(n_items - len(self.value), np.float32)]
            )

    def add_to(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` (batch, n) plus the offset of their first ``n`` items, in place."""
        n = min(scores.shape[1], len(self.value))
        scores[:, :n] += self.value[:n]
        return scores

    def step(self, scores: np.ndarray, items: np.ndarray, seen: Sequence[np.ndarray]) -> float:
        """One SGD step from a batch of positive events; returns their mean negative log-likelihood.

        ``scores``: (batch, n) the model's scores before each event, offset included;
        ``items``: (batch,) the chosen items; ``seen[r]``: the items row ``r``'s user had
        already seen (masked out of the softmax). A row whose item is among its seen items
        or outside the scores teaches nothing and is skipped.
        """
        if self.lr == 0 or not len(items):
            return 0.0
        q = np.array(scores, np.float32)
        n = q.shape[1]
        lens = np.fromiter(map(len, seen), np.int64, len(seen))
        if lens.sum():
            cols = np.concatenate(seen).astype(np.int64, copy=False)
            rows = np.repeat(np.arange(len(seen)), lens)
            inside = cols < n
            q[rows[inside], cols[inside]] = -np.inf
        items = np.asarray(items, np.int64)
        ok = (items < n) & (items < len(self.value))
        ok[ok] = np.isfinite(q[np.flatnonzero(ok), items[ok]])
        if not ok.any():
            return 0.0
        if not ok.all():
            q, items = q[ok], items[ok]
        q -= q.max(1, keepdims=True)
        p = np.exp(q)
        z = p.sum(1, dtype=np.float64)
        nll = float(np.mean(np.log(z) - q[np.arange(len(items)), items]))
        grad = -(p.T @ (1.0 / z)).astype(np.float32)  # sum of each row's softmax
        grad += np.bincount(items, minlength=n)[:n].astype(np.float32)
        value = self.value.copy()  # swapped in whole: a reader never sees half a step
        value[:n] += self.lr * grad
        self.value = value
        return nll
