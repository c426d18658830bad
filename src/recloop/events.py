"""The ``Event`` schema, its validation, and the mapping from event to feedback signal.

An event is one piece of user feedback: a view, click, rating, purchase, skip...
``parse_event`` turns untrusted input (a dict from JSON, a DataFrame row) into an
``Event`` or raises ``InvalidInputError`` naming the field, the value and what is allowed;
it never raises any other exception type, whatever it is given.

The module is longer than most because the single-event parser and the column-wise batch
parser (``parse_event_columns``, the hot path of ``update``) must give the same errors for
the same input; keeping both beside the schema they check is what keeps them in step.

Examples
--------
>>> e = parse_event({"user_id": 7, "item_id": "i1", "type": "rating", "value": 4,
...                  "timestamp": "2024-01-01T00:00:00Z"})
>>> e.user_id, e.value, e.timestamp
('7', 4.0, 1704067200.0)
>>> DEFAULT_MAPPING.signal(e)
Signal(label=1.0, weight=1.1428571428571428)
>>> parse_event({"user_id": "", "item_id": "i1"})
Traceback (most recent call last):
...
recloop.errors.InvalidInputError: user_id: must be a non-empty string of at most 256 characters or an integer, got ''
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from recloop.errors import ConfigError, InvalidInputError

MAX_ID_LENGTH = 256
DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "view",
    "click",
    "add_to_cart",
    "purchase",
    "rating",
    "skip",
    "dislike",
)
# Earliest and latest accepted timestamps (1970 .. 2100): anything else is a unit mistake.
MIN_TIMESTAMP = 0.0
MAX_TIMESTAMP = 4_102_444_800.0
MAX_TYPE_LENGTH = 64
_MAX_CONTEXT_DEPTH = 8
_ID_RULE = f"a non-empty string of at most {MAX_ID_LENGTH} characters or an integer"
_TS_RULE = "epoch seconds or an ISO-8601 date-time between 1970 and 2100"


def _show(value: object, limit: int = 60) -> str:
    """``repr`` of a bad value, shortened so that an error message stays one short line."""
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
            text = f"an integer of {value.bit_length()} bits"
        else:
            text = repr(value)
    except Exception:  # a hostile __repr__ must not turn into another error type
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Event:
    """One piece of feedback from ``user_id`` about ``item_id``.

    ``timestamp`` is in epoch seconds; ``value`` is a finite float (a rating, a watch
    fraction, 1.0 when the kind of event says it all). Building an ``Event`` directly
    does not validate: use ``parse_event`` on untrusted input.
    """

    user_id: str
    item_id: str
    type: str = "click"
    value: float = 1.0
    timestamp: float = 0.0
    context: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict that ``parse_event`` reads back to an equal event."""
        out: dict[str, Any] = {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "type": self.type,
            "value": self.value,
            "timestamp": self.timestamp,
        }
        if self.context is not None:
            out["context"] = dict(self.context)
        return out


@dataclass(frozen=True, slots=True)
class Signal:
    """What an event teaches the model: a label in [0, 1] and a weight >= 0."""

    label: float
    weight: float

    def __post_init__(self) -> None:
        if not (isinstance(self.label, numbers.Real) and 0.0 <= float(self.label) <= 1.0):
            raise ConfigError(f"signal label must be a number in [0, 1], got {_show(self.label)}")
        if not (
            isinstance(self.weight, numbers.Real)
            and math.isfinite(float(self.weight))
            and self.weight >= 0
        ):
            raise ConfigError(
                f"signal weight must be a finite number >= 0, got {_show(self.weight)}"
            )


def _default_signals() -> dict[str, Signal]:
    return {
        "view": Signal(1.0, 0.5),
        "click": Signal(1.0, 1.0),
        "add_to_cart": Signal(1.0, 2.0),
        "purchase": Signal(1.0, 3.0),
        "rating": Signal(1.0, 1.0),
        "skip": Signal(0.0, 0.5),
        "dislike": Signal(0.0, 1.0),
    }


@dataclass(frozen=True)
class FeedbackMapping:
    """Maps an event to the feedback signal a model learns from.

    The design document's "real-time feedback signal": a purchase is a strong
    positive, a view a weak one, a skip a negative. A rating is a positive when
    its value reaches ``rating_threshold``, a negative otherwise, weighted by
    ``value / rating_threshold`` (a 5 weighs more than a 4). For ranking, every rating
    still counts as an interaction (``is_positive``): the user chose to watch it. Extra event types (registered in settings) are
    added with ``with_types`` or ``from_dict``.
    """

    signals: Mapping[str, Signal] = field(default_factory=_default_signals)
    rating_threshold: float = 3.5

    def __post_init__(self) -> None:
        for name, sig in self.signals.items():
            _check_type_name(name)
            if not isinstance(sig, Signal):
                raise ConfigError(
                    f"signal for event type {name!r} must be a Signal, got {type(sig).__name__}"
                )
        if not (
            isinstance(self.rating_threshold, numbers.Real)
            and math.isfinite(float(self.rating_threshold))
        ):
            raise ConfigError(
                f"rating_threshold must be a finite number, got {_show(self.rating_threshold)}"
            )

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.signals)

    def with_types(self, extra: Mapping[str, Signal]) -> FeedbackMapping:
        """A copy that also knows the event types in ``extra`` (overriding same-named ones)."""
        return FeedbackMapping({**self.signals, **extra}, self.rating_threshold)

    @classmethod
    def from_dict(
        cls,
        spec: Mapping[str, Any],
        rating_threshold: float = 3.5,
        base: FeedbackMapping | None = None,
    ) -> FeedbackMapping:
        """Build a mapping from settings: ``{"like": {"label": 1, "weight": 2}, "hide": [0, 1]}``.

        The types are added to ``base`` (default: the built-in types).

        >>> FeedbackMapping.from_dict({"like": {"label": 1, "weight": 2}}).signals["like"]
        Signal(label=1.0, weight=2.0)
        """
        extra: dict[str, Signal] = {}
        for name, raw in spec.items():
            if isinstance(raw, Signal):
                extra[name] = raw
            elif isinstance(raw, Mapping) and set(raw) <= {"label", "weight"} and "label" in raw:
                extra[name] = Signal(
                    _config_number(raw["label"], name), _config_number(raw.get("weight", 1.0), name)
                )
            elif isinstance(raw, (list, tuple)) and len(raw) == 2:
                extra[name] = Signal(_config_number(raw[0], name), _config_number(raw[1], name))
            else:
                raise ConfigError(
                    f"event type {name!r} must map to {{'label': L, 'weight': W}} or [L, W], got {_show(raw)}"
                )
        start = base if base is not None else cls(rating_threshold=rating_threshold)
        return FeedbackMapping({**start.signals, **extra}, rating_threshold)

    def signal(self, event: Event) -> Signal:
        base = self.signals.get(event.type)
        if base is None:
            raise InvalidInputError(
                "type", f"must be one of {', '.join(self.signals)}, got {_show(event.type)}"
            )
        if event.type == "rating":
            positive = event.value >= self.rating_threshold
            # the higher the rating, the stronger the evidence of interest (5 on a 1-5 scale: 1.43x)
            weight = base.weight * min(max(event.value / self.rating_threshold, 0.1), 10.0)
            return Signal(1.0 if positive else 0.0, weight)
        return base

    def is_positive(self, event: Event) -> bool:
        """Whether the event counts as an interaction the user wanted (history, seen items)."""
        return self.signal(event).label > 0.5 or event.type == "rating"


def _config_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"event type {name!r}: label and weight must be numbers, got {_show(value)}"
        )
    return float(value)


def _check_type_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TYPE_LENGTH:
        raise ConfigError(
            f"event type names must be non-empty strings of at most {MAX_TYPE_LENGTH} characters, got {_show(name)}"
        )


DEFAULT_MAPPING = FeedbackMapping()


def parse_id(value: object, field_name: str) -> str:
    """Validate an external id: a non-empty string of at most 256 characters, or an int.

    Integers (Python or numpy) and integral floats (``5.0``, as pandas gives for an int
    column with a gap) become their decimal string, so ``5`` and ``"5"`` are one id.
    """
    if (
        type(value) is str and 0 < len(value) <= MAX_ID_LENGTH and not value.isspace()
    ):  # the common case
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise InvalidInputError(field_name, f"must be {_ID_RULE}, got {_show(value)}")
    text: str
    if isinstance(value, str):
        text = value
    elif isinstance(value, numbers.Integral):
        if int(value).bit_length() > 900:  # > 256 digits, and str() of it may refuse
            raise InvalidInputError(field_name, f"must be {_ID_RULE}, got {_show(value)}")
        text = str(int(value))
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        text = str(int(value))
    else:
        raise InvalidInputError(field_name, f"must be {_ID_RULE}, got {_show(value)}")
    if not text.strip() or len(text) > MAX_ID_LENGTH:
        raise InvalidInputError(
            field_name,
            f"must be {_ID_RULE}, got {_show(text)}"
            + (f" ({len(text)} characters)" if len(text) > MAX_ID_LENGTH else ""),
        )
    return text


def parse_timestamp(value: object, field_name: str = "timestamp") -> float:
    """Epoch seconds (a number, or a numeric string) or an ISO-8601 string -> epoch seconds.

    ``None`` means now. A datetime without a time zone is taken as UTC.
    """
    if value is None:
        return time.time()
    if type(value) is float or (type(value) is int and -(2**53) < value < 2**53):  # the common case
        fast = float(value)
        if MIN_TIMESTAMP <= fast <= MAX_TIMESTAMP:
            return fast
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise InvalidInputError(field_name, f"must be {_TS_RULE}, got {_show(value)}")
    ts: float
    try:
        if isinstance(value, datetime):
            ts = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
        elif isinstance(value, numbers.Real):
            ts = float(value)
        elif isinstance(value, str):
            text = value.strip()
            try:
                ts = float(text)
            except ValueError:
                dt = datetime.fromisoformat(
                    text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
                )
                ts = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
        else:
            raise InvalidInputError(
                field_name, f"must be {_TS_RULE}, got {type(value).__name__} {_show(value)}"
            )
    except (ValueError, OverflowError, OSError, TypeError):
        # unparseable text, a year beyond datetime's range, NaT, an int too large for a float
        raise InvalidInputError(field_name, f"must be {_TS_RULE}, got {_show(value)}") from None
    if not math.isfinite(ts) or not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
        raise InvalidInputError(field_name, f"must be {_TS_RULE}, got {_show(value)}")
    return ts


def parse_value(value: object, field_name: str = "value") -> float:
    """A finite number (int, float or numpy scalar) -> float; ``None`` means 1.0."""
    if value is None:
        return 1.0
    if type(value) is float and math.isfinite(value):  # the common case
        return value
    if (
        isinstance(value, bool)
        or type(value).__name__ == "bool_"
        or not isinstance(value, numbers.Real)
    ):
        raise InvalidInputError(field_name, f"must be a finite number, got {_show(value)}")
    try:
        v = float(value)
    except (OverflowError, ValueError, TypeError):
        raise InvalidInputError(
            field_name, f"must be a finite number, got {_show(value)}"
        ) from None
    if not math.isfinite(v):
        raise InvalidInputError(field_name, f"must be a finite number, got {_show(value)}")
    return v


def parse_type(
    value: object,
    types: Iterable[str] | FeedbackMapping = DEFAULT_EVENT_TYPES,
    field_name: str = "type",
) -> str:
    """An event type: one of ``types`` (the built-in ones, or a mapping's, settings' extra types included)."""
    allowed = types.types if isinstance(types, FeedbackMapping) else tuple(types)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(
            field_name, f"must be one of {', '.join(allowed)}, got {_show(value)}"
        )
    return value


def _check_context(value: object, path: str, depth: int = 0) -> None:
    """Context must be JSON-like (it is stored in the event log): str keys, scalars, lists, objects."""
    if depth > _MAX_CONTEXT_DEPTH:
        raise InvalidInputError(path, f"nests deeper than {_MAX_CONTEXT_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(path, f"must be a finite number, got {_show(value)}")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(path, f"keys must be strings, got {_show(key)}")
            _check_context(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            _check_context(item, f"{path}[{n}]", depth + 1)
        return
    raise InvalidInputError(
        path,
        f"must hold only strings, numbers, booleans, null, lists and objects, got {type(value).__name__}",
    )


def _field_name(key: object) -> str:
    """An unknown key as it goes into an error: itself when short and printable, else its repr."""
    text = str(key) if isinstance(key, (str, int)) and not isinstance(key, bool) else ""
    return text if text and text.isprintable() and len(text) <= 64 else _show(key, 64)


_ALLOWED_KEYS = frozenset({"user_id", "item_id", "type", "event", "value", "timestamp", "context"})


def parse_event(
    obj: Mapping[str, Any],
    types: Iterable[str] | FeedbackMapping = DEFAULT_EVENT_TYPES,
    prefix: str = "",
) -> Event:
    """Validate one event given as a mapping and return it as an ``Event``.

    Parameters
    ----------
    obj
        ``user_id``, ``item_id`` (required); ``type`` (or ``event``, default ``click``);
        ``value`` (default 1.0); ``timestamp`` (default now); ``context`` (a JSON-like object).
        Unknown keys are refused so that typos do not pass silently.
    types
        The allowed event types, or a ``FeedbackMapping`` whose types are allowed.
    prefix
        Put before field names in errors (``"events[3]."``).

    Raises
    ------
    InvalidInputError
        Whatever is wrong with ``obj``; its ``field`` names the offending field.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInputError(
            prefix.rstrip(".") or "event", f"must be an object, got {type(obj).__name__}"
        )
    unknown = [k for k in obj if k not in _ALLOWED_KEYS]
    if unknown:
        names = sorted(_field_name(k) for k in unknown)
        raise InvalidInputError(
            prefix + names[0], f"unknown field; allowed: {', '.join(sorted(_ALLOWED_KEYS))}"
        )
    for key in ("user_id", "item_id"):
        if obj.get(key) is None:
            raise InvalidInputError(prefix + key, f"is required ({_ID_RULE})")
    kind = obj.get("type")
    alias = obj.get("event")
    if kind is None:
        kind = alias
    elif alias is not None and not (
        isinstance(alias, str) and isinstance(kind, str) and alias == kind
    ):
        raise InvalidInputError(
            prefix + "event",
            f"'type' and its alias 'event' disagree: {_show(kind)} vs {_show(alias)}",
        )
    if kind is None:
        kind = "click"
    context = obj.get("context")
    if context is not None:
        if not isinstance(context, Mapping):
            raise InvalidInputError(
                prefix + "context", f"must be an object, got {type(context).__name__}"
            )
        _check_context(context, prefix + "context")
    return Event(
        user_id=parse_id(obj["user_id"], prefix + "user_id"),
        item_id=parse_id(obj["item_id"], prefix + "item_id"),
        type=parse_type(kind, types, prefix + "type"),
        value=parse_value(obj.get("value"), prefix + "value"),
        timestamp=parse_timestamp(obj.get("timestamp"), prefix + "timestamp"),
        context=dict(context) if context is not None else None,
    )


def parse_events(
    objs: Iterable[Mapping[str, Any]], types: Iterable[str] | FeedbackMapping = DEFAULT_EVENT_TYPES
) -> list[Event]:
    """``parse_event`` over a batch; field names in errors carry the position (``events[3].value``)."""
    allowed: tuple[str, ...] | FeedbackMapping = (
        types if isinstance(types, FeedbackMapping) else tuple(types)
    )
    return [parse_event(o, allowed, prefix=f"events[{i}].") for i, o in enumerate(objs)]


@dataclass
class EventColumns:
    """A validated batch of events as columns (``parse_event_columns``).

    ``contexts`` holds only the rows that carry a context (row -> context).
    """

    user_ids: list[str]
    item_ids: list[str]
    types: list[str]
    values: list[float]
    timestamps: list[float]
    contexts: dict[int, Mapping[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user_ids)

    def append(self, event: Event) -> None:
        if event.context is not None:
            self.contexts[len(self.user_ids)] = event.context
        self.user_ids.append(event.user_id)
        self.item_ids.append(event.item_id)
        self.types.append(event.type)
        self.values.append(event.value)
        self.timestamps.append(event.timestamp)

    def events(self) -> list[Event]:
        """The rows as ``Event`` objects."""
        ctx = self.contexts
        return [
            Event(u, i, t, v, ts, ctx.get(n))
            for n, (u, i, t, v, ts) in enumerate(
                zip(self.user_ids, self.item_ids, self.types, self.values, self.timestamps)
            )
        ]


#: ints below this in magnitude are ids taken as ``str(value)`` without further checks
_FAST_INT_ID = 2**63
_FAST_INT_VALUE = 2**53


def parse_event_columns(
    objs: Iterable[Mapping[str, Any] | Event],
    types: Iterable[str] | FeedbackMapping = DEFAULT_EVENT_TYPES,
    prefix: str = "events",
) -> EventColumns:
    """``parse_events`` into columns, without building an ``Event`` per row in the common case.

    A row that is a plain ``dict`` of the usual shape (string or integer ids, a known
    type, a finite float or small int value, an in-range numeric timestamp, no context)
    is checked inline; any other row goes through ``parse_event`` (field names in errors
    carry the position, ``events[3].value``), so the result and the first error are
    exactly ``parse_events``'. ``Event`` rows are taken as they are (not validated).

    >>> c = parse_event_columns([{"user_id": 7, "item_id": "i1"}, {"user_id": "u", "item_id": 2, "event": "view"}])
    >>> c.user_ids, c.item_ids, c.types, c.values
    (['7', 'u'], ['i1', '2'], ['click', 'view'], [1.0, 1.0])
    >>> parse_event_columns([{"user_id": 7, "item_id": "i1"}, {"user_id": 7, "item_id": "i1", "value": "x"}])
    Traceback (most recent call last):
    ...
    recloop.errors.InvalidInputError: events[1].value: must be a finite number, got 'x'
    """
    allowed = types.types if isinstance(types, FeedbackMapping) else tuple(types)
    known = frozenset(allowed)
    keys_ok = _ALLOWED_KEYS
    out = EventColumns([], [], [], [], [])
    users, items, kinds, values, stamps = (
        out.user_ids,
        out.item_ids,
        out.types,
        out.values,
        out.timestamps,
    )
    now: float | None = None
    for n, obj in enumerate(objs):
        if type(obj) is dict and obj.keys() <= keys_ok:
            get: Callable[[str], Any] = obj.get  # values are checked below, field by field
            u, i, kind, v, ts = (
                get("user_id"),
                get("item_id"),
                get("type"),
                get("value"),
                get("timestamp"),
            )
            # the same checks as parse_event's, in their fast forms; anything else -> parse_event
            if type(u) is str:
                ok = 0 < len(u) <= MAX_ID_LENGTH and not u.isspace()
            elif type(u) is int and -_FAST_INT_ID < u < _FAST_INT_ID:
                u, ok = str(u), True
            else:
                ok = False
            if ok:
                if type(i) is str:
                    ok = 0 < len(i) <= MAX_ID_LENGTH and not i.isspace()
                elif type(i) is int and -_FAST_INT_ID < i < _FAST_INT_ID:
                    i = str(i)
                else:
                    ok = False
            if ok:
                alias = get("event")
                if alias is not None:
                    if kind is None:
                        kind = alias
                    elif not (type(kind) is str and type(alias) is str and kind == alias):
                        ok = False
                if kind is None:
                    kind = "click"
                ok = ok and type(kind) is str and kind in known
            if ok:
                if v is None:
                    v = 1.0
                elif type(v) is float:
                    ok = v - v == 0.0  # finite
                elif type(v) is int and -_FAST_INT_VALUE <= v <= _FAST_INT_VALUE:
                    v = float(v)
                else:
                    ok = False
            if ok:
                if ts is None:
                    if now is None:
                        now = time.time()
                    ts = now
                elif (
                    type(ts) is float or type(ts) is int
                ) and MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
                    ts = float(ts)
                else:
                    ok = False
            if ok and get("context") is None:
                users.append(u)
                items.append(i)
                kinds.append(kind)
                values.append(v)
                stamps.append(ts)
                continue
        out.append(
            obj if isinstance(obj, Event) else parse_event(obj, allowed, prefix=f"{prefix}[{n}].")
        )
    return out
