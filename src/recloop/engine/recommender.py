"""``Recommender``: the facade users call. It wires the parts and owns no maths.

It owns the id vocabularies, the users' state (``UserState``), popularity counts and the
two locks that make ``recommend`` safe while ``update`` runs. Fit data is built by
``fitdata``, snapshots by ``persist``, candidate retrieval by ``retrieval``, similar
items by ``similar``; scoring is the model's and parameter updates the
``OnlineLearner``'s.

The file is longer than the project's other modules because it is the whole public surface
of the engine (fit, recommend, score, update, attributes, explanations, the memory bound,
persistence, the log hook): each method checks its input, takes the right lock and hands
the work to one of the modules above, and keeping them together keeps the locking rules
in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from recloop.data.vocab import Vocab
from recloop.engine import explain as _explain
from recloop.engine import persist
from recloop.engine.eviction import evict_least_active, restore_columns
from recloop.engine.fitting import fit_recommender
from recloop.engine.ingest import Events, apply_columns, parse_events
from recloop.engine.metadata import Metadata, attach_content
from recloop.engine.recent import RecentCounts
from recloop.engine.retrieval import Retriever
from recloop.engine.scoring import click_proba, percentile_of, personalised, score_rows, top_rows
from recloop.engine.similar import SimilarItems
from recloop.engine.userids import UserIds
from recloop.engine.userstate import UserState
from recloop.engine.views import LearnerStatus, Rows, UserView
from recloop.errors import ConfigError, InvalidInputError, NotFittedError
from recloop.events import DEFAULT_MAPPING, EventColumns, FeedbackMapping, parse_id, parse_value
from recloop.models import RecModel, create
from recloop.online import OnlineConfig, OnlineLearner

if TYPE_CHECKING:
    from recloop.engine.durable import Durable, SnapshotPolicy
    from recloop.storage import EventLog, ModelStore

MAX_K = 1000


class Recommender:
    """Fit, recommend, score and learn online with one registered model.

    Parameters
    ----------
    model
        A registered model name (``recloop.models.available()``).
    seed
        Seeds every random choice, so a fit reproduces.
    threads
        torch threads for fitting and scoring (default 1: on two busy cores one thread
        is fastest).
    online
        The online learning policy.
    popularity_half_life
        Users the model cannot personalise (unknown users, a user's first event) get the
        most popular items *now*: positive events counted with a weight that halves every
        ``popularity_half_life`` later positive events (default 5,000; 0: all-time counts).
        On the MovieLens-100K replay a user's first event is in that top-10 0.48 of the
        time, against 0.19 with all-time counts.
    max_users
        Most users whose state is held (``limit_users``; None: no bound).
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
        max_users: int | None = None,
        **hyperparameters: Any,
    ) -> None:
        self.model_name = model
        self.seed = seed
        self.threads = threads
        self.hyperparameters = dict(hyperparameters)
        self.online_config = online or OnlineConfig(seed=seed)
        self.feedback = feedback or DEFAULT_MAPPING
        self.model_: RecModel = create(model, seed=seed, **hyperparameters)  # checks the name
        self.users_ = UserIds()
        self.items_ = Vocab()
        self.user_state_ = UserState()
        self.max_users: int | None = None
        #: called with the ids of users whose state is evicted (under the state lock: keep
        #: it quick; a durable log can later hand their events to ``restore_user``)
        self.on_evict: Callable[[list[str]], None] | None = None
        self.users_evicted_ = 0
        self.item_counts_ = np.zeros(0, np.float64)
        self.recent_ = RecentCounts(popularity_half_life)  # for users the model cannot personalise
        self.items_meta_: pd.DataFrame | None = None
        self.metadata_ = Metadata()  # item and user attributes, items' content vectors
        self.fit_report_: dict[str, Any] = {}
        self.events_applied_ = 0
        self.model_version_ = 0
        self.fitted_ = False
        self._lock = threading.RLock()  # users' state: vocabularies, histories, seen items
        self._model_lock = threading.RLock()  # parameters (taken after _lock, never before)
        self._learner: OnlineLearner | None = None
        self._retriever: Retriever | None = None
        self._similar = SimilarItems(self)
        self.limit_users(max_users)
        self.log_offset_ = 0  # the event log's offset of the last event applied
        self._durable: Durable | None = None

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
        return fit_recommender(self, df, items, users, epochs, show_progress, validation)

    def _make_learner(self) -> OnlineLearner:
        return OnlineLearner(
            self.model_,
            self.online_config,
            self._model_lock,
            sizes=lambda: (len(self.users_), len(self.items_)),
        )

    # ------------------------------------------------------------------ checks
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

    # ------------------------------------------------------------------ reading state
    def _gather(
        self, uidxs: Sequence[int]
    ) -> tuple[list[np.ndarray], list[np.ndarray], int, list[np.ndarray] | None]:
        """Copy what scoring needs of the users' state (caller holds ``_lock``): histories,
        seen items, the item count, and the histories' timestamps when the model reads them."""
        st = self.user_state_
        hist = [st.history(x) for x in uidxs]
        seen = [st.seen_unsorted(x) for x in uidxs]
        times = [st.times(x) for x in uidxs] if self.model_.uses_times else None
        return hist, seen, len(self.items_), times

    # ------------------------------------------------------------------ scoring
    def _personalised(self, arr: np.ndarray, hist: list[np.ndarray]) -> np.ndarray:
        return personalised(self.model_, arr, hist)

    def _scores(
        self,
        uidxs: Sequence[int],
        hist: list[np.ndarray],
        n_items: int,
        times: list[np.ndarray] | None = None,
        warm: np.ndarray | None = None,
    ) -> np.ndarray:
        """(len(uidxs), n_items) scores (``scoring.score_rows``)."""

        def popular() -> np.ndarray:
            return self.recent_.scores(n_items, self.item_counts_[:n_items])

        learning = self._learner is not None
        cold = self._fill_cold if self.metadata_.has_content else None
        return score_rows(
            self.model_,
            self._model_lock,
            popular,
            uidxs,
            hist,
            n_items,
            times,
            warm,
            learning,
            cold,
        )

    _top_rows = staticmethod(top_rows)

    # ------------------------------------------------------------------ recommend
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
        self,
        user_ids: Iterable[object],
        k: int = 10,
        exclude_seen: bool = True,
        *,
        exact: bool = False,
    ) -> list[list[str]]:
        """``recommend`` for many users with one scoring pass."""
        rows = self.recommend_batch_with_scores(user_ids, k, exclude_seen, exact=exact)
        return [[i for i, _ in row] for row in rows]

    def recommend_batch_with_scores(
        self,
        user_ids: Iterable[object],
        k: int = 10,
        exclude_seen: bool = True,
        *,
        exact: bool = False,
    ) -> list[list[tuple[str, float]]]:
        """``recommend_with_scores`` for many users: one model call, one top-k pass.

        Users the model personalises are answered from the retrieval index when one is
        ready (``use_retrieval``) unless ``exact``; the others are scored over every item,
        and users the model cannot personalise (unknown users among them) get recent
        popularity.
        """
        self._check_fitted()
        k = self._check_k(k)
        uids = [parse_id(x, f"user_ids[{n}]") for n, x in enumerate(user_ids)]
        with self._lock:
            uidxs = [self.users_.get(x) for x in uids]
            hist, seen, n_items, times = self._gather(uidxs)
        retriever = None if exact else self._retriever
        if retriever is None or retriever.index is None:
            scores = self._scores(uidxs, hist, n_items, times)
            tops = self._top_rows(scores, seen, k, exclude_seen)
            return [self._pairs(top, scores[r, top]) for r, top in enumerate(tops)]
        rows = retriever.recommend_rows(uidxs, hist, seen, times, n_items, k, exclude_seen)
        return [self._pairs(top, scores) for top, scores in rows]

    def _pairs(self, top: list[int], scores: np.ndarray) -> list[tuple[str, float]]:
        return [(i, float(s)) for i, s in zip(self.items_.ids(top), scores.tolist())]

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
                return click_proba(fn, uidx, iidx, b)
        scores = self._scores(uidx.tolist(), hist, n_items, times)
        return percentile_of(scores, iidx)

    # ------------------------------------------------------------------ online
    def update(self, events: Events) -> int:
        """Learn from feedback: one event, a list, or a DataFrame. Returns the number applied.

        A batch is all-or-nothing: every event is validated before any is applied. Before
        this returns, every event is in its user's history and seen items
        (read-your-writes); the parameter step follows within ``max_delay_ms``.
        """
        self._check_fitted()
        if self._durable is not None:  # logged first, then applied in log order
            return self._durable.update(events)
        cols = parse_events(events, self.feedback.types)
        with self._lock:
            self._apply(cols)
        return len(cols)

    def _apply(self, cols: EventColumns) -> None:
        """Apply validated events (caller holds ``_lock``): the one path for live events and
        for events replayed from a log."""
        apply_columns(self, cols)
        self.events_applied_ += len(cols)
        if self.max_users is not None:
            self._evict()
        if self._learner is not None:
            self._learner.added()

    def attach_log(
        self,
        log: EventLog,
        store: ModelStore | None = None,
        policy: SnapshotPolicy | None = None,
    ) -> Durable:
        """From now on ``update`` appends to ``log`` and returns once the events are durable
        and applied; snapshots go to ``store`` (see ``recloop.engine.durable``). Events already
        in the log after ``log_offset_`` are replayed first."""
        from recloop.engine.durable import Durable, replay

        self._check_fitted()
        replay(self, log)
        self._durable = Durable(self, log, store, policy)
        return self._durable

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

    def _fit_metadata(
        self, items: pd.DataFrame | None, users: pd.DataFrame | None, vocab: Vocab
    ) -> None:
        """Replace the metadata given to ``fit`` (caller holds ``_lock``); what was set
        before is kept where ``fit`` gets none. Items with attributes but no interaction
        join ``vocab``, the fit's item vocabulary."""
        old = self.metadata_
        self.metadata_ = Metadata()
        items = items if items is not None else old.items
        users = users if users is not None else old.users
        if items is not None:
            self.metadata_.put_items(items, vocab)
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

    def close(self) -> None:
        """Apply the queued parameter steps and stop the online worker thread (a later
        ``update`` starts it again)."""
        learner = self._learner
        if learner is not None:
            learner.close()

    # ------------------------------------------------------------------ retrieval
    def use_retrieval(
        self,
        threshold: int,
        *,
        nprobe: int = 48,
        threads: int = 1,
        rebuild_after: int | None = None,
    ) -> None:
        """Answer personalised users of a dot-product model from a faiss index once the
        catalogue has more than ``threshold`` items (``build_retrieval_index`` builds it).

        Candidates come from the index, their scores from the live model (see
        ``recloop.engine.retrieval``); a model whose scores are not ``user · item + bias``
        stays exact.
        """
        self._retriever = Retriever(
            self, threshold, nprobe=nprobe, threads=threads, rebuild_after=rebuild_after
        )

    def build_retrieval_index(self, background: bool = True) -> None:
        """Build (or rebuild) the retrieval index when it is wanted and missing or stale; in
        a daemon thread when ``background``."""
        if self._retriever is not None:
            self._retriever.start(background=background)

    @property
    def retrieval_status(self) -> Literal["exact", "building", "faiss"]:
        """``"faiss"`` when the index answers, ``"building"`` while it is built, else ``"exact"``."""
        return self._retriever.status if self._retriever is not None else "exact"

    def retrieval_info(self) -> dict[str, Any]:
        """The retrieval index's figures: ``status``, ``items`` (0 without an index),
        ``nlist``, ``nprobe``, ``build_seconds`` and ``disabled_reason``."""
        if self._retriever is None:
            return {"status": "exact", "items": 0, "nlist": None, "nprobe": None,
                    "build_seconds": 0.0, "disabled_reason": ""}  # fmt: skip
        return self._retriever.info()

    def similar_items(
        self, item_id: object, k: int = 10
    ) -> tuple[str, list[tuple[str, float]], Literal["cosine", "co-occurrence"]]:
        """``(item_id, [(item_id, similarity), ...], method)``: the ``k`` items most like
        ``item_id`` by cosine over the model's item vectors, else by co-occurrence in users'
        seen items. ``UnknownIdError`` for an unknown item."""
        self._check_fitted()
        return self._similar.similar(item_id, self._check_k(k))

    # ------------------------------------------------------------------ introspection
    @property
    def n_users(self) -> int:
        """Users whose state the engine holds now."""
        return self.users_.n_resident

    @property
    def n_items(self) -> int:
        return len(self.items_)

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` or ``load`` has run."""
        return self.fitted_

    @property
    def model_version(self) -> int:
        """Bumped by every fit (a snapshot keeps it)."""
        return self.model_version_

    @property
    def events_applied(self) -> int:
        """Online events applied since the fit."""
        return self.events_applied_

    @property
    def log_offset(self) -> int:
        """The event log's offset of the last event applied (0 without a log)."""
        return self.log_offset_

    @property
    def sequences_(self) -> Sequence[list[int]]:
        """Per user (index ``u``), the positive items in time order (read-only view)."""
        return Rows(self.user_state_, "history")

    @property
    def times_(self) -> Sequence[list[float]]:
        """Per user, the timestamp of each item of ``sequences_`` (read-only view)."""
        return Rows(self.user_state_, "times")

    @property
    def seen_(self) -> Sequence[list[int]]:
        """Per user, every item interacted with (read-only view)."""
        return Rows(self.user_state_, "seen")

    def history(self, user_id: object) -> list[str]:
        """``user_id``'s positive items in time order (empty for an unknown user)."""
        uid = parse_id(user_id, "user_id")
        with self._lock:
            uidx = self.users_.get(uid)
            return self.items_.ids(self.user_state_.history(uidx).tolist())

    def user_state(self, user_id: object) -> UserView:
        """A copy of ``user_id``'s state (empty for an unknown user)."""
        uid = parse_id(user_id, "user_id")
        with self._lock:
            uidx = self.users_.get(uid)
            st = self.user_state_
            return UserView(
                uid,
                self.items_.ids(st.history(uidx).tolist()),
                st.times(uidx).tolist(),
                self.items_.ids(np.sort(st.seen(uidx)).tolist()),
            )

    def learner_status(self) -> LearnerStatus:
        """The online learner's queue and step figures."""
        learner = self._learner
        if learner is None:
            return LearnerStatus(False, 0, 0, [])
        return LearnerStatus(
            learner.config.enabled, learner.pending(), learner.steps, list(learner.step_ms)
        )

    def update_latency_ms(self) -> list[float]:
        """Latency of the recent online parameter steps (ms), oldest first."""
        return self.learner_status().step_ms

    # ------------------------------------------------------------------ memory
    def limit_users(self, max_users: int | None) -> None:
        """Hold at most ``max_users`` users' state (None: no bound).

        Past the bound, ``update`` evicts the least recently active users: their history,
        timestamps and seen items are dropped, their id forgotten, ``on_evict`` called with
        their ids, and the model forgets what it learned for their rows
        (``RecModel.forget_users``). An evicted user who comes back starts as a new user,
        unless their events are handed to ``restore_user`` first.
        """
        if max_users is not None and (
            isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1
        ):
            raise ConfigError(f"max_users must be a positive integer or None, got {max_users!r}")
        with self._lock:
            self.max_users = max_users
            if self.fitted_:
                self._evict()

    def _evict(self) -> None:
        evict_least_active(self)

    def restore_user(self, user_id: object, events: Events) -> int:
        """Rebuild ``user_id``'s state from their past events (an evicted user's, read back
        from a durable log): their history, timestamps and seen items become exactly these
        events', in order. Nothing is learned, counted or queued: these events were applied
        once already. Returns the number of events."""
        self._check_fitted()
        uid = parse_id(user_id, "user_id")
        cols = parse_events(events, self.feedback.types)
        wrong = next((x for x in cols.user_ids if x != uid), None)
        if wrong is not None:
            raise InvalidInputError("events", f"are all {uid!r}'s to restore, got one of {wrong!r}")
        with self._lock:
            restore_columns(self, uid, cols)
            self._evict()
        return len(cols)

    def memory_status(self) -> dict[str, int]:
        """``users_resident``, ``users_evicted`` (since the fit or load), ``user_rows`` (the
        rows tables are sized to) and ``state_bytes``: the engine's per-user and per-item
        arrays (not the id dictionaries, nor the model's tables)."""
        with self._lock:
            return {
                "users_resident": self.users_.n_resident,
                "users_evicted": self.users_evicted_,
                "user_rows": len(self.users_),
                "state_bytes": self.user_state_.nbytes()
                + self.item_counts_.nbytes
                + self.recent_.values.nbytes,
            }

    def knows_user(self, user_id: object) -> bool:
        """Whether ``user_id`` has a row (it was in the fit or has sent an event)."""
        return parse_id(user_id, "user_id") in self.users_

    def knows_item(self, item_id: object) -> bool:
        """Whether ``item_id`` has a row."""
        return parse_id(item_id, "item_id") in self.items_

    def user_ids(self) -> list[str]:
        """Every user id, in the order the engine first saw them (a copy)."""
        with self._lock:
            return self.users_.to_list()

    def item_table(self) -> pd.DataFrame | None:
        """The item table given to ``fit(items=...)`` (indexed by ``item_id``: ``title``,
        ``genres``...), or ``None``."""
        return self.items_meta_

    def users_with_item(self, item_id: object, limit: int = 20) -> list[str]:
        """Up to ``limit`` users who interacted with ``item_id`` (positively or not), in the
        order the engine first saw them; empty for an unknown item.

        The scan takes the state lock one block of users at a time, so ``update`` waits for
        at most one block.
        """
        iidx = self.items_.get(parse_id(item_id, "item_id"))
        out: list[str] = []
        if iidx < 0 or limit < 1:
            return out
        block = 50_000
        start = 0
        while len(out) < limit:
            with self._lock:
                state = self.user_state_
                stop = min(start + block, len(state))
                hits = [u for u in range(start, stop) if iidx in state.seen_unsorted(u)]
                out.extend(self.users_.ids(hits[: limit - len(out)]))
            if stop - start < block:
                break
            start = stop
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write a snapshot folder (``meta.json`` + ``state.pt``), atomically replacing ``path``."""
        self._check_fitted()
        with self._lock, self._model_lock:
            if self._learner is not None:
                self._learner.flush()
            self.model_.grow(len(self.users_), len(self.items_))
            meta, state = persist.snapshot_of(self)
        return persist.write_snapshot(Path(path), meta, state, self._save_metadata)

    def _save_metadata(self, folder: Path) -> None:
        with self._lock:
            self.metadata_.save(folder)

    @classmethod
    def load(cls, path: str | Path, *, max_users: int | None = None) -> Recommender:
        """Load a snapshot written by ``save`` (tensors only: safe ``weights_only`` loading),
        holding at most ``max_users`` users' state from now on (``limit_users``)."""
        meta, state = persist.read_snapshot(Path(path))
        settings = persist.settings_of(meta)
        rec = cls(settings.pop("model"), max_users=max_users, **settings)
        persist.restore(rec, meta, state)
        rec.metadata_.load(Path(path), rec.items_)
        rec.items_meta_ = rec.metadata_.items
        attach_content(rec.model_, rec.metadata_, len(rec.items_))
        rec.fitted_ = True
        rec._learner = rec._make_learner()
        return rec
