"""Micro-batching answers exactly what the engine answers, and coalesces concurrent requests."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from recloop import Recommender
from recloop.config import load_settings
from recloop.serving import batching, create_app
from recloop.serving.batching import Job, run_batch


def _jobs(rec: Recommender, users: list[str], **kw) -> list[Job]:
    return [Job("recommend", rec, u, **kw) for u in users]


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_batched_recommendations_equal_the_engines(rec, exclude_seen):
    rec.update([{"user_id": "newcomer", "item_id": "4"}, {"user_id": 3, "item_id": "fresh-item"}])
    rec.flush()  # no parameter step may land between the two answers compared
    users = [*rec.users_.to_list(), "never-seen", "newcomer"]
    outcomes = run_batch(_jobs(rec, users, k=10, exclude_seen=exclude_seen))
    for user, (ok, got) in zip(users, outcomes):
        want = rec.recommend_with_scores(user, 10, exclude_seen)
        assert ok
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5), user
        # ids agree except where two scores tie to float precision
        assert [i for i, _ in got] == [i for i, _ in want] or np.allclose(
            sorted(s for _, s in got), sorted(s for _, s in want)
        )


def test_batched_predictions_equal_the_engines(rec):
    pairs = [("0", "0"), ("0", "1"), ("7", "12"), ("never-seen", "3"), ("5", "no-such-item")]
    outcomes = run_batch([Job("predict", rec, u, item_id=i, behavior=0.5) for u, i in pairs])
    for (u, i), (ok, p) in zip(pairs, outcomes):
        assert ok and p == pytest.approx(rec.predict_proba(u, i, 0.5), abs=1e-6)


def test_models_with_their_own_predict_proba_are_asked_directly(rec, monkeypatch):
    monkeypatch.setattr(
        rec.model_, "predict_proba", lambda u, i, b: np.full(len(u), 0.25), raising=False
    )
    [(ok, p)] = run_batch([Job("predict", rec, "1", item_id="2")])
    assert ok and p == 0.25


def test_a_failing_batch_is_answered_one_by_one(rec, monkeypatch):
    def broken(jobs):
        raise RuntimeError("boom")

    monkeypatch.setattr(batching, "_score_batch", broken)
    outcomes = run_batch(_jobs(rec, ["1", "2"], k=3))
    assert [ok for ok, _ in outcomes] == [True, True]
    assert [i for i, _ in outcomes[0][1]] == rec.recommend("1", k=3)


def test_concurrent_requests_share_model_calls(rec):
    app = create_app(load_settings(env={}), rec)
    batcher = app.state.serving.batcher
    calls = []
    real = rec.model_.score
    rec.model_.score = lambda u, h: calls.append(len(u)) or real(u, h)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            reqs = [client.get("/recommend", params={"user_id": u % 60, "k": 5}) for u in range(40)]
            reqs += [client.post("/predict", json={"user_id": u, "item_id": 2}) for u in range(10)]
            return await asyncio.gather(*reqs)

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert batcher.jobs == 50 and batcher.batches < 50
    assert (
        batcher.batches <= len(calls) <= 2 * batcher.batches and max(calls) > 1
    )  # one call per kind of request
    for u in (0, 1, 39):
        body = next(r for r in responses[:40] if r.json()["user_id"] == str(u)).json()
        assert [x["item_id"] for x in body["items"]] == rec.recommend(str(u), k=5)
    batcher.close()


def test_batching_can_be_switched_off(make_client):
    c = make_client(micro_batching=False)
    assert c.app.state.serving.batcher is None
    assert len(c.get("/recommend", params={"user_id": 1, "k": 4}).json()["items"]) == 4


def test_the_batcher_survives_an_app_restart(make_client, rec):
    from fastapi.testclient import TestClient

    app = create_app(load_settings(env={}), rec)
    for _ in range(2):  # lifespan shutdown stops the worker; the next start must still answer
        with TestClient(app) as c:
            assert c.get("/recommend", params={"user_id": 1, "k": 3}).status_code == 200
    with TestClient(app) as c:
        assert c.post("/predict", json={"user_id": 1, "item_id": 2}).status_code == 200
