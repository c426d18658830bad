"""``POST /events`` with an event log: acks carry the offset, refusals are 503 with nothing
applied, ``/health`` reports ``recovering`` then ``ok`` with ``log_offset``."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.storage_helpers import save_model

warnings.filterwarnings("ignore", message=".*httpx.* with .*starlette.testclient.* is deprecated")
from fastapi.testclient import TestClient  # noqa: E402

from recloop import Recommender  # noqa: E402
from recloop.config import load_settings  # noqa: E402
from recloop.engine.durable import Durable, SnapshotPolicy, recover  # noqa: E402
from recloop.serving import create_app  # noqa: E402
from recloop.storage import ModelStore, open_log  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("serving-log") / "model")


def test_acks_carry_offsets_and_health_the_log_offset(model: Path, tmp_path: Path) -> None:
    rec = Recommender.load(model)
    store = ModelStore(tmp_path / "snaps")
    durable = rec.attach_log(open_log(f"sqlite://{tmp_path}/e.db"), store, SnapshotPolicy(0, 0))
    app = create_app(load_settings(env={}, model_path=model), rec, durable=durable)
    with TestClient(app) as client:
        one = client.post("/events", json={"user_id": "a", "item_id": "x1"}).json()
        assert one["accepted"] == 1 and one["offset"] == 1
        batch = [{"user_id": "a", "item_id": f"y{j}"} for j in range(300)]  # the threaded path
        many = client.post("/events", json={"events": batch}).json()
        assert many["accepted"] == 300 and many["offset"] == 301
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["log_offset"] == 301
        assert client.get("/users/a/history").json()["items"][:2] == ["x1", "y0"]
        snap = client.post("/admin/snapshot")
        assert snap.status_code == 200 and "snap-000000000000301" in snap.json()["path"]
        assert client.post("/admin/reload").status_code == 409
        bad = client.post("/events", json={"user_id": "a", "item_id": "z", "type": "nope"})
        assert bad.status_code == 422 and durable.log.last_offset() == 301


def test_a_refused_write_is_a_503_and_nothing_is_applied(model: Path, tmp_path: Path) -> None:
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(f"sqlite://{tmp_path}/e.db?max_bytes=150000"))
    app = create_app(load_settings(env={}), rec, durable=durable)
    with TestClient(app) as client:
        acked = 0
        for n in range(1000):
            events = [{"user_id": "a", "item_id": f"{n}-{j}-" + "z" * 200} for j in range(10)]
            r = client.post("/events", json={"events": events})
            if r.status_code != 200:
                break
            acked += 10
        assert r.status_code == 503
        body = r.json()["error"]
        assert body["field"] == "log" and "full" in body["message"]
        assert len(rec.history("a")) == acked == rec.log_offset_
        assert client.get("/health").json()["log_offset"] == acked


def test_without_a_log_the_ack_offset_is_null(model: Path) -> None:
    app = create_app(load_settings(env={}), Recommender.load(model))
    with TestClient(app) as client:
        assert client.post("/events", json={"user_id": 1, "item_id": 2}).json()["offset"] is None
        assert client.get("/health").json()["log_offset"] is None


def test_health_says_recovering_until_the_replay_is_done(model: Path, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    first = Recommender.load(model)
    d = first.attach_log(open_log(url))
    first.update([{"user_id": "a", "item_id": f"i{j}"} for j in range(50)])
    d.close()
    release = threading.Event()

    def start(progress: Callable[[int, int], None]) -> Durable:
        log = open_log(url)
        progress(0, log.last_offset())
        release.wait(10)
        rec = recover(log, None, model, progress)
        return rec.attach_log(log)

    app = create_app(load_settings(env={}), None, recover=start)
    with TestClient(app) as client:
        for _ in range(250):  # the recovery thread reports its target once it has opened the log
            health = client.get("/health")
            if health.json().get("target"):
                break
            threading.Event().wait(0.02)
        assert health.status_code == 503
        assert health.json()["status"] == "recovering" and health.json()["target"] == 50
        events = client.post("/events", json={"user_id": "a", "item_id": "early"})
        assert events.status_code == 503 and "recovering" in events.json()["error"]["message"]
        release.set()
        for _ in range(200):
            health = client.get("/health")
            if health.status_code == 200:
                break
            threading.Event().wait(0.02)
        assert health.json()["status"] == "ok" and health.json()["log_offset"] == 50
        ack = client.post("/events", json={"user_id": "a", "item_id": "after"}).json()
        assert ack["offset"] == 51
