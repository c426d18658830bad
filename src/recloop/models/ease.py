"""EASE: a linear item-to-item model with a closed-form fit (Steck 2019).

A user's score for item ``j`` is ``sum_{i in history} B[i, j]``: ``B`` is the ridge
regression of each item's column of the user-item matrix on every other item's column,
with its diagonal held at zero (an item may not explain itself), solved in closed form::

    P = (X^T X + reg * I)^-1,    B = -P / diag(P),    diag(B) = 0

It reads the set of everything the user had, with weights of any sign, so it catches
item-to-item relations that a low-rank model blurs; it needs no user rows, so a user the
fit never saw is scored from their first event. ``hybrid`` adds it beside ``sasrec`` and
``mf``.

Cost: ``B`` is dense over the ``max_items`` most frequent items (the rest score 0 and
teach nothing), so the fit is O(max_items^3) and the table O(max_items^2); the default of
4,000 items is 64 MB of float32. A request adds one row of ``B`` per history item, over
the last ``history_len`` items (and again, times ``recent_weight``, over the last
``recent_len``); per user those sums are kept between requests and extended by the new
items only (``_Sums``), so a request costs a few rows per new event.

Online, the item-item counts ``X^T X`` take every new positive event (with the items its
user had before), and every ``refresh_every`` events ``B`` is solved again from them, in
the learner's worker thread.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from recloop.errors import ConfigError, NotFittedError
from recloop.models.base import (
    FitOptions,
    OnlineBatch,
    Prefixes,
    RecModel,
    TrainData,
    check_positive_ints,
)
from recloop.models.configs import EASEConfig, build_config
from recloop.models.registry import register

#: users whose running sums are kept between requests (least recently used go first)
SUM_USERS = 4096


def solve_ease(gram: np.ndarray, reg: float) -> np.ndarray:
    """``B`` from the item-item counts ``gram`` (k, k): float32, zero diagonal.

    >>> solve_ease(np.array([[2.0, 1.0], [1.0, 2.0]]), 1.0).round(3).tolist()
    [[0.0, 0.333], [0.333, 0.0]]
    """
    p = np.linalg.inv(gram.astype(np.float64) + reg * np.eye(len(gram)))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


class _Sums:
    """Per user, the sum of ``B``'s rows over their last ``length`` modelled items, kept
    between requests: a longer history of the same user adds only its new items' rows
    (and takes off those that fell out of the last ``length``). Least recently used
    users are dropped past ``SUM_USERS``; a new ``B`` empties it."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._rows: OrderedDict[int, tuple[int, np.ndarray, np.ndarray]] = (
            OrderedDict()
        )  # length, items summed, sum
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def row(self, b: np.ndarray, row_of: np.ndarray, user: int, history: np.ndarray) -> np.ndarray:
        """(k,) the sum for ``history`` (int64 item indices, oldest first), a fresh array.

        The kept sum is extended only when ``history`` continues the one summed last time
        for this user (the same items in its window); any other history is summed afresh."""
        n, m = len(history), self.length
        with self._lock:
            kept = self._rows.get(user) if user >= 0 else None
        if (
            kept is not None
            and 0 <= n - kept[0] <= m
            and np.array_equal(history[max(0, kept[0] - m) : kept[0]], kept[1])
        ):
            known, out = kept[0], kept[2].copy()
            if n > known:
                out += self._sum(b, row_of, history[known:])
            if n > m:  # items that left the last `length`
                out -= self._sum(b, row_of, history[max(0, known - m) : n - m])
        else:
            out = self._sum(b, row_of, history[-m:]).copy()  # may be a view of B
        if user >= 0:
            with self._lock:
                self._rows[user] = (n, history[-m:].copy(), out.copy())
                self._rows.move_to_end(user)
                while len(self._rows) > SUM_USERS:
                    self._rows.popitem(last=False)
        return out

    @staticmethod
    def _sum(b: np.ndarray, row_of: np.ndarray, items: np.ndarray) -> np.ndarray:
        if len(items) == 1:  # the usual step between two requests: one new item
            i = int(items[0])
            row = int(row_of[i]) if i < len(row_of) else -1
            return b[row] if row >= 0 else np.zeros(b.shape[1], np.float32)
        rows = row_of[items[items < len(row_of)]]
        rows = rows[rows >= 0]
        out: np.ndarray = b[rows].sum(0) if len(rows) else np.zeros(b.shape[1], np.float32)
        return out.astype(np.float32, copy=False)


@register
class EASE(RecModel):
    """Closed-form item-to-item regression over the user's whole history.

    Parameters
    ----------
    reg
        Ridge penalty (lambda) on ``B``; larger is smoother.
    max_items
        Items modelled: the most frequent in the fit (the others score 0).
    history_len
        The user's most recent items read at request time.
    recent_len, recent_weight
        The last ``recent_len`` of them count ``1 + recent_weight`` times (the user's
        current interest next to their long-run one); 0 weighs every item alike.
    refresh_every
        Online: solve ``B`` again from the counts after this many new positive events
        (0: keep the fitted ``B`` and count nothing).
    """

    name = "ease"
    uses_history = True
    holds_out_validation = False  # a closed form: nothing to stop early
    learns_from_replay = False  # counts new events only

    def __init__(self, seed: int = 0, config: EASEConfig | None = None, **overrides: Any) -> None:
        super().__init__(seed)
        self.config = c = build_config("ease", EASEConfig, config, overrides)
        reg, max_items, history_len, recent_len, recent_weight, refresh_every = (
            c.reg,
            c.max_items,
            c.history_len,
            c.recent_len,
            c.recent_weight,
            c.refresh_every,
        )
        check_positive_ints(max_items=max_items, history_len=history_len, recent_len=recent_len)
        for key, value in (("reg", reg), ("recent_weight", recent_weight)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and (value > 0 if key == "reg" else value >= 0))
            ):
                raise ConfigError(
                    f"{key} must be a {'positive number' if key == 'reg' else 'number >= 0'}, got {value!r}"
                )
        if (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 0
        ):
            raise ConfigError(f"refresh_every must be an integer >= 0, got {refresh_every!r}")
        self.reg, self.max_items, self.history_len = float(reg), int(max_items), int(history_len)
        self.recent_len, self.recent_weight = int(recent_len), float(recent_weight)
        self.refresh_every = refresh_every
        self.b_: np.ndarray | None = None
        self.sums, self.recent_sums = _Sums(self.history_len), _Sums(self.recent_len)

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        # a closed form has nothing to stop early on: items held out for that count too
        held = {int(u): int(i) for u, i in zip(data.valid_user_idx, data.valid_item_idx)}
        counts = np.bincount(
            np.concatenate([data.item_idx[data.positives], list(held.values())]).astype(np.int64),
            minlength=data.n_items,
        )[: data.n_items]
        k = min(self.max_items, int((counts > 0).sum()))
        head = np.sort(np.argsort(-counts, kind="stable")[:k])
        self.row_of_ = np.full(data.n_items, -1, np.int64)
        self.row_of_[head] = np.arange(k)
        self.head_ = head  # B's rows and columns, in item order
        self.head_is_prefix_ = bool(
            k == 0 or head[-1] == k - 1
        )  # every item up to the last modelled one
        self.gram_ = np.zeros((k, k), np.float64)
        for u, seq in enumerate(data.sequences):  # X^T X, a user at a time (X is never built)
            if u in held:
                seq = np.append(seq, held[u])
            rows = np.unique(self.row_of_[seq[seq < data.n_items]])
            rows = rows[rows >= 0]
            self.gram_[np.ix_(rows, rows)] += 1.0
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self._solve()
        return {"items_modelled": k, "reg": self.reg}

    def _solve(self) -> None:
        self.b_ = solve_ease(self.gram_, self.reg)
        self.sums.clear()
        self.recent_sums.clear()
        self.events_since_solve_ = 0

    # ------------------------------------------------------------------ scoring
    def _b(self) -> np.ndarray:
        if self.b_ is None:
            raise NotFittedError("ease is not fitted")
        return self.b_

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.fromiter((len(h) > 0 for h in histories), bool, len(histories))

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(batch, n_items): each user's sum of ``B``'s rows over their recent items, 0 for
        items outside the modelled ones."""
        b = self._b()
        out = np.zeros((len(histories), self.n_items_), np.float32)
        for r, (u, h) in enumerate(zip(np.asarray(user_idx).tolist(), histories)):
            if len(h):
                h = np.asarray(h, np.int64)
                row = self.sums.row(b, self.row_of_, int(u), h)
                if self.recent_weight:
                    row += np.float32(self.recent_weight) * self.recent_sums.row(
                        b, self.row_of_, int(u), h
                    )
                if self.head_is_prefix_:
                    out[r, : len(row)] = row
                else:
                    out[r, self.head_] = row
        return out

    # ------------------------------------------------------------------ online
    def grow(self, n_users: int, n_items: int) -> None:
        """New items are not modelled (they score 0) until a refit."""
        super().grow(n_users, n_items)
        if self.b_ is not None and n_items > len(self.row_of_):
            self.row_of_ = np.concatenate(
                [self.row_of_, np.full(n_items - len(self.row_of_), -1, np.int64)]
            )

    @property
    def updates_online(self) -> bool:
        """Whether ``learn`` solves ``B`` again (``refresh_every`` > 0): counting alone
        changes no score."""
        return self.refresh_every > 0

    def learn(self, batch: OnlineBatch) -> float:
        """Count each new positive event against the items its user had before, and solve
        ``B`` again every ``refresh_every`` such events; returns 0 (no loss: a closed form)."""
        if self.b_ is None or not self.refresh_every:
            return 0.0
        n = len(batch.item_idx) if batch.n_fresh is None else batch.n_fresh
        hists = batch.histories
        whole = hists.whole if isinstance(hists, Prefixes) else hists.__getitem__
        row_of = self.row_of_
        for r in range(n):
            item = int(batch.item_idx[r])
            if batch.label[r] <= 0.5 or item >= len(row_of) or row_of[item] < 0:
                continue
            h = np.asarray(whole(r), np.int64)
            before = np.unique(row_of[h[h < len(row_of)]])
            i = row_of[item]
            if i in before:  # a repeat: the user's set does not change
                continue
            before = before[before >= 0]
            self.gram_[i, before] += 1.0
            self.gram_[before, i] += 1.0
            self.gram_[i, i] += 1.0
            self.events_since_solve_ += 1
        if self.refresh_every and self.events_since_solve_ >= self.refresh_every:
            self._solve()
        return 0.0

    # ------------------------------------------------------------------ persistence

    def get_state(self) -> dict[str, Any]:
        return {
            "b": self._b().copy(),
            "gram": self.gram_.copy(),
            "row_of": self.row_of_.copy(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "events_since_solve": self.events_since_solve_,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.b_ = np.asarray(state["b"], np.float32)
        self.gram_ = np.asarray(state["gram"], np.float64)
        self.row_of_ = np.asarray(state["row_of"], np.int64)
        self.head_ = np.flatnonzero(self.row_of_ >= 0)
        self.head_is_prefix_ = bool(len(self.head_) == 0 or self.head_[-1] == len(self.head_) - 1)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.events_since_solve_ = int(state.get("events_since_solve", 0))
        self.sums.clear()
        self.recent_sums.clear()
