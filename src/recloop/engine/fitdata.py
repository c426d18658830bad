"""From a fit's DataFrame to index space: the model's ``TrainData`` and the users' state.

``build_fit_data`` is the offline half of ``Recommender.fit``: it assigns vocabulary rows,
turns event types into labels and weights, builds each user's positive sequence (with its
timestamps) and seen items, and holds out each user's last positive for early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recloop.data.vocab import Vocab
from recloop.engine.userids import UserIds
from recloop.errors import InvalidInputError
from recloop.events import Event, FeedbackMapping
from recloop.models import TrainData

#: items of history kept with each replay-reservoir entry seeded from the fit
RESERVOIR_HISTORY = 50


@dataclass
class FitData:
    """What a fit builds: the model's training data and the engine's per-user state.

    Attributes
    ----------
    train : the model's ``TrainData`` (validation rows removed from it)
    users, items : the vocabularies, in order of first appearance
    sequences, times : per user, positive items in time order and their timestamps
    seen : per user, every item interacted with (sorted, unique)
    positive_users, positive_items : (p,) the positive events in time order
    positive_rank : (p,) each positive event's position in its user's sequence
    """

    train: TrainData
    users: UserIds
    items: Vocab
    sequences: list[np.ndarray]
    times: list[np.ndarray]
    seen: list[np.ndarray]
    positive_users: np.ndarray
    positive_items: np.ndarray
    positive_rank: np.ndarray


def labels_and_weights(
    types: np.ndarray, values: np.ndarray, feedback: FeedbackMapping
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) float32 labels (1 positive, 0 negative) and weights of events by type and value."""
    label = np.empty(len(types), np.float32)
    weight = np.empty(len(types), np.float32)
    for t in np.unique(types):
        m = types == t
        if t == "rating":
            label[m] = 1.0  # every rating is an interaction; its value weighs it
            weight[m] = [
                feedback.signal(Event("u", "i", "rating", float(v))).weight for v in values[m]
            ]
        else:
            s = feedback.signal(Event("u", "i", str(t)))
            label[m], weight[m] = (1.0 if s.label > 0.5 else 0.0), s.weight
    return label, weight


def _split(values: np.ndarray, owner: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """``values`` grouped by ``owner`` (stable: each group keeps the input order)."""
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n_groups + 1))
    ordered = values[order]
    return [ordered[bounds[g] : bounds[g + 1]] for g in range(n_groups)]


def build_fit_data(inter: pd.DataFrame, feedback: FeedbackMapping, validation: bool) -> FitData:
    """Index ``inter`` (``as_interactions`` output, sorted by time) for a fit.

    Raises ``InvalidInputError`` for an empty frame or an event type ``feedback`` does not
    know. With ``validation``, each user with at least 3 positives has the last one held
    out of ``train`` (``train.valid_user_idx`` / ``valid_item_idx``); it stays in the
    user's sequence and seen items.
    """
    if len(inter) == 0:
        raise InvalidInputError("df", "has no rows")
    unknown = set(inter["type"].unique()) - set(feedback.types)
    if unknown:
        raise InvalidInputError(
            "type", f"unknown event types {sorted(unknown)}; allowed: {', '.join(feedback.types)}"
        )
    users, items = UserIds(), Vocab()
    u = users.add_many(inter["user_id"].to_numpy())
    i = items.add_many(inter["item_id"].to_numpy())
    values = inter["value"].to_numpy(dtype=np.float64)
    label, weight = labels_and_weights(inter["type"].to_numpy(), values, feedback)
    n_users, n_items = len(users), len(items)
    stamps = inter["timestamp"].to_numpy()
    pos = np.flatnonzero(label > 0.5)
    sequences = _split(i[pos], u[pos], n_users)
    times = _split(stamps[pos].astype(np.float64), u[pos], n_users)
    seen = [np.unique(s) for s in _split(i, u, n_users)]
    lengths = np.bincount(u[pos], minlength=n_users)
    # each positive event's position in its user's sequence
    order = np.argsort(u[pos], kind="stable")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank = np.empty(len(pos), np.int64)
    rank[order] = np.arange(len(pos)) - np.repeat(starts, lengths)

    keep = np.ones(len(inter), bool)
    train_seqs = list(sequences)
    vu = np.zeros(0, np.int64)
    vi = np.zeros(0, np.int64)
    if validation and len(pos):
        last = np.full(n_users, -1, np.int64)
        last[u[pos]] = pos  # later rows overwrite earlier ones: each user's last positive row
        vu = np.flatnonzero((last >= 0) & (lengths >= 3))
        rows = last[vu]
        keep[rows] = False
        vi = i[rows]
        for uu in vu.tolist():
            train_seqs[uu] = sequences[uu][:-1]
    train = TrainData(
        n_users=n_users,
        n_items=n_items,
        user_idx=u[keep],
        item_idx=i[keep],
        timestamp=inter["timestamp"].to_numpy(np.int64)[keep],
        label=label[keep],
        weight=weight[keep],
        value=values[keep].astype(np.float32),
        sequences=[np.asarray(s, np.int64) for s in train_seqs],
        valid_user_idx=vu.astype(np.int64),
        valid_item_idx=vi.astype(np.int64),
    )
    return FitData(
        train=train,
        users=users,
        items=items,
        sequences=[np.asarray(s, np.int64) for s in sequences],
        times=times,
        seen=seen,
        positive_users=u[pos],
        positive_items=i[pos],
        positive_rank=rank,
    )
