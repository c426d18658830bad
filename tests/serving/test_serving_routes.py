"""Routes of the HTTP service, in process: shapes, read-your-writes, admin, metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recloop import Recommender


def test_health_reports_the_model(client, rec):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "mf"
    assert body["n_items"] == rec.n_items and body["retrieval"] == "exact"


def test_predict_takes_the_design_documents_body(client):
    r = client.post("/predict", json={"user_id": 1, "item_id": 2, "behavior": 0.5})
    assert r.status_code == 200
    p = r.json()["prediction"]
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    # behavior is optional, and string ids are the same ids as ints
    same = client.post("/predict", json={"user_id": "1", "item_id": "2"}).json()["prediction"]
    assert same == pytest.approx(p)


def test_predict_ranks_in_group_items_higher(client):
    """User 0 (even group) must find an even item more likely than an odd one."""
    p = [
        client.post("/predict", json={"user_id": 0, "item_id": i}).json()["prediction"]
        for i in range(20)
    ]
    even, odd = sum(p[0::2]) / 10, sum(p[1::2]) / 10
    assert even > odd


def test_recommend_shape_and_seen_items(client, rec):
    r = client.get("/recommend", params={"user_id": 3, "k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "3" and len(body["items"]) == 7
    assert {"model_version", "events_applied"} <= set(body)
    scores = [x["score"] for x in body["items"]]
    assert scores == sorted(scores, reverse=True)
    ids = [x["item_id"] for x in body["items"]]
    assert ids == rec.recommend("3", k=7)
    assert not set(ids) & set(rec.history("3"))
    with_seen = client.get(
        "/recommend", params={"user_id": 3, "k": 80, "exclude_seen": "false"}
    ).json()["items"]
    assert set(rec.history("3")) <= {x["item_id"] for x in with_seen}


def test_unknown_user_gets_cold_start_items(client):
    r = client.get("/recommend", params={"user_id": "never-seen", "k": 5})
    assert r.status_code == 200 and len(r.json()["items"]) == 5


def test_read_your_writes_over_http(client):
    before = client.get("/recommend", params={"user_id": 5, "k": 10}).json()
    first = before["items"][0]["item_id"]
    ack = client.post("/events", json={"user_id": 5, "item_id": first, "type": "click"})
    assert ack.status_code == 200
    assert ack.json()["accepted"] == 1
    assert ack.json()["events_applied"] == before["events_applied"] + 1
    after = client.get("/recommend", params={"user_id": 5, "k": 10}).json()
    assert first not in [x["item_id"] for x in after["items"]]
    assert after["events_applied"] == before["events_applied"] + 1
    assert client.get("/users/5/history").json()["items"][-1] == first


def test_event_batches_grow_users_and_items(client):
    batch = {
        "events": [
            {"user_id": "new-user", "item_id": "2", "type": "view", "timestamp": 2_000_000},
            {
                "user_id": "new-user",
                "item_id": "new-item",
                "type": "purchase",
                "context": {"page": "home"},
            },
            {
                "user_id": 3,
                "item_id": "new-item",
                "event": "rating",
                "value": 5,
                "timestamp": "2024-01-01T00:00:00Z",
            },
        ]
    }
    r = client.post("/events", json=batch)
    assert r.status_code == 200 and r.json()["accepted"] == 3
    assert client.get("/users/new-user/history").json()["items"] == ["2", "new-item"]
    recs = client.get("/recommend", params={"user_id": "new-user", "k": 10}).json()["items"]
    assert len(recs) == 10 and not {"2", "new-item"} & {x["item_id"] for x in recs}
    assert client.get("/health").json()["n_items"] == 81


def test_a_bad_event_rejects_the_whole_batch(client):
    before = client.get("/health").json()["events_applied"]
    r = client.post(
        "/events",
        json={
            "events": [
                {"user_id": 1, "item_id": 2},
                {"user_id": 1, "item_id": 3, "type": "teleport"},
            ]
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[1].type"
    assert client.get("/health").json()["events_applied"] == before


def test_history_of_unknown_user_is_empty(client):
    r = client.get("/users/nobody/history")
    assert r.status_code == 200 and r.json() == {"user_id": "nobody", "items": []}
    assert len(client.get("/users/3/history", params={"limit": 2}).json()["items"]) == 2


def test_similar_items_by_cosine_stay_in_group(client):
    r = client.get("/items/4/similar", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "cosine" and len(body["items"]) == 5
    ids = [int(x["item_id"]) for x in body["items"]]
    assert 4 not in ids and sum(i % 2 == 0 for i in ids) >= 4
    assert client.get("/items/no-such-item/similar").status_code == 404


def test_similar_items_by_cooccurrence_without_vectors(make_client, rec, monkeypatch):
    monkeypatch.setattr(rec.model_, "item_vectors", lambda: None)
    c = make_client(engine=rec)
    body = c.get("/items/4/similar", params={"k": 5}).json()
    assert body["method"] == "co-occurrence" and len(body["items"]) == 5
    assert all(int(x["item_id"]) % 2 == 0 and x["item_id"] != "4" for x in body["items"])
    c.post("/events", json={"user_id": 0, "item_id": "brand-new"})  # the cache follows events
    assert c.get("/items/brand-new/similar").json()["items"]


def test_metrics_expose_routes_events_and_model(client):
    client.get("/recommend", params={"user_id": 1, "k": 3})
    client.post("/events", json={"events": [{"user_id": 1, "item_id": i} for i in range(3)]})
    client.get("/no-such-route")
    text = client.get("/metrics").text
    assert (
        'recloop_http_request_duration_seconds_count{method="GET",route="/recommend"} 1.0' in text
    )
    assert 'recloop_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "recloop_http_events_accepted_total 3.0" in text
    assert "recloop_model_version 1.0" in text
    assert "recloop_events_applied 3.0" in text
    assert 'recloop_online_update_latency_ms{quantile="0.99"}' in text


def test_each_app_has_its_own_metrics(make_client):
    a, b = make_client(), make_client()
    a.get("/health")
    assert 'route="/health"' in a.get("/metrics").text
    assert 'route="/health"' not in b.get("/metrics").text


def test_snapshot_and_reload_round_trip(make_client, model_dir, tmp_path):
    path = tmp_path / "live"
    Recommender.load(model_dir).save(path)
    c = make_client(engine=Recommender.load(path), model_path=path)
    c.post("/events", json={"user_id": "fresh", "item_id": "7"})
    snap = c.post("/admin/snapshot")
    assert snap.status_code == 200 and snap.json()["events_applied"] == 1
    assert Recommender.load(path).history("fresh") == ["7"]
    c.post("/events", json={"user_id": "later", "item_id": "9"})  # not in the snapshot
    again = c.post("/admin/reload")
    assert again.status_code == 200 and again.json()["events_applied"] == 1
    assert c.get("/users/later/history").json()["items"] == []
    assert c.get("/users/fresh/history").json()["items"] == ["7"]


def test_reload_from_a_bad_path_keeps_the_old_model(make_client, tmp_path):
    c = make_client(model_path=tmp_path / "nothing-here")
    r = c.post("/admin/reload")
    assert r.status_code == 409 and r.json()["error"]["field"] == "model_path"
    assert c.get("/recommend", params={"user_id": 1}).status_code == 200
    assert make_client().post("/admin/snapshot").status_code == 409  # no model_path configured


def test_app_without_a_model_answers_503(make_client):
    c = make_client(engine=None)
    assert c.get("/health").status_code == 503
    r = c.get("/recommend", params={"user_id": 1})
    assert r.status_code == 503 and r.json()["error"]["field"] == "model"


def test_openapi_documents_every_route(client):
    doc = client.get("/openapi.json").json()
    for path in (
        "/predict",
        "/recommend",
        "/events",
        "/users/{user_id}/history",
        "/items/{item_id}/similar",
        "/health",
        "/metrics",
        "/admin/snapshot",
        "/admin/reload",
    ):
        assert path in doc["paths"], path
    assert {"PredictRequest", "EventIn", "EventBatch"} <= set(doc["components"]["schemas"])
    assert client.get("/docs").status_code == 200


def test_model_path_must_exist_for_the_cli(tmp_path: Path):
    from recloop.cli.main import main

    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "1"]) == 2


@pytest.mark.parametrize("threshold, status", [(0, "faiss"), (10_000, "exact")])
def test_app_uses_the_index_above_the_threshold(make_client, rec, threshold, status):
    c = make_client(faiss_threshold=threshold, faiss_nprobe=10_000)
    for _ in range(200):
        if c.get("/health").json()["retrieval"] != "building":
            break
        time.sleep(0.05)
    assert c.get("/health").json()["retrieval"] == status
    body = c.get("/recommend", params={"user_id": 3, "k": 10}).json()
    assert [x["item_id"] for x in body["items"]] == rec.recommend_batch(["3"], 10, exact=True)[0]


def test_max_users_bounds_the_state_and_health_and_metrics_report_it(make_client):
    c = make_client(max_users=50)
    events = [{"user_id": f"n{u}", "item_id": u % 80} for u in range(200)]
    assert c.post("/events", json={"events": events}).status_code == 200
    health = c.get("/health").json()
    assert health["users_resident"] == health["n_users"] <= 50
    assert health["users_evicted"] >= 150 and health["state_bytes"] > 0
    metrics = c.get("/metrics").text
    for name in ("recloop_users_resident", "recloop_users_evicted", "recloop_state_bytes"):
        assert name in metrics
    assert f"recloop_users_resident {float(health['users_resident'])}" in metrics
