"""Online events in: what ``Recommender.update`` accepts, validated into columns and signals,
and applied to the engine's state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from recloop.errors import InvalidInputError
from recloop.events import (
    Event,
    EventColumns,
    FeedbackMapping,
    parse_event,
    parse_event_columns,
)

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender

#: what ``Recommender.update`` accepts
Events = Event | Mapping[str, Any] | Sequence[Mapping[str, Any] | Event] | pd.DataFrame


def parse_events(events: Any, types: Sequence[str]) -> EventColumns:
    """Validate one event, a list of events or a DataFrame into columns (all or nothing)."""
    if isinstance(events, Event):
        return columns_of([events])
    if isinstance(events, pd.DataFrame):
        records = events.to_dict("records")
        if events.isna().to_numpy().any():
            # an empty cell (NaN) means "not given": value defaults to 1.0, timestamp to now
            records = [
                {k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
                for r in records
            ]
        return parse_event_columns(cast(list[Mapping[str, Any]], records), types)
    if isinstance(events, Mapping):
        return columns_of([parse_event(events, types)])
    if isinstance(events, (list, tuple)):
        return parse_event_columns(events, types)
    raise InvalidInputError(
        "events",
        f"must be an event, a list of events or a DataFrame, got {type(events).__name__}",
    )


def columns_of(events: Sequence[Event]) -> EventColumns:
    out = EventColumns([], [], [], [], [])
    for ev in events:
        out.append(ev)
    return out


def signals(cols: EventColumns, fb: FeedbackMapping) -> tuple[list[float], list[float], list[bool]]:
    """Per event: the learner's label and weight, and whether it is a positive interaction
    (history, popularity). Raises before anything is applied if a type is unknown."""
    if type(fb) is not FeedbackMapping:  # a subclass may weigh events its own way: ask per event
        labels, weights, positive = [], [], []
        for ev in cols.events():
            sig = fb.signal(ev)
            p = fb.is_positive(ev)
            labels.append(1.0 if p and sig.label > 0.5 else (1.0 if ev.type == "rating" else 0.0))
            weights.append(sig.weight)
            positive.append(p)
        return labels, weights, positive
    # the mapping's signal depends on the type only, except for a rating (its value)
    table: dict[str, tuple[float, float, bool]] = {}
    for t in set(cols.types):
        if t != "rating":
            sig = fb.signals.get(t) or fb.signal(Event("", "", t))  # an unknown type raises here
            table[t] = (1.0 if sig.label > 0.5 else 0.0, sig.weight, sig.label > 0.5)
    rows = [table.get(t) for t in cols.types]
    if "rating" in cols.types:
        rows = [
            r if r is not None else (1.0, fb.signal(Event("", "", "rating", v)).weight, True)
            for r, v in zip(rows, cols.values)
        ]
    if not rows:
        return [], [], []
    labels_t, weights_t, positive_t = zip(*rows)
    return list(labels_t), list(weights_t), list(positive_t)


def apply_columns(rec: Recommender, cols: EventColumns) -> None:
    """Apply validated events in order (the caller holds ``rec``'s state lock): vocabularies,
    histories, seen items, popularity; then queue them for the learner in one call."""
    if len(cols) == 0:
        return
    labels, weights, positive = signals(cols, rec.feedback)  # raises before any change
    uadd, iadd = rec.users_.add, rec.items_.add
    uidx = [uadd(x) for x in cols.user_ids]
    iidx = [iadd(x) for x in cols.item_ids]
    rec.user_state_.ensure(len(rec.users_))
    grow_counts(rec)
    learner = rec._learner
    learning = learner is not None and learner.config.enabled
    # each event's history is its user's sequence before it, read at step time
    hist, ends = rec.user_state_.append(uidx, iidx, positive, cols.timestamps, learning)
    liked = [i for i, p in zip(iidx, positive) if p]
    rec.recent_.add(liked)
    if len(liked) > 8:
        np.add.at(rec.item_counts_, liked, 1.0)
    else:
        counts = rec.item_counts_
        for i in liked:
            counts[i] += 1.0
    if learner is not None and learning:
        learner.add_many(uidx, iidx, labels, weights, hist, ends)


def grow_counts(rec: Recommender) -> None:
    """Make room in the item counts for every item in the vocabulary."""
    n_items = len(rec.items_)
    if n_items > len(rec.item_counts_):  # geometric growth: items a few at a time stay linear
        grown = np.zeros(max(2 * len(rec.item_counts_), n_items, 64))
        grown[: len(rec.item_counts_)] = rec.item_counts_
        rec.item_counts_ = grown
