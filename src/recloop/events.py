"""The ``Event`` schema, its validation, and the mapping from event to feedback signal.

An event is one piece of user feedback: a view, click, rating, purchase, skip...
``parse_event`` turns untrusted input (a dict from JSON, a DataFrame row) into an
``Event`` or raises ``InvalidInputError`` naming the field, the value and what is allowed.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from recloop.errors import InvalidInputError

MAX_ID_LENGTH = 256
DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "view", "click", "add_to_cart", "purchase", "rating", "skip", "dislike",
)
# Earliest and latest accepted timestamps (1970 .. 2100): anything else is a unit mistake.
MIN_TIMESTAMP = 0.0
MAX_TIMESTAMP = 4_102_444_800.0


@dataclass(frozen=True, slots=True)
class Event:
    """One piece of feedback from ``user_id`` about ``item_id``.

    ``timestamp`` is in epoch seconds; ``value`` is a finite float (a rating, a watch
    fraction, 1.0 when the kind of event says it all).
    """

    user_id: str
    item_id: str
    type: str = "click"
    value: float = 1.0
    timestamp: float = 0.0
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """What an event teaches the model: a label in [0, 1] and a weight >= 0."""

    label: float
    weight: float


@dataclass(frozen=True)
class FeedbackMapping:
    """Maps an event to the feedback signal a model learns from.

    The design document's "real-time feedback signal": a purchase is a strong
    positive, a view a weak one, a skip a negative. A rating is a positive when
    its value reaches ``rating_threshold``, a negative otherwise, weighted by its
    distance from the threshold.
    """

    signals: Mapping[str, Signal] = field(default_factory=lambda: {
        "view": Signal(1.0, 0.5),
        "click": Signal(1.0, 1.0),
        "add_to_cart": Signal(1.0, 2.0),
        "purchase": Signal(1.0, 3.0),
        "rating": Signal(1.0, 1.0),
        "skip": Signal(0.0, 0.5),
        "dislike": Signal(0.0, 1.0),
    })
    rating_threshold: float = 3.5

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.signals)

    def with_types(self, extra: Mapping[str, Signal]) -> FeedbackMapping:
        """A copy that also knows the event types in ``extra``."""
        return FeedbackMapping({**self.signals, **extra}, self.rating_threshold)

    def signal(self, event: Event) -> Signal:
        base = self.signals.get(event.type)
        if base is None:
            raise InvalidInputError("type", f"unknown event type {event.type!r}; allowed: {', '.join(self.signals)}")
        if event.type == "rating":
            positive = event.value >= self.rating_threshold
            return Signal(1.0 if positive else 0.0, base.weight * (1.0 + abs(event.value - self.rating_threshold)) / 2)
        return base

    def is_positive(self, event: Event) -> bool:
        """Whether the event counts as an interaction the user wanted (history, seen items)."""
        return self.signal(event).label > 0.5 or event.type == "rating"


DEFAULT_MAPPING = FeedbackMapping()


def parse_id(value: object, field_name: str) -> str:
    """Validate an external id: a non-empty string of at most 256 characters, or an int."""
    if isinstance(value, bool):
        raise InvalidInputError(field_name, f"must be a string or an integer, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        raise InvalidInputError(field_name, f"must be a string or an integer, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(field_name, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(field_name, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    return value


def parse_timestamp(value: object, field_name: str = "timestamp") -> float:
    """Epoch seconds (int/float, or a numeric string) or an ISO-8601 string -> epoch seconds."""
    if value is None:
        return time.time()
    if isinstance(value, bool):
        raise InvalidInputError(field_name, f"must be epoch seconds or ISO-8601, got {value!r}")
    if isinstance(value, datetime):
        ts = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    elif isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        try:
            ts = float(value)
        except ValueError:
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInputError(field_name, f"must be epoch seconds or ISO-8601, got {value!r}") from None
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise InvalidInputError(field_name, f"must be epoch seconds or ISO-8601, got {type(value).__name__}")
    if not math.isfinite(ts) or not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
        raise InvalidInputError(field_name, f"must be between 1970 and 2100 in epoch seconds, got {value!r}")
    return ts


def parse_value(value: object, field_name: str = "value") -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(field_name, f"must be a finite number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInputError(field_name, f"must be a finite number, got {value!r}")
    return v


_ALLOWED_KEYS = frozenset({"user_id", "item_id", "type", "event", "value", "timestamp", "context"})


def parse_event(obj: Mapping[str, Any], types: Iterable[str] = DEFAULT_EVENT_TYPES, prefix: str = "") -> Event:
    """Validate one event given as a mapping and return it as an ``Event``.

    The kind of event may be given as ``type`` or ``event``; ``value`` defaults to 1.0,
    ``timestamp`` to now. Unknown keys are refused so that typos do not pass silently.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInputError(prefix or "event", f"must be an object, got {type(obj).__name__}")
    unknown = set(obj) - _ALLOWED_KEYS
    if unknown:
        raise InvalidInputError(prefix + sorted(unknown)[0], f"unknown field; allowed: {', '.join(sorted(_ALLOWED_KEYS))}")
    for key in ("user_id", "item_id"):
        if key not in obj or obj[key] is None:
            raise InvalidInputError(prefix + key, "is required")
    kind = obj.get("type", obj.get("event"))
    allowed = tuple(types)
    if kind is None:
        kind = "click"
    if not isinstance(kind, str) or kind not in allowed:
        raise InvalidInputError(prefix + "type", f"must be one of {', '.join(allowed)}, got {kind!r}")
    context = obj.get("context")
    if context is not None and not isinstance(context, Mapping):
        raise InvalidInputError(prefix + "context", f"must be an object, got {type(context).__name__}")
    return Event(
        user_id=parse_id(obj["user_id"], prefix + "user_id"),
        item_id=parse_id(obj["item_id"], prefix + "item_id"),
        type=kind,
        value=parse_value(obj.get("value"), prefix + "value"),
        timestamp=parse_timestamp(obj.get("timestamp"), prefix + "timestamp"),
        context=dict(context) if context is not None else None,
    )


def parse_events(objs: Iterable[Mapping[str, Any]], types: Iterable[str] = DEFAULT_EVENT_TYPES) -> list[Event]:
    allowed = tuple(types)
    return [parse_event(o, allowed, prefix=f"events[{i}].") for i, o in enumerate(objs)]
