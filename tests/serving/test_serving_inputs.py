"""Bad input over HTTP: always a 4xx JSON body naming the field, never a 500 or HTML."""

from __future__ import annotations

import pytest

LONG = "x" * 257


def _error(r, status: int | tuple[int, ...], field: str | None):
    assert r.status_code in ((status,) if isinstance(status, int) else status), (
        r.status_code,
        r.text,
    )
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["field"] == field, err
    assert err["message"]
    return err


@pytest.mark.parametrize(
    "raw, status, field",
    [
        (b"{", 400, "body"),
        (b"", 400, "body"),
        (b"[1, 2]", 422, "body"),
        (b'"text"', 422, "body"),
        (b'{"user_id": 1, "behavior": 0.5}', 422, "item_id"),
        (b'{"item_id": 2}', 422, "user_id"),
        (b'{"user_id": null, "item_id": 2}', 422, "user_id"),
        (b'{"user_id": 1, "item_id": 2, "behavior": NaN}', 422, "behavior"),
        (b'{"user_id": 1, "item_id": 2, "behavior": Infinity}', 422, "behavior"),
        (b'{"user_id": 1, "item_id": 2, "behavior": -Infinity}', 422, "behavior"),
        (b'{"user_id": 1, "item_id": 2, "behavior": "x"}', 422, "behavior"),
        (b'{"user_id": 1, "item_id": 2, "behavior": true}', 422, "behavior"),
        (b'{"user_id": "", "item_id": 2}', 422, "user_id"),
        (b'{"user_id": "   ", "item_id": 2}', 422, "user_id"),
        (b'{"user_id": "' + LONG.encode() + b'", "item_id": 2}', 422, "user_id"),
        (b'{"user_id": 1, "item_id": 1e300}', 422, "item_id"),
        (b'{"user_id": 1.5, "item_id": 2}', 422, "user_id"),
        (b'{"user_id": true, "item_id": 2}', 422, "user_id"),
        (b'{"user_id": [1], "item_id": 2}', 422, "user_id"),
        (b'{"user_id": 1, "item_id": 2, "extra": 1}', 422, "extra"),
        (b'{"user_id": 1, "item_id": 99999999999999999999999}', 422, "item_id"),
    ],
)
def test_bad_predict_bodies(client, raw, status, field):
    _error(
        client.post("/predict", content=raw, headers={"content-type": "application/json"}),
        status,
        field,
    )


@pytest.mark.parametrize(
    "query, field",
    [
        ({"user_id": 1, "k": 0}, "k"),
        ({"user_id": 1, "k": 1001}, "k"),
        ({"user_id": 1, "k": -3}, "k"),
        ({"user_id": 1, "k": "abc"}, "k"),
        ({"user_id": 1, "k": "1.5"}, "k"),
        ({"user_id": 1, "k": "9" * 40}, "k"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": LONG}, "user_id"),
        ({"k": 5}, "user_id"),
        ({"user_id": 1, "exclude_seen": "maybe"}, "exclude_seen"),
    ],
)
def test_bad_recommend_queries(client, query, field):
    _error(client.get("/recommend", params=query), 422, field)


def test_k_message_names_the_range_and_value(client):
    err = _error(client.get("/recommend", params={"user_id": 1, "k": 0}), 422, "k")
    assert err["message"] == "must be an integer in 1..1000, got 0"


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"user_id": 1}, 422, "item_id"),
        ({"user_id": 1, "item_id": 2, "type": "teleport"}, 422, "type"),
        ({"user_id": 1, "item_id": 2, "value": "high"}, 422, "value"),
        ({"user_id": 1, "item_id": 2, "timestamp": -5}, 422, "timestamp"),
        ({"user_id": 1, "item_id": 2, "timestamp": "yesterday"}, 422, "timestamp"),
        ({"user_id": 1, "item_id": 2, "context": [1]}, 422, "context"),
        ({"events": []}, 422, "events"),
        ({"events": {"user_id": 1}}, 422, "events"),
        ({"events": [1]}, 422, "events[0]"),
        ({"events": [{"user_id": 1, "item_id": 2}], "more": 1}, 422, "more"),
        (
            {"events": [{"user_id": 1, "item_id": 2}, {"user_id": 1, "item_id": 1e300}]},
            422,
            "events[1].item_id",
        ),
        (
            {"events": [{"user_id": 1, "item_id": 2}, {"user_id": "", "item_id": 3}]},
            422,
            "events[1].user_id",
        ),
    ],
)
def test_bad_events(client, body, status, field):
    _error(client.post("/events", json=body), status, field)
    assert client.get("/health").json()["events_applied"] == 0


def test_nan_in_a_batch_names_the_event(client):
    raw = b'{"events": [{"user_id": 1, "item_id": 2}, {"user_id": 1, "item_id": 3, "value": NaN}]}'
    _error(client.post("/events", content=raw), 422, "events[1].value")


def test_oversize_bodies_and_batches(make_client):
    c = make_client(max_body_bytes=2048, max_batch_events=3)
    big = b'{"user_id": 1, "item_id": 2, "context": {"pad": "' + b"x" * 4000 + b'"}}'
    _error(c.post("/events", content=big), 413, "body")

    def chunks():  # no Content-Length: counted while it streams
        yield b'{"user_id": 1, "item_id": 2, "context": {"pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    _error(c.post("/events", content=chunks()), 413, "body")
    batch = {"events": [{"user_id": 1, "item_id": i} for i in range(4)]}
    err = _error(c.post("/events", json=batch), 413, "events")
    assert "at most 3" in err["message"]


def test_unknown_routes_and_methods_are_json(client):
    _error(client.get("/nope"), 404, "path")
    _error(client.get("/users//history"), 404, "path")
    _error(client.put("/recommend"), 405, "method")
    _error(client.get("/items/" + "y" * 300 + "/similar"), 422, "item_id")
    _error(client.get("/users/" + "y" * 300 + "/history"), 422, "user_id")
