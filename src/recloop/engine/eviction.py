"""Eviction past ``max_users`` and the restoring of an evicted user's state.

``evict_least_active`` runs at the end of ``Recommender.update`` (under the state lock)
when more than ``max_users`` users are resident; ``restore_columns`` is what
``Recommender.restore_user`` applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recloop.engine.ingest import grow_counts, signals
from recloop.events import EventColumns

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender


def evict_least_active(rec: Recommender) -> None:
    """Evict the least recently active users past ``rec.max_users`` (the caller holds the
    state lock).

    A 1/64 of the bound more than the excess goes at once, so eviction runs once per many
    new users rather than once per user. Evicted users' ids leave the vocabulary, their
    state is cleared, their rows are freed (the fit's rows are never reused), the model
    forgets those rows (``RecModel.forget_users``) and ``rec.on_evict`` gets their ids.
    """
    bound = rec.max_users
    excess = 0 if bound is None else rec.users_.n_resident - bound
    if bound is None or excess <= 0:
        return
    rows = rec.user_state_.least_active(0, min(excess + bound // 64, rec.users_.n_resident))
    if not len(rows):
        return
    ids = rec.users_.remove(rows)
    rec.user_state_.clear(rows)
    rec.users_evicted_ += len(ids)
    with rec._model_lock:
        rec.model_.forget_users(rows[rows < rec.model_.n_users_])
    if rec.on_evict is not None:
        rec.on_evict(ids)


def restore_columns(rec: Recommender, user_id: str, cols: EventColumns) -> None:
    """Make ``cols`` (events of ``user_id`` only) the user's whole state (the caller holds
    ``rec``'s state lock): no popularity, counters or learner."""
    _, _, positive = signals(cols, rec.feedback)
    u = rec.users_.add(user_id)
    iidx = [rec.items_.add(x) for x in cols.item_ids]
    rec.user_state_.ensure(len(rec.users_))
    grow_counts(rec)
    rec.user_state_.clear(np.array([u], np.int64))
    rec.user_state_.append([u] * len(iidx), iidx, positive, cols.timestamps, False)
