"""Items similar to an item: cosine over the model's item vectors, else co-occurrence.

What does not depend on the query item (unit item vectors, the item → users index) is
cached per engine state. Online events change that state: small catalogues refresh it
at the next call, large ones (over ``LARGE`` items) at most every ``REFRESH_SECONDS``,
so a stream of events does not make every call pay for the whole catalogue.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recloop.errors import UnknownIdError
from recloop.events import parse_id

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender

Method = Literal["cosine", "co-occurrence"]
LARGE = 200_000
REFRESH_SECONDS = 30.0


class SimilarItems:
    """``similar(item_id, k)`` for one recommender, with a cache keyed by its state
    (``Recommender.similar_items`` calls it)."""

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec
        self._key: tuple[Any, ...] | None = None
        self._events = -1
        self._built_at = 0.0
        self._unit: np.ndarray | None = None
        self._users_of: list[np.ndarray] | None = None
        self._user_items: list[np.ndarray] | None = None
        self._popularity = np.zeros(0)
        self._guard = threading.Lock()

    def _fresh(self, key: tuple[Any, ...], size: int) -> bool:
        """Whether the cache built for ``key`` may still be used (caller holds the guard)."""
        if self._key != key:
            return False
        if self._events == self.rec.events_applied_:
            return True
        return size > LARGE and time.monotonic() - self._built_at < REFRESH_SECONDS

    def _stamp(self, key: tuple[Any, ...]) -> None:
        self._key, self._events, self._built_at = key, self.rec.events_applied_, time.monotonic()

    def similar(self, item_id: object, k: int) -> tuple[str, list[tuple[str, float]], Method]:
        """``(item_id, [(item_id, similarity)...], method)`` for the ``k`` nearest items;
        ``UnknownIdError`` for an item the recommender does not know."""
        rec = self.rec
        iid = parse_id(item_id, "item_id")
        iidx = rec.items_.get(iid)
        if iidx < 0:
            raise UnknownIdError("item_id", f"unknown item {iid[:80]!r}")
        vectors = rec.model_.item_vectors()
        if vectors is not None and iidx < len(vectors):
            sims = self._cosine(np.asarray(vectors), iidx)
            method: Method = "cosine"
        else:
            sims = self._cooccurrence(iidx)
            method = "co-occurrence"
        sims[iidx] = -np.inf
        ok = int(np.isfinite(sims).sum()) if method == "cosine" else int((sims > 0).sum())
        k = min(k, ok)
        if k <= 0:
            return iid, [], method
        part = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = part[np.argsort(-sims[part], kind="stable")]
        return iid, [(i, float(s)) for i, s in zip(rec.items_.ids(top.tolist()), sims[top])], method

    def _cosine(self, vectors: np.ndarray, iidx: int) -> np.ndarray:
        key = ("cos", self.rec.model_version_, len(vectors))
        with self._guard:
            if self._unit is None or not self._fresh(key, len(vectors)):
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                self._unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
                self._stamp(key)
            unit = self._unit
        out: np.ndarray = unit @ unit[iidx]
        return out.astype(np.float64)

    def _cooccurrence(self, iidx: int) -> np.ndarray:
        """Cosine between items' user sets: co-count / sqrt(count_i * count_j)."""
        rec = self.rec
        key = ("co", rec.model_version_)
        with self._guard:
            if (
                self._users_of is None
                or self._user_items is None
                or not self._fresh(key, rec.n_items)
            ):
                with rec._lock:  # one consistent copy of every user's seen items
                    st = rec.user_state_
                    user_items = [st.seen(u) for u in range(len(st))]
                    n_items = rec.n_items
                lengths = np.array([len(s) for s in user_items], np.int64)
                flat_items = np.concatenate(user_items) if user_items else np.zeros(0, np.int64)
                flat_users = np.repeat(np.arange(len(user_items)), lengths)
                order = np.argsort(flat_items, kind="stable")
                bounds = np.searchsorted(flat_items[order], np.arange(n_items + 1))
                users_sorted = flat_users[order]
                self._users_of = [users_sorted[bounds[j] : bounds[j + 1]] for j in range(n_items)]
                self._user_items = user_items
                self._popularity = np.diff(bounds).astype(np.float64)
                self._stamp(key)
            users_of, user_items, popularity = self._users_of, self._user_items, self._popularity
        n = rec.n_items
        counts = np.zeros(n, np.float64)
        users = users_of[iidx] if iidx < len(users_of) else np.zeros(0, np.int64)
        if len(users):
            np.add.at(counts, np.concatenate([user_items[u] for u in users]), 1.0)
        pop = np.zeros(n, np.float64)
        pop[: len(popularity)] = popularity[:n]
        return counts / np.sqrt(np.maximum(pop * max(len(users), 1), 1.0))
