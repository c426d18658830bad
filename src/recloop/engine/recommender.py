"""``Recommender``: the facade users call. It wires the parts and owns no maths.

It owns the id vocabularies, every user's history and seen items, and the lock that
makes ``recommend`` safe while ``update`` runs. Scoring is the model's; parameter
updates are the ``OnlineLearner``'s.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from recloop.data.dataset import as_interactions
from recloop.data.vocab import Vocab
from recloop.engine import explain as _explain
from recloop.engine.metadata import Metadata, attach_content
from recloop.engine.recent import RecentCounts
from recloop.errors import InvalidInputError, NotFittedError
from recloop.events import (
    DEFAULT_MAPPING,
    Event,
    EventColumns,
    FeedbackMapping,
    parse_event,
    parse_event_columns,
    parse_id,
    parse_value,
)
from recloop.models import FitOptions, RecModel, TrainData, create
from recloop.online import OnlineConfig, OnlineLearner

log = logging.getLogger(__name__)
MAX_K = 1000
FORMAT_VERSION = 1


def known_history(
    hist: list[np.ndarray], times: list[np.ndarray] | None, n_items: int
) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Histories without the items a model has no row for yet (tables grow lazily, in the
    learner's step), and the keyword arguments that pass their timestamps, cut alike, to
    ``score`` / ``user_states`` (none when ``times`` is None)."""
    keep = [None if not len(h) or h.max() < n_items else h < n_items for h in hist]
    cut = [h if k is None else h[k] for h, k in zip(hist, keep)]
    if times is None:
        return cut, {}
    return cut, {"times": [t if k is None else t[k] for t, k in zip(times, keep)]}


class Recommender:
    """Fit, recommend, score and learn online with one registered model.

    Parameters
    ----------
    model
        A registered model name (``recloop.models.available()``).
    seed
        Seeds every random choice, so a fit reproduces.
    threads
        torch threads for fitting and scoring (default 1: on 2 busy cores one thread is
        fastest, see MACHINE.md).
    online
        The online learning policy.
    popularity_half_life
        Users the model cannot personalise (unknown users, a user's first event) get the
        most popular items *now*: positive events counted with a weight that halves every
        ``popularity_half_life`` later positive events (default 5,000; 0: all-time counts).
        On the MovieLens-100K replay a user's first event is in that top-10 0.48 of the
        time, against 0.19 with all-time counts.
    **hyperparameters
        Passed to the model's constructor.

    Examples
    --------
    >>> import pandas as pd
    >>> from recloop import Recommender
    >>> df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "c", "b"],
    ...                    "timestamp": [1, 2, 3, 4, 5]})
    >>> rec = Recommender(model="popularity").fit(df)
    >>> rec.recommend(3, k=2)
    ['a', 'c']
    """

    def __init__(
        self,
        model: str = "sasrec",
        seed: int = 0,
        *,
        threads: int | None = 1,
        online: OnlineConfig | None = None,
        feedback: FeedbackMapping | None = None,
        popularity_half_life: int = 5000,
        **hyperparameters: Any,
    ) -> None:
        self.model_name = model
        self.seed = seed
        self.threads = threads
        self.hyperparameters = dict(hyperparameters)
        self.online_config = online or OnlineConfig(seed=seed)
        self.feedback = feedback or DEFAULT_MAPPING
        self.model_: RecModel = create(
            model, seed=seed, **hyperparameters
        )  # validates the name early
        self.users_ = Vocab()
        self.items_ = Vocab()
        self.sequences_: list[list[int]] = []  # per user: positive items in time order
        self.times_: list[list[float]] = []  # per user: the timestamp of each item of sequences_
        self.seen_: list[set[int]] = []  # per user: every item interacted with
        self.item_counts_ = np.zeros(0, np.float64)
        self.recent_ = RecentCounts(
            popularity_half_life
        )  # what users the model cannot personalise get
        self.items_meta_: pd.DataFrame | None = None
        self.metadata_ = Metadata()  # item and user attributes, items' content vectors
        self.fit_report_: dict[str, Any] = {}
        self.events_applied_ = 0
        self.model_version_ = 0
        self.fitted_ = False
        self._lock = threading.RLock()  # users' state: vocabularies, histories, seen items
        self._model_lock = (
            threading.RLock()
        )  # the model's parameters (taken after _lock, never before)
        self._learner: OnlineLearner | None = None

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        *,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        epochs: int | None = None,
        show_progress: bool = False,
        validation: bool | None = None,
    ) -> Recommender:
        """Fit on a DataFrame with ``user_id``, ``item_id``, ``timestamp`` [, ``type``/``event``, ``value``].

        Each user's last positive interaction is held out for early stopping when
        ``validation`` (users with at least 3); every interaction is in the user's
        history afterwards. ``None`` leaves it to the model: every model holds out but
        ``sasrec``, whose fixed schedule ends at its best and which gains from training on
        each user's latest item (``RecModel.holds_out_validation``).

        ``items`` (``item_id`` and any of ``title``, ``text``, ``genres``/``tags``, numeric and
        categorical columns) and ``users`` (``user_id`` and attributes) replace the
        metadata held (``None`` keeps it); an item with metadata but no interaction is in
        the catalogue and scored by its content (``set_items``).
        """
        inter = as_interactions(df)
        if len(inter) == 0:
            raise InvalidInputError("df", "has no rows")
        unknown = set(inter["type"].unique()) - set(self.feedback.types)
        if unknown:
            raise InvalidInputError(
                "type",
                f"unknown event types {sorted(unknown)}; allowed: {', '.join(self.feedback.types)}",
            )
        model = create(self.model_name, seed=self.seed, **self.hyperparameters)
        if validation is None:
            validation = model.holds_out_validation
        with self._lock:
            self.users_, self.items_ = Vocab(), Vocab()
            u = self.users_.add_many(inter["user_id"].to_numpy())
            i = self.items_.add_many(inter["item_id"].to_numpy())
            self._fit_metadata(items, users)  # items with metadata only join the catalogue
            types = inter["type"].to_numpy()
            values = inter["value"].to_numpy(dtype=np.float64)
            label = np.empty(len(inter), np.float32)
            weight = np.empty(len(inter), np.float32)
            for t in np.unique(types):
                m = types == t
                sig = (
                    [self.feedback.signal(Event("u", "i", str(t), float(v))) for v in values[m]]
                    if t == "rating"
                    else None
                )
                if sig is None:
                    s = self.feedback.signal(Event("u", "i", str(t)))
                    label[m], weight[m] = (1.0 if s.label > 0.5 else 0.0), s.weight
                else:
                    label[m] = 1.0  # every rating is an interaction; its value weighs it
                    weight[m] = [x.weight for x in sig]
            n_users, n_items = len(self.users_), len(self.items_)
            pos = label > 0.5
            seqs: list[list[int]] = [[] for _ in range(n_users)]
            times: list[list[float]] = [[] for _ in range(n_users)]
            seen: list[set[int]] = [set() for _ in range(n_users)]
            for uu, ii, p, t in zip(
                u.tolist(), i.tolist(), pos.tolist(), inter["timestamp"].tolist()
            ):
                seen[uu].add(ii)
                if p:
                    seqs[uu].append(ii)
                    times[uu].append(float(t))
            # hold out each user's last positive for early stopping
            keep = np.ones(len(inter), bool)
            vu, vi = [], []
            if validation:
                last_row: dict[int, int] = {}
                for r in np.flatnonzero(pos):
                    last_row[int(u[r])] = int(r)
                for uu, r in last_row.items():
                    if len(seqs[uu]) >= 3:
                        keep[r] = False
                        vu.append(uu)
                        vi.append(int(i[r]))
            train_seqs = [np.asarray(s, np.int64) for s in seqs]
            for uu in vu:
                train_seqs[uu] = train_seqs[uu][:-1]
            data = TrainData(
                n_users=n_users,
                n_items=n_items,
                user_idx=u[keep],
                item_idx=i[keep],
                timestamp=inter["timestamp"].to_numpy(np.int64)[keep],
                label=label[keep],
                weight=weight[keep],
                value=values[keep].astype(np.float32),
                sequences=train_seqs,
                valid_user_idx=np.asarray(vu, np.int64),
                valid_item_idx=np.asarray(vi, np.int64),
            )
            attach_content(model, self.metadata_, n_items)
            self.model_ = model
            torch_threads = torch.get_num_threads()
            try:
                self.fit_report_ = self.model_.fit(
                    data,
                    FitOptions(epochs=epochs, show_progress=show_progress, threads=self.threads),
                )
            finally:
                if self.threads:
                    torch.set_num_threads(torch_threads) if torch_threads != self.threads else None
            self.model_.grow(n_users, n_items)
            self.metadata_.fit_content(data, self.seed)
            self.sequences_, self.seen_, self.times_ = seqs, seen, times
            self.item_counts_ = np.bincount(i[pos], minlength=n_items).astype(np.float64)
            self.recent_.reset(i[pos], n_items)
            self.items_meta_ = self.metadata_.items
            self.events_applied_ = 0
            self.model_version_ += 1
            self.fitted_ = True
            self._learner = self._make_learner()
            ok = np.flatnonzero(pos)
            seq_pos = np.zeros(len(inter), np.int64)
            counter = np.zeros(n_users, np.int64)
            for r in ok:
                seq_pos[r] = counter[u[r]]
                counter[u[r]] += 1
            self._learner.seed_reservoir(
                u[ok], i[ok], lambda uu, j: seqs[uu][max(0, seq_pos[ok[j]] - 50) : seq_pos[ok[j]]]
            )
        return self

    # ------------------------------------------------------------------ serving
    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(
                "the recommender is not fitted: call fit(df) or Recommender.load(path) first"
            )

    @staticmethod
    def _check_k(k: object) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
            raise InvalidInputError("k", f"must be an integer in 1..{MAX_K}, got {k!r}")
        return int(k)

    def _make_learner(self) -> OnlineLearner:
        return OnlineLearner(
            self.model_,
            self.online_config,
            self._model_lock,
            sizes=lambda: (len(self.users_), len(self.items_)),
        )

    def _history(self, uidx: int) -> np.ndarray:
        return np.asarray(self.sequences_[uidx], np.int64) if uidx >= 0 else np.zeros(0, np.int64)

    def _times(self, uidx: int) -> np.ndarray:
        return np.asarray(self.times_[uidx], np.float64) if uidx >= 0 else np.zeros(0, np.float64)

    def _gather(
        self, uidxs: Sequence[int]
    ) -> tuple[list[np.ndarray], list[np.ndarray], int, list[np.ndarray] | None]:
        """Copy what scoring needs of the users' state (caller holds ``_lock``): histories,
        seen items, the item count, and the histories' timestamps when the model reads them."""
        hist = [self._history(x) for x in uidxs]
        seen = [
            np.fromiter(self.seen_[x], np.int64, len(self.seen_[x]))
            if x >= 0
            else np.zeros(0, np.int64)
            for x in uidxs
        ]
        times = [self._times(x) for x in uidxs] if self.model_.uses_times else None
        return hist, seen, len(self.items_), times

    def _scores(
        self,
        uidxs: Sequence[int],
        hist: list[np.ndarray],
        n_items: int,
        times: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """(len(uidxs), n_items) scores; users the model cannot personalise get popularity.

        Takes only the model lock, so ``update`` never waits for scoring.
        """
        arr = np.asarray(uidxs, np.int64)
        out = np.empty((len(arr), n_items), np.float32)
        warm = np.array(
            [x >= 0 and (len(h) > 0 or not self.model_.uses_history) for x, h in zip(arr, hist)],
            bool,
        )
        if warm.any():
            with self._model_lock:
                hist, extra = known_history(hist, times, self.model_.n_items_)
                warm[warm] = self.model_.can_personalise(
                    arr[warm], [h for h, w in zip(hist, warm) if w]
                )
                extra = {k: [t for t, w in zip(v, warm) if w] for k, v in extra.items()}
                s = (
                    self.model_.score(arr[warm], [h for h, w in zip(hist, warm) if w], **extra)
                    if warm.any()
                    else None
                )
            if s is not None:
                m = min(s.shape[1], n_items)
                rows = slice(None) if warm.all() else warm  # a slice copies without a mask's gather
                out[rows, :m] = s[:, :m]
                out[rows, m:] = -np.inf  # items newer than the model's table: not scorable yet
                self._fill_cold(out, warm, hist, m)
        if (~warm).any():
            out[~warm] = self.recent_.scores(n_items, self.item_counts_[:n_items])
        return out

    @staticmethod
    def _top_rows(
        scores: np.ndarray, seen: Sequence[np.ndarray], k: int, exclude_seen: bool
    ) -> list[list[int]]:
        """Top-``k`` item indices of each row, best first.

        Per row, one argpartition and a sort of its ``k`` candidates (cheaper than the
        block-wide version for a request's few rows); a row with fewer than ``k``
        recommendable items returns what it has.
        """
        if exclude_seen:
            for r, ex in enumerate(seen):
                if len(ex):
                    scores[r, ex] = -np.inf
        out: list[list[int]] = []
        n_items = scores.shape[1]
        for row in scores:
            finite = np.isfinite(row)
            neg = np.where(
                finite, -row, np.inf
            )  # what cannot be recommended (-inf, +inf, NaN) sorts last
            top = np.argpartition(neg, k - 1)[:k] if k < n_items else np.arange(n_items)
            top = top[np.argsort(neg[top], kind="stable")]
            out.append(top[finite[top]].tolist())
        return out

    def recommend(self, user_id: object, k: int = 10, exclude_seen: bool = True) -> list[str]:
        """Top-``k`` item ids for ``user_id`` (already-seen items excluded by default).

        An unknown user gets the most popular items.
        """
        return [i for i, _ in self.recommend_with_scores(user_id, k, exclude_seen)]

    def recommend_with_scores(
        self, user_id: object, k: int = 10, exclude_seen: bool = True
    ) -> list[tuple[str, float]]:
        """``recommend`` with each item's score."""
        return self.recommend_batch_with_scores([parse_id(user_id, "user_id")], k, exclude_seen)[0]

    def recommend_batch(
        self, user_ids: Iterable[object], k: int = 10, exclude_seen: bool = True
    ) -> list[list[str]]:
        """``recommend`` for many users with one scoring pass."""
        return [
            [i for i, _ in row]
            for row in self.recommend_batch_with_scores(user_ids, k, exclude_seen)
        ]

    def recommend_batch_with_scores(
        self, user_ids: Iterable[object], k: int = 10, exclude_seen: bool = True
    ) -> list[list[tuple[str, float]]]:
        """``recommend_with_scores`` for many users: one model call, one top-k pass."""
        self._check_fitted()
        k = self._check_k(k)
        uids = [parse_id(x, f"user_ids[{n}]") for n, x in enumerate(user_ids)]
        with self._lock:
            uidxs = [self.users_.get(x) for x in uids]
            hist, seen, n_items, times = self._gather(uidxs)
        scores = self._scores(uidxs, hist, n_items, times)
        tops = self._top_rows(scores, seen, k, exclude_seen)
        return [
            [(i, float(scores[r, t])) for i, t in zip(self.items_.ids(top), top)]
            for r, top in enumerate(tops)
        ]

    def score(self, user_id: object, item_ids: Sequence[object]) -> np.ndarray:
        """Scores of ``item_ids`` for ``user_id`` (higher is better); an unknown item scores
        below every known one."""
        self._check_fitted()
        uid = parse_id(user_id, "user_id")
        ids = [parse_id(x, f"item_ids[{n}]") for n, x in enumerate(item_ids)]
        with self._lock:
            uidx = self.users_.get(uid)
            hist, _, n_items, times = self._gather([uidx])
            idx = self.items_.lookup(ids)
        row = self._scores([uidx], hist, n_items, times)[0]
        finite = row[np.isfinite(row)]
        floor = (float(finite.min()) if len(finite) else 0.0) - 1.0
        out = np.where(idx >= 0, row[np.maximum(idx, 0)], floor).astype(np.float64)
        out[~np.isfinite(out)] = floor  # items newer than the model's table
        return out

    def score_all(self, user_id: object) -> tuple[list[str], np.ndarray]:
        """Every item id and its score for ``user_id`` (seen items included)."""
        self._check_fitted()
        uid = parse_id(user_id, "user_id")
        with self._lock:
            uidx = self.users_.get(uid)
            hist, _, n_items, times = self._gather([uidx])
            ids = self.items_.to_list()
        return ids, self._scores([uidx], hist, n_items, times)[0]

    def predict_proba(
        self, user_id: object, item_id: object, behavior: float | None = None
    ) -> float:
        """Probability that ``user_id`` clicks ``item_id``, given the request-time ``behavior``.

        Uses the click model's ``predict_proba`` when the model has one; otherwise the
        item's percentile among the user's scores (a calibrated-enough [0, 1] value; an
        unknown item gets 0).
        """
        return float(
            self.predict_proba_batch(
                [user_id], [item_id], None if behavior is None else [behavior]
            )[0]
        )

    def predict_proba_batch(
        self,
        user_ids: Sequence[object],
        item_ids: Sequence[object],
        behaviors: Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """``predict_proba`` for many (user, item[, behavior]) triples with one model call."""
        self._check_fitted()
        if len(user_ids) != len(item_ids) or (
            behaviors is not None and len(behaviors) != len(user_ids)
        ):
            raise InvalidInputError(
                "item_ids", "user_ids, item_ids and behaviors must have the same length"
            )
        uids = [parse_id(x, "user_id") for x in user_ids]
        iids = [parse_id(x, "item_id") for x in item_ids]
        b = [
            None if x is None else parse_value(x, "behavior")
            for x in (behaviors or [None] * len(uids))
        ]
        with self._lock:
            uidx = np.array([self.users_.get(x) for x in uids], np.int64)
            iidx = np.array([self.items_.get(x) for x in iids], np.int64)
            hist, _, n_items, times = self._gather(uidx.tolist())
        fn = getattr(self.model_, "predict_proba", None)
        if fn is not None:
            with self._model_lock:
                if all(x is None for x in b):
                    return np.asarray(fn(uidx, iidx, None), np.float64)
                # a missing behavior takes the training mean, which the model knows as NaN-free None
                out = np.empty(len(uidx))
                given = np.array([x is not None for x in b])
                if given.any():
                    feats = np.array([[x] for x in b if x is not None], np.float32)
                    out[given] = fn(uidx[given], iidx[given], feats)
                if (~given).any():
                    out[~given] = fn(uidx[~given], iidx[~given], None)
                return out
        scores = self._scores(uidx.tolist(), hist, n_items, times)
        at = scores[np.arange(len(uidx)), np.maximum(iidx, 0)]
        share = (scores < at[:, None]).mean(1)
        return np.where((iidx >= 0) & np.isfinite(at), share, 0.0)

    # ------------------------------------------------------------------ online
    def update(
        self, events: Event | Mapping[str, Any] | Sequence[Mapping[str, Any] | Event] | pd.DataFrame
    ) -> int:
        """Learn from feedback: one event, a list, or a DataFrame. Returns the number applied.

        A batch is all-or-nothing: every event is validated before any is applied. Before
        this returns, every event is in its user's history and seen items
        (read-your-writes); the parameter step follows within ``max_delay_ms``.
        """
        self._check_fitted()
        cols = self._parse_events(events)
        with self._lock:
            self._apply_columns(cols)
            self.events_applied_ += len(cols)
            if self._learner is not None:
                self._learner.added()
        return len(cols)

    def _parse_events(self, events: Any) -> EventColumns:
        types = self.feedback.types
        if isinstance(events, Event):
            return _columns_of([events])
        if isinstance(events, pd.DataFrame):
            records = events.to_dict("records")
            if events.isna().to_numpy().any():
                # an empty cell (NaN) means "not given": value defaults to 1.0, timestamp to now
                records = [
                    {k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
                    for r in records
                ]
            return parse_event_columns(records, types)
        if isinstance(events, Mapping):
            return _columns_of([parse_event(events, types)])
        if isinstance(events, (list, tuple)):
            return parse_event_columns(events, types)
        raise InvalidInputError(
            "events",
            f"must be an event, a list of events or a DataFrame, got {type(events).__name__}",
        )

    def _signals(self, cols: EventColumns) -> tuple[list[float], list[float], list[bool]]:
        """Per event: the learner's label and weight, and whether it is a positive interaction
        (history, popularity). Raises before anything is applied if a type is unknown."""
        fb = self.feedback
        if (
            type(fb) is not FeedbackMapping
        ):  # a subclass may weigh events its own way: ask it per event
            labels, weights, positive = [], [], []
            for ev in cols.events():
                sig = fb.signal(ev)
                p = fb.is_positive(ev)
                labels.append(
                    1.0 if p and sig.label > 0.5 else (1.0 if ev.type == "rating" else 0.0)
                )
                weights.append(sig.weight)
                positive.append(p)
            return labels, weights, positive
        # the mapping's signal depends on the type only, except for a rating (its value)
        table: dict[str, tuple[float, float, bool]] = {}
        for t in set(cols.types):
            if t != "rating":
                sig = fb.signals.get(t) or fb.signal(
                    Event("", "", t)
                )  # an unknown type raises here
                table[t] = (1.0 if sig.label > 0.5 else 0.0, sig.weight, sig.label > 0.5)
        rows = [table.get(t) for t in cols.types]
        if "rating" in cols.types:
            rows = [
                r if r is not None else (1.0, fb.signal(Event("", "", "rating", v)).weight, True)
                for r, v in zip(rows, cols.values)
            ]
        labels, weights, positive = (list(c) for c in zip(*rows)) if rows else ([], [], [])
        return labels, weights, positive

    def _apply_columns(self, cols: EventColumns) -> None:
        """Apply validated events in order (caller holds ``_lock``): vocabularies, histories,
        seen items, popularity; then queue them for the learner in one call."""
        n = len(cols)
        if n == 0:
            return
        labels, weights, positive = self._signals(
            cols
        )  # raises on an unknown type: nothing is applied yet
        uadd, iadd = self.users_.add, self.items_.add
        uidx = [uadd(x) for x in cols.user_ids]
        iidx = [iadd(x) for x in cols.item_ids]
        seqs, seen, times = self.sequences_, self.seen_, self.times_
        while len(seqs) < len(self.users_):
            seqs.append([])
            seen.append(set())
        while len(times) < len(seqs):
            times.append([])
        n_items = len(self.items_)
        if n_items > len(
            self.item_counts_
        ):  # geometric growth: adding items a few at a time stays linear
            grown = np.zeros(max(2 * len(self.item_counts_), n_items, 64))
            grown[: len(self.item_counts_)] = self.item_counts_
            self.item_counts_ = grown
        learning = self._learner is not None and self._learner.config.enabled
        hist: list[list[int]] = []
        ends: list[int] = []
        liked: list[int] = []
        for u, i, p, t in zip(uidx, iidx, positive, cols.timestamps):
            s = seqs[u]
            if learning:  # the event's history is the user's sequence before it, read at step time
                hist.append(s)
                ends.append(len(s))
            seen[u].add(i)
            if p:
                s.append(i)
                times[u].append(t)
                liked.append(i)
        self.recent_.add(liked)
        if len(liked) > 8:
            np.add.at(self.item_counts_, liked, 1.0)
        else:
            counts = self.item_counts_
            for i in liked:
                counts[i] += 1.0
        if learning:
            assert self._learner is not None
            self._learner.add_many(uidx, iidx, labels, weights, hist, ends)

    # ------------------------------------------------------------------ metadata
    def set_items(self, items: pd.DataFrame) -> list[str]:
        """Add or change items' attributes (``item_id`` plus any columns; see ``fit``).

        A new item joins the catalogue at once and, without retraining, is scored by its
        content for users whose recent items resemble it. Returns the item ids written.
        """
        return self.put_metadata("items", items)

    def set_users(self, users: pd.DataFrame) -> list[str]:
        """Add or change users' attributes (``user_id`` plus any columns)."""
        return self.put_metadata("users", users)

    def put_metadata(self, kind: Literal["items", "users"], frame: pd.DataFrame) -> list[str]:
        """The one write path of item and user attributes (``set_items``, ``set_users``)."""
        if kind not in ("items", "users"):
            raise InvalidInputError("kind", f"must be 'items' or 'users', got {kind!r}")
        with self._lock:
            if kind == "users":
                return self.metadata_.put_users(frame)
            rows = self.metadata_.put_items(frame, self.items_)
            n_items = len(self.items_)
            if n_items > len(self.item_counts_):
                grown = np.zeros(max(2 * len(self.item_counts_), n_items, 64))
                grown[: len(self.item_counts_)] = self.item_counts_
                self.item_counts_ = grown
            self.items_meta_ = self.metadata_.items
            if self.fitted_:
                with self._model_lock:
                    attach_content(self.model_, self.metadata_, n_items)
            return self.items_.ids(rows)

    def item_metadata(self, item_id: object) -> dict[str, Any] | None:
        """The item's attributes, or None when the catalogue has no such item."""
        iid = parse_id(item_id, "item_id")
        with self._lock:
            if iid not in self.items_:
                return None
            return self.metadata_.item(iid) or {}

    def user_metadata(self, user_id: object) -> dict[str, Any] | None:
        """The user's attributes, or None when none were given."""
        uid = parse_id(user_id, "user_id")
        with self._lock:
            return self.metadata_.user(uid)

    def explain(self, user_id: object, item_id: object) -> dict[str, Any]:
        """Why ``item_id`` ranks where it does for ``user_id``: ``because`` (the history items
        whose removal lowers its score most, with that fall as ``weight``), ``genres`` (tags
        it shares with the history) and ``popular_now`` (see ``recloop.engine.explain``)."""
        return self.explain_items(user_id, [item_id])[0]

    def explain_items(self, user_id: object, item_ids: Sequence[object]) -> list[dict[str, Any]]:
        """``explain`` for several items of one user with one batch of scoring."""
        self._check_fitted()
        uid = parse_id(user_id, "user_id")
        ids = [parse_id(x, f"item_ids[{n}]") for n, x in enumerate(item_ids)]
        self.flush()  # the scoring below must not meet queued steps of this user (model memos)
        with self._lock:
            uidx = self.users_.get(uid)
            hist, _, n_items, times = self._gather([uidx])
            rows = self.items_.lookup(ids)
        cands, loo, loo_times = _explain.leave_one_out(hist[0], None if times is None else times[0])
        scores = self._scores(
            [uidx] * (1 + len(cands)),
            [hist[0], *loo],
            n_items,
            None if times is None or loo_times is None else [times[0], *loo_times],
        )
        lifts = _explain.contributions(scores[0], scores[1:], cands, rows.tolist())
        with self._lock:
            tags = self.metadata_.tags([max(int(r), 0) for r in rows], self.items_)
            history_tags = self.metadata_.tags(hist[0][-_explain.WINDOW :].tolist(), self.items_)
            popular = self.recent_.scores(n_items, self.item_counts_[:n_items])
        top_popular = set(np.argsort(-popular, kind="stable")[:50].tolist())
        out = []
        for n, (iid, r) in enumerate(zip(ids, rows.tolist())):
            because = [(self.items_.id(c), w) for c, w in lifts[n]]
            genres = _explain.shared_tags(tags[n], history_tags) if r >= 0 else []
            out.append(_explain.reason(iid, because, genres, not because and r in top_popular))
        return out

    def _fit_metadata(self, items: pd.DataFrame | None, users: pd.DataFrame | None) -> None:
        """Replace the metadata given to ``fit`` (caller holds ``_lock``); what was set
        before is kept where ``fit`` gets none."""
        old = self.metadata_
        self.metadata_ = Metadata()
        items = items if items is not None else old.items
        users = users if users is not None else old.users
        if items is not None:
            self.metadata_.put_items(items, self.items_)
        if users is not None:
            self.metadata_.put_users(users)

    def _fill_cold(
        self, out: np.ndarray, warm: np.ndarray, hist: list[np.ndarray], model_items: int
    ) -> None:
        """Content scores for items the model has no interactions for (``Metadata.fill_cold``)."""
        if self.metadata_.has_content:
            self.metadata_.fill_cold(
                out, np.flatnonzero(warm), hist, self.item_counts_, model_items
            )

    def flush(self) -> None:
        """Apply every queued parameter step now."""
        if self._learner is not None:
            self._learner.flush()

    # ------------------------------------------------------------------ introspection
    @property
    def n_users(self) -> int:
        return len(self.users_)

    @property
    def n_items(self) -> int:
        return len(self.items_)

    def history(self, user_id: object) -> list[str]:
        uidx = self.users_.get(parse_id(user_id, "user_id"))
        with self._lock:
            return self.items_.ids(self.sequences_[uidx]) if uidx >= 0 else []

    def update_latency_ms(self) -> list[float]:
        return list(self._learner.step_ms) if self._learner else []

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write a snapshot folder (``meta.json`` + ``state.pt``), atomically replacing ``path``."""
        self._check_fitted()
        path = Path(path)
        tmp = path.with_name(path.name + f".tmp-{time.time_ns()}")
        tmp.mkdir(parents=True)
        with self._lock, self._model_lock:
            if self._learner is not None:
                self._learner.flush()
            self.model_.grow(len(self.users_), len(self.items_))
            meta = {
                "format": FORMAT_VERSION,
                "model": self.model_name,
                "seed": self.seed,
                "hyperparameters": self.model_.hyperparameters(),
                "threads": self.threads,
                "online": self.online_config.__dict__,
                "events_applied": self.events_applied_,
                "model_version": self.model_version_,
                "fit_report": _jsonable(self.fit_report_),
                "feedback": {
                    t: [sig.label, sig.weight] for t, sig in self.feedback.signals.items()
                },
                "recent_counts": self.recent_.state(),
                "rating_threshold": self.feedback.rating_threshold,
            }
            lengths = np.array([len(s) for s in self.sequences_], np.int64)
            flat = np.fromiter((x for s in self.sequences_ for x in s), np.int64)
            time_flat = np.fromiter((x for s in self.times_ for x in s), np.float64)
            seen_len = np.array([len(s) for s in self.seen_], np.int64)
            seen_flat = np.fromiter((x for s in self.seen_ for x in sorted(s)), np.int64)
            state = {
                "model": _to_torch(self.model_.get_state()),
                "users": self.users_.to_list(),
                "items": self.items_.to_list(),
                "seq_len": torch.from_numpy(lengths),
                "seq_flat": torch.from_numpy(flat),
                "seq_time": torch.from_numpy(time_flat),
                "seen_len": torch.from_numpy(seen_len),
                "seen_flat": torch.from_numpy(seen_flat),
                "item_counts": torch.from_numpy(self.item_counts_[: len(self.items_)].copy()),
                "recent_counts": torch.from_numpy(self.recent_.values[: len(self.items_)].copy()),
            }
            torch.save(state, tmp / "state.pt")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            self.metadata_.save(tmp)
        if path.exists():
            # keep what others put in the folder (a run's train/test split), replace only ours
            for extra in path.iterdir():
                if not (tmp / extra.name).exists() and extra.is_file():
                    shutil.copy2(extra, tmp / extra.name)
            old = path.with_name(path.name + f".old-{time.time_ns()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a snapshot written by ``save`` (tensors only: safe ``weights_only`` loading)."""
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.exists():
            raise InvalidInputError("path", f"{path} is not a recloop snapshot (no meta.json)")
        meta = json.loads(meta_file.read_text())
        online = OnlineConfig(**meta.get("online", {}))
        feedback = FeedbackMapping.from_dict(
            meta.get("feedback", {}), meta.get("rating_threshold", 3.5)
        )
        rec = cls(
            meta["model"],
            seed=meta["seed"],
            threads=meta.get("threads", 1),
            online=online,
            feedback=feedback,
            popularity_half_life=int(meta.get("recent_counts", {}).get("half_life", 0)),
            **meta["hyperparameters"],
        )
        state = torch.load(path / "state.pt", weights_only=True)
        rec.model_.set_state(state["model"])
        rec.users_ = Vocab.from_list(state["users"])
        rec.items_ = Vocab.from_list(state["items"])
        rec.sequences_ = (
            [
                s.tolist()
                for s in np.split(
                    state["seq_flat"].numpy(), np.cumsum(state["seq_len"].numpy())[:-1]
                )
            ]
            if len(state["seq_len"])
            else []
        )
        if "seq_time" in state and len(state["seq_time"]) == len(state["seq_flat"]):
            rec.times_ = (
                [
                    t.tolist()
                    for t in np.split(
                        state["seq_time"].numpy(), np.cumsum(state["seq_len"].numpy())[:-1]
                    )
                ]
                if len(state["seq_len"])
                else []
            )
        else:  # a snapshot from before timestamps were kept: every event its own second
            rec.times_ = [[float(j) for j in range(len(s))] for s in rec.sequences_]
        rec.seen_ = (
            [
                set(s.tolist())
                for s in np.split(
                    state["seen_flat"].numpy(), np.cumsum(state["seen_len"].numpy())[:-1]
                )
            ]
            if len(state["seen_len"])
            else []
        )
        rec.item_counts_ = state["item_counts"].numpy().astype(np.float64)
        recent = meta.get("recent_counts")
        if recent is not None and "recent_counts" in state:
            rec.recent_.values = state["recent_counts"].numpy().astype(np.float64)
            rec.recent_.n, rec.recent_.base = int(recent["n"]), int(recent["base"])
        else:  # a snapshot from before recent popularity: start from the all-time counts
            rec.recent_.values = rec.item_counts_.copy()
        rec.events_applied_ = int(meta.get("events_applied", 0))
        rec.model_version_ = int(meta.get("model_version", 1))
        rec.fit_report_ = meta.get("fit_report", {})
        rec.metadata_.load(path, rec.items_)
        rec.items_meta_ = rec.metadata_.items
        rec.model_.grow(len(rec.users_), len(rec.items_))
        attach_content(rec.model_, rec.metadata_, len(rec.items_))
        rec.fitted_ = True
        rec._learner = rec._make_learner()
        return rec


def _columns_of(events: Sequence[Event]) -> EventColumns:
    out = EventColumns([], [], [], [], [])
    for ev in events:
        out.append(ev)
    return out


def _to_torch(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], np.ndarray):
        return [_to_torch(v) for v in obj]
    return obj


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return json.loads(
            json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        )
