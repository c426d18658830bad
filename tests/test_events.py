"""Event parsing: valid events round-trip; any invalid input is an InvalidInputError naming the field."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recloop.errors import ConfigError, InvalidInputError
from recloop.events import (
    DEFAULT_EVENT_TYPES,
    DEFAULT_MAPPING,
    MAX_TIMESTAMP,
    Event,
    FeedbackMapping,
    Signal,
    parse_event,
    parse_event_columns,
    parse_events,
    parse_id,
    parse_timestamp,
    parse_value,
)

FIELDS = {"user_id", "item_id", "type", "event", "value", "timestamp", "context"}

valid_str_ids = st.text(min_size=1, max_size=256).filter(lambda s: s.strip() != "")
valid_ids = st.one_of(valid_str_ids, st.integers(min_value=-(10**30), max_value=10**30))
finite = st.floats(allow_nan=False, allow_infinity=False)
epoch = st.floats(min_value=0, max_value=MAX_TIMESTAMP, allow_nan=False)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, st.text(max_size=20)
)
contexts = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        json_scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)
valid_events = st.fixed_dictionaries(
    {"user_id": valid_ids, "item_id": valid_ids},
    optional={
        "type": st.sampled_from(DEFAULT_EVENT_TYPES),
        "value": finite,
        "timestamp": epoch,
        "context": contexts,
    },
)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**5000),
    st.floats(),
    st.text(max_size=300),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), st.integers(), max_size=3),
    st.datetimes(),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "inf",
            "1e400",
            "2024-13-01",
            "2024-01-01T00:00:00Z",
            "x" * 257,
            "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00-12:00",
        ]
    ),
    st.just(np.int64(7)),
    st.just(np.float32("nan")),
    st.just(np.bool_(True)),
    st.just(object()),
)


@settings(max_examples=100, deadline=None)
@given(valid_events)
def test_valid_events_parse_and_round_trip(obj):
    ev = parse_event(obj)
    assert ev.user_id == (
        obj["user_id"] if isinstance(obj["user_id"], str) else str(obj["user_id"])
    )
    assert ev.type == obj.get("type", "click")
    assert ev.value == obj.get("value", 1.0)
    assert math.isfinite(ev.value) and 0 <= ev.timestamp <= MAX_TIMESTAMP
    if "timestamp" in obj:
        assert ev.timestamp == obj["timestamp"]
    again = parse_event(ev.to_dict())
    assert again == ev


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(sorted(FIELDS)), st.text(max_size=5), st.integers()),
        junk,
        max_size=7,
    )
)
def test_any_input_is_an_event_or_an_invalid_input_error_naming_a_field(obj):
    try:
        ev = parse_event(obj)
    except InvalidInputError as exc:
        keys = (
            {str(k) for k in obj}
            | {repr(k)[:61] for k in obj}
            | {repr(k)[:61] + "..." for k in obj}
        )
        named = exc.field in keys or any(
            exc.field == f or exc.field.startswith((f + ".", f + "[")) for f in FIELDS
        )
        assert named, exc.field
        assert str(exc).startswith(exc.field + ": ")
        assert "\n" not in str(exc) and len(str(exc)) < 400
    else:
        assert isinstance(ev, Event) and ev.user_id.strip() and len(ev.user_id) <= 256


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(["user_id", "item_id", "type", "value", "timestamp", "context"]), bad=junk
)
def test_a_bad_field_is_named_in_the_error(field, bad):
    obj = {
        "user_id": "u",
        "item_id": "i",
        "type": "click",
        "value": 1.0,
        "timestamp": 1_700_000_000,
    }
    obj[field] = bad
    try:
        parse_event(obj, prefix="events[3].")
    except InvalidInputError as exc:
        assert exc.field.startswith(f"events[3].{field}")
    # some junk is valid for some fields (an int id, a finite float value, None = default)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("user_id", "", "non-empty string"),
        ("user_id", "   ", "non-empty string"),
        ("user_id", "x" * 257, "257 characters"),
        ("user_id", 10**5000, "an integer of"),
        ("item_id", 1.5, "got 1.5"),
        ("item_id", True, "got True"),
        ("type", "like", "view, click, add_to_cart"),
        ("value", float("nan"), "finite number, got nan"),
        ("value", 10**400, "finite number"),
        ("value", "4", "finite number, got '4'"),
        ("timestamp", 10**400, "between 1970 and 2100"),
        ("timestamp", 1_700_000_000_000, "between 1970 and 2100, got 1700000000000"),
        ("timestamp", "yesterday", "got 'yesterday'"),
        ("timestamp", "0001-01-01T00:00:00-12:00", "ISO-8601"),
        ("context", [1], "must be an object"),
        ("context", {"a": float("inf")}, "finite"),
        ("context", {1: "a"}, "keys must be strings"),
        ("context", {"a": {1, 2}}, "only strings, numbers"),
    ],
    ids=lambda v: repr(v)[:30] if not isinstance(v, int) or v.bit_length() < 64 else "huge-int",
)
def test_messages_name_the_field_the_value_and_what_is_allowed(field, value, words):
    obj = {"user_id": "u", "item_id": "i", field: value}
    with pytest.raises(InvalidInputError) as info:
        parse_event(obj)
    assert info.value.field.startswith(field)
    assert words in str(info.value)


def test_ids_types_and_defaults():
    ev = parse_event(
        {"user_id": np.int64(5), "item_id": 7.0, "event": "purchase", "value": np.float32(2.5)}
    )
    assert (ev.user_id, ev.item_id, ev.type, ev.value) == ("5", "7", "purchase", 2.5)
    assert parse_id(5, "user_id") == parse_id("5", "user_id")
    before = datetime.now(timezone.utc).timestamp()
    assert before - 1 <= parse_event({"user_id": "u", "item_id": "i"}).timestamp <= before + 60
    assert parse_event({"user_id": "u", "item_id": "i"}).type == "click"
    assert parse_value(None) == 1.0


def test_timestamps_iso_and_numbers():
    assert parse_timestamp("2024-01-01T00:00:00Z") == 1_704_067_200.0
    assert parse_timestamp("2024-01-01T01:00:00+01:00") == 1_704_067_200.0
    assert parse_timestamp("2024-01-01") == 1_704_067_200.0  # naive means UTC
    assert parse_timestamp("1704067200") == 1_704_067_200.0
    assert (
        parse_timestamp(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))))
        == 1_704_067_200.0 - 7200
    )
    assert parse_timestamp(np.int64(1_704_067_200)) == 1_704_067_200.0
    for bad in (-1, MAX_TIMESTAMP + 1, float("inf"), True):
        with pytest.raises(InvalidInputError):
            parse_timestamp(bad)


def test_type_and_event_alias_must_agree():
    assert (
        parse_event({"user_id": "u", "item_id": "i", "type": "view", "event": "view"}).type
        == "view"
    )
    with pytest.raises(InvalidInputError, match="disagree"):
        parse_event({"user_id": "u", "item_id": "i", "type": "view", "event": "click"})


def test_unknown_fields_and_non_mappings():
    with pytest.raises(InvalidInputError) as info:
        parse_event({"user_id": "u", "item_id": "i", "raitng": 5})
    assert info.value.field == "raitng"
    with pytest.raises(InvalidInputError) as info:
        parse_event({"user_id": "u", "item_id": "i", 3: 5, "zz": 1})
    assert info.value.field in {"3", "zz"}
    with pytest.raises(InvalidInputError) as info:
        parse_events([{"user_id": "u", "item_id": "i"}, "not an event"])
    assert info.value.field == "events[1]"
    with pytest.raises(InvalidInputError) as info:
        parse_events([{"user_id": "u", "item_id": "i"}, {"user_id": "u"}])
    assert info.value.field == "events[1].item_id"


def test_registered_types_through_a_mapping():
    mapping = FeedbackMapping.from_dict({"like": {"label": 1, "weight": 2}, "hide": [0, 1.5]})
    ev = parse_event({"user_id": "u", "item_id": "i", "type": "like"}, mapping)
    assert mapping.signal(ev) == Signal(1.0, 2.0)
    assert mapping.signal(Event("u", "i", "hide")) == Signal(0.0, 1.5)
    assert set(DEFAULT_EVENT_TYPES) < set(mapping.types)
    with pytest.raises(InvalidInputError, match="like"):
        parse_event({"user_id": "u", "item_id": "i", "type": "like"})
    with pytest.raises(InvalidInputError, match="like, hide"):
        DEFAULT_MAPPING.with_types({"like": Signal(1, 1), "hide": Signal(0, 1)}).signal(
            Event("u", "i", "nope")
        )


def test_signals_of_the_default_mapping():
    sig = DEFAULT_MAPPING.signal
    assert (
        sig(Event("u", "i", "purchase")).weight
        > sig(Event("u", "i", "click")).weight
        > sig(Event("u", "i", "view")).weight
    )
    assert (
        sig(Event("u", "i", "skip")).label == 0.0 and sig(Event("u", "i", "dislike")).label == 0.0
    )
    assert sig(Event("u", "i", "rating", 5.0)).label == 1.0
    assert sig(Event("u", "i", "rating", 2.0)).label == 0.0
    assert sig(Event("u", "i", "rating", 5.0)).weight > sig(Event("u", "i", "rating", 4.0)).weight
    assert DEFAULT_MAPPING.is_positive(Event("u", "i", "rating", 1.0))
    assert not DEFAULT_MAPPING.is_positive(Event("u", "i", "skip"))


@pytest.mark.parametrize(
    "spec",
    [
        {"x": {"label": 2}},
        {"x": {"label": 1, "weight": -1}},
        {"x": "strong"},
        {"": [1, 1]},
        {"x": {"label": 1, "wieght": 1}},
        {"x": [1, float("nan")]},
    ],
)
def test_bad_mapping_settings_are_config_errors(spec):
    with pytest.raises(ConfigError):
        FeedbackMapping.from_dict(spec)


def _same_event(got: Event, want: Event, obj: object) -> bool:
    if (
        isinstance(obj, dict) and obj.get("timestamp") is None
    ):  # "now": read at a slightly different time
        got, want = (
            Event(
                *[getattr(got, f) for f in ("user_id", "item_id", "type", "value")],
                0.0,
                got.context,
            ),
            Event(
                *[getattr(want, f) for f in ("user_id", "item_id", "type", "value")],
                0.0,
                want.context,
            ),
        )
    return got == want and type(got.value) is type(want.value) is float


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            valid_events,
            valid_events,
            st.tuples(valid_events, st.sampled_from(sorted(FIELDS | {"extra"})), junk).map(
                lambda t: {**t[0], t[1]: t[2]}
            ),
            st.dictionaries(
                st.one_of(st.sampled_from(sorted(FIELDS)), st.text(max_size=5)), junk, max_size=7
            ),
            junk,
        ),
        max_size=12,
    )
)
def test_the_column_parser_gives_parse_events_results_and_errors(objs):
    """The fast path of ``parse_event_columns`` accepts exactly what ``parse_event`` does, with the same
    values, and a batch's first bad event raises the same error."""
    try:
        want = parse_events(objs, DEFAULT_MAPPING)
    except InvalidInputError as exc:
        with pytest.raises(InvalidInputError) as got:
            parse_event_columns(objs, DEFAULT_MAPPING)
        assert (got.value.field, str(got.value)) == (exc.field, str(exc))
        return
    cols = parse_event_columns(objs, DEFAULT_MAPPING)
    assert len(cols) == len(want)
    for obj, ev, w in zip(objs, cols.events(), want):
        assert _same_event(ev, w, obj), (obj, ev, w)


def test_the_column_parser_takes_event_objects_as_they_are():
    ev = Event("u", "i", "view", 2.0, 5.0, {"a": 1})
    cols = parse_event_columns(
        [{"user_id": 1, "item_id": 2, "event": "purchase", "value": 3, "timestamp": 7}, ev]
    )
    assert cols.events() == [Event("1", "2", "purchase", 3.0, 7.0), ev]
    assert cols.contexts == {1: {"a": 1}}
