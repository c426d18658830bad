"""API keys: write and admin routes need a bearer key; reads by setting; keys never logged."""

from __future__ import annotations

import logging

import pytest

from recloop.serving.auth import KeyChecker

KEY = "s3cret-key-value-1234"
EVENT = {"user_id": 1, "item_id": 2}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_writes_need_a_valid_key(make_client):
    c = make_client(api_keys=f"other-key,{KEY}")
    for headers in ({}, bearer("wrong"), {"Authorization": KEY}, {"Authorization": "Basic abc"}):
        r = c.post("/events", json=EVENT, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["field"] == "authorization"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert c.get("/health").json()["events_applied"] == 0
    assert c.post("/events", json=EVENT, headers=bearer(KEY)).status_code == 200
    assert (
        c.post("/events", json=EVENT, headers={"authorization": f"bearer {KEY}"}).status_code == 200
    )
    for path in ("/admin/snapshot", "/admin/reload"):
        assert c.post(path).status_code == 401
        assert c.post(path, headers=bearer(KEY)).status_code == 409  # authorised, but no model_path


def test_reads_are_open_unless_configured(make_client):
    open_reads = make_client(api_keys=KEY)
    assert open_reads.get("/recommend", params={"user_id": 1}).status_code == 200
    assert open_reads.post("/predict", json=EVENT).status_code == 200
    closed = make_client(api_keys=KEY, read_requires_key=True)
    for path in ("/recommend?user_id=1", "/users/1/history", "/items/2/similar", "/metrics"):
        assert closed.get(path).status_code == 401, path
        assert closed.get(path, headers=bearer(KEY)).status_code == 200, path
    assert closed.post("/predict", json=EVENT).status_code == 401
    assert closed.get("/health").status_code == 200  # load balancers probe without a key


def test_no_keys_means_open(client):
    assert client.post("/events", json=EVENT).status_code == 200


def test_openapi_marks_protected_routes(make_client):
    doc = make_client(api_keys=KEY).get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/events"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/recommend"]["get"]


def test_keys_never_reach_logs_or_reprs(make_client, caplog):
    from recloop.config import load_settings

    caplog.set_level(logging.DEBUG)
    c = make_client(api_keys=KEY, log_level="debug")
    c.post("/events", json=EVENT, headers=bearer(KEY))
    c.post("/events", json=EVENT, headers=bearer(KEY + "x"))
    c.get("/metrics")
    assert KEY not in caplog.text
    settings = load_settings(env={"RECLOOP_API_KEYS": KEY})
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in settings.model_dump_json()


@pytest.mark.parametrize(
    "presented, ok", [(b"a", True), (b"b", True), (b"c", False), (b"", False), (b"ab", False)]
)
def test_key_checker_compares_every_key(presented, ok):
    assert KeyChecker((b"a", b"b"), read_requires_key=False).valid(presented) is ok
