"""An online per-item offset on any model's scores: ``OnlineBias`` and ``WithOnlineBias``.

A model fitted on the log up to now ranks with the popularity of that log. On a live
stream tastes drift (new releases, a list the site promotes this week), and the fitted
item biases lag. Each new positive event is one softmax example: the model's scores for
that user just before the event, the items the user had already seen masked out, and the
item they chose. ``OnlineBias.step`` takes plain SGD on that example's log-likelihood with
respect to an additive per-item term: ``offset += lr * (onehot(item) - p)``, summed over a
micro-batch. The chosen item rises by ``lr (1 - p_item)``; every other item falls by
``lr`` times its predicted probability, so the offsets of items the model over-predicts
sink and those of items people choose more than predicted rise. Masking the seen items
matters: without the mask, every event pushes down the items its user already has, which
the model was right to rank high.

``WithOnlineBias(model, lr)`` wraps any ``RecModel``: its scores are the model's plus the
offset, and its ``learn`` steps the model, then the offset. The step needs the full scores
of the events' users just before each event. Those are usually the scores just served (a
user is shown recommendations, then reacts), so the engine hands the rows it scored for a
request to ``served``, and the step reuses them, scoring only the rows it misses: the step
holds the model lock, which requests wait for. ``Recommender(model=..., online_bias_lr=...)``
turns the wrapper on for any model (``registry.create``); ``hybrid`` has it by default.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from recloop.errors import ConfigError
from recloop.models.base import FitOptions, OnlineBatch, Prefixes, RecModel, TrainData

#: scores held at once by the offset's step (rows x items): 32 MB; the step costs O(items)
#: per event, so on a large catalogue it takes many smaller steps
STEP_FLOATS = 8_000_000


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

    def __init__(self, lr: float, n_items: int = 0) -> None:
        self.lr = _check_rate("online_bias_lr", lr)
        self.value = np.zeros(n_items, np.float32)

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


class WithOnlineBias(RecModel):
    """``model``'s scores plus an ``OnlineBias`` stepped on every new positive event.

    Everything else (fit, persistence, the parts of the contract the engine reads) passes
    through to ``model``; ``hyperparameters`` adds ``online_bias_lr`` and ``get_state`` the
    offset.

    Parameters
    ----------
    model
        Any fitted or unfitted ``RecModel``.
    lr
        The offset's learning rate, >= 0 (0: the wrapper only passes through).
    cache_bytes
        Bound on the served rows kept for the next step (oldest dropped first).
    """

    #: rows scored for at most this many users at once are kept (requests, not evaluations)
    SERVED_ROWS = 4

    def __init__(self, model: RecModel, lr: float, cache_bytes: int = 16 << 20) -> None:
        self.inner = model
        self.seed = model.seed
        self.bias = OnlineBias(lr, model.n_items_)
        self.cache_bytes = cache_bytes
        #: (user_idx, history length) -> (row served, offset it was served with)
        self._served: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()  # served() runs under the engine's model lock; cheap

    # --- what the engine reads, passed through ------------------------------------
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def uses_history(self) -> bool:  # type: ignore[override]
        return self.inner.uses_history

    @property
    def uses_times(self) -> bool:  # type: ignore[override]
        return self.inner.uses_times

    @property
    def holds_out_validation(self) -> bool:  # type: ignore[override]
        return self.inner.holds_out_validation

    @property
    def learns_from_replay(self) -> bool:  # type: ignore[override]
        """The offset learns from new events alone: replayed ones only for a model that steps."""
        return self.inner.updates_online and self.inner.learns_from_replay

    @property
    def updates_online(self) -> bool:
        return self.bias.lr > 0 or self.inner.updates_online

    @property
    def n_users_(self) -> int:  # type: ignore[override]
        return self.inner.n_users_

    @property
    def n_items_(self) -> int:  # type: ignore[override]
        return self.inner.n_items_

    def __getattr__(self, key: str) -> Any:
        """Attributes the engine or the serving layer look up on some models (``factors_``,
        ``net``, ``user_states``, ``predict_proba``) come from the wrapped model."""
        if key == "inner":  # not set yet (during unpickling): no recursion
            raise AttributeError(key)
        return getattr(self.inner, key)

    # --- fit and scoring -----------------------------------------------------------
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        report = self.inner.fit(data, options)
        self.bias = OnlineBias(self.bias.lr, data.n_items)
        self._forget()
        return report

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray], **kw: Any) -> np.ndarray:
        """The model's scores (``times=`` passed on when the model reads them) plus the offset."""
        return self.bias.add_to(self.inner.score(user_idx, histories, **kw))

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.inner.can_personalise(user_idx, histories)

    def item_vectors(self) -> np.ndarray | None:
        return self.inner.item_vectors()

    def item_bias(self) -> np.ndarray | None:
        """The model's item bias plus the offset (zeros for a model without one), so a
        dot-product model stays one: ``score == user_states @ item_vectors().T + item_bias()``."""
        get = getattr(self.inner, "item_bias", None)
        base = get() if get is not None else None
        if base is None:
            if self.inner.item_vectors() is None:
                return None
            base = np.zeros(self.inner.n_items_, np.float32)
        out: np.ndarray = self.bias.add_to(np.array(base, np.float32)[None])[0]
        return out

    # --- online ----------------------------------------------------------------------
    def served(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], scores: np.ndarray
    ) -> None:
        """Keep copies of the rows of ``scores`` (as ``score`` returned them) served to a
        request's few users, keyed by user and history length, for the next step.

        Nothing is kept while the offset is off, for a batch of more than ``SERVED_ROWS``
        users (an evaluation, not a request), or for a model whose own steps would make
        them stale.
        """
        if (
            self.bias.lr == 0
            or len(user_idx) > self.SERVED_ROWS
            or not scores.size
            or self.inner.updates_online
        ):
            return
        value = self.bias.value
        cap = max(1, self.cache_bytes // max(1, scores.shape[1] * 4))
        rows = {
            (int(u), len(h)): (np.array(scores[r], np.float32), value)
            for r, (u, h) in enumerate(zip(np.asarray(user_idx).tolist(), histories))
        }
        with self._lock:
            kept = self._served
            for key, row in rows.items():
                kept[key] = row
                kept.move_to_end(key)
            while len(kept) > cap:
                kept.popitem(last=False)

    def _recall(self, user: int, length: int, n_items: int) -> np.ndarray | None:
        """The row served to ``user`` with a history of ``length`` items, with the offset as
        it is now, if it covers ``n_items`` items (none grown since); each row is used once."""
        with self._lock:
            kept = self._served.pop((user, length), None)
        if kept is None or len(kept[0]) != n_items:
            return None
        row, value = kept
        if value is not self.bias.value:  # the offset stepped since: swap the old one for it
            n = min(n_items, len(value), len(self.bias.value))
            row[:n] += self.bias.value[:n] - value[:n]
        return row

    def _forget(self) -> None:
        with self._lock:
            self._served.clear()

    def grow(self, n_users: int, n_items: int) -> None:
        self.inner.grow(n_users, n_items)
        self.bias.grow(self.inner.n_items_)

    def learn(self, batch: OnlineBatch) -> float:
        """The model's own step on ``batch``, then the offset's on the new positive events
        (replayed ones are old news); returns the offset's loss, or the model's when it is off.

        The offset's step scores each event's user as of just before it, from the whole
        history (``batch.histories`` keeps the last few items; a model may read all), and
        masks everything in that history. A user's first event (no history: served by
        popularity, the model knows nothing of them) teaches the offset against its own
        prediction: newcomers' first choices are what is popular with newcomers now.
        """
        loss = self.inner.learn(batch)
        bias = self.bias
        if bias.lr == 0 or not self.inner.n_items_:
            return loss
        if self.inner.updates_online:
            self._forget()
        n = len(batch.item_idx) if batch.n_fresh is None else batch.n_fresh
        hists = batch.histories
        whole = hists.whole if isinstance(hists, Prefixes) else hists.__getitem__
        picked = [(r, whole(r)) for r in range(n) if batch.label[r] > 0.5]
        if not picked:
            return loss
        rows = [r for r, _ in picked]
        seen = [h for _, h in picked]
        users = np.asarray(batch.user_idx, np.int64)[rows]
        items = np.asarray(batch.item_idx, np.int64)[rows]
        n_items = self.inner.n_items_
        chunk = max(1, STEP_FLOATS // max(1, n_items))  # bounded memory on a large catalogue
        losses = []
        for a in range(0, len(rows), chunk):
            u, h = users[a : a + chunk], seen[a : a + chunk]
            kept = [
                self._recall(int(x), len(y), n_items) if len(y) else None
                for x, y in zip(u.tolist(), h)
            ]
            missed = [r for r, row in enumerate(kept) if row is None and len(h[r])]
            scores = np.zeros((len(u), n_items), np.float32)  # no history: the offset alone
            if missed:
                scores[missed] = self.inner.score(u[missed], [h[r] for r in missed])[:, :n_items]
            bias.add_to(scores)
            for r, row in enumerate(kept):
                if row is not None:
                    scores[r] = row
            losses.append(bias.step(scores, items[a : a + chunk], h) * len(u))
        return float(sum(losses) / len(rows))

    # --- persistence -----------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {**self.inner.hyperparameters(), "online_bias_lr": self.bias.lr}

    def get_state(self) -> dict[str, Any]:
        return {**self.inner.get_state(), "online_bias": self.bias.value.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.inner.set_state({k: v for k, v in state.items() if k != "online_bias"})
        self.bias = OnlineBias(self.bias.lr, self.inner.n_items_)
        given = state.get("online_bias")
        if given is not None:  # a snapshot of the bare model starts at 0
            given = np.asarray(given, np.float32)
            self.bias.value[: len(given)] = given[: self.inner.n_items_]
        self._forget()
