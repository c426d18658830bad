"""The content routes over HTTP: items and users put and read, new items live, explanations."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from conftest import genre_items
from recloop import Recommender
from recloop.config import load_settings
from recloop.serving import create_app
from synthdata import synthetic

warnings.filterwarnings("ignore", message=".*httpx.* with .*starlette.testclient.* is deprecated")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture
def client() -> Iterator[TestClient]:
    rec = Recommender(model="ease", seed=0).fit(synthetic(), items=genre_items())
    app = create_app(load_settings(env={}), rec)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_put_item_is_recommended_on_the_very_next_request(client):
    for i in range(0, 24, 2):
        client.post("/events", json={"user_id": "fan", "item_id": i, "type": "click"})
    r = client.put("/items/new-1", json={"title": "calm film", "genres": ["Even"], "year": 1999})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True and r.json()["attributes"]["genres"] == ["Even"]
    top = [x["item_id"] for x in client.get("/recommend?user_id=fan&k=10").json()["items"]]
    assert "new-1" in top
    got = client.get("/items/new-1").json()
    assert got == {
        "item_id": "new-1",
        "attributes": {"title": "calm film", "genres": ["Even"], "year": 1999},
    }
    again = client.put("/items/new-1", json={"title": "renamed"}).json()
    assert again["created"] is False and again["attributes"]["genres"] == ["Even"]


def test_get_item_of_an_unknown_id_is_404_naming_the_field(client):
    r = client.get("/items/nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "item_id"
    assert client.get("/items/4").json()["attributes"]["genres"] == "Even"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"genres": [1, 2]}, "genres[0]"),
        ({"genres": {"a": 1}}, "genres"),
        ({"title": "x" * 10_001}, "title"),
        ({"item_id": "other"}, "item_id"),
        ({"user_id": "u"}, "user_id"),
        ({"bad name!": 1}, "bad name!"),
        ({"n": 1e300}, "n"),
    ],
)
def test_bad_attributes_are_422_naming_the_field(client, body, field):
    r = client.put("/items/i1", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert client.get("/items/i1").status_code == 404  # nothing was written


def test_put_and_get_user(client):
    assert client.get("/users/77").status_code == 404
    r = client.put("/users/77", json={"age": 31, "occupation": "writer"})
    assert r.status_code == 200 and r.json()["created"] is True
    assert client.get("/users/77").json()["attributes"] == {"age": 31, "occupation": "writer"}
    assert client.put("/users/77", json={"age": "x" * 20_000}).status_code == 422


def test_recommend_explain_gives_each_item_a_reason(client):
    plain = client.get("/recommend?user_id=0&k=5").json()
    body = client.get("/recommend?user_id=0&k=5&explain=true").json()
    assert [x["item_id"] for x in body["items"]] == [x["item_id"] for x in plain["items"]]
    for item in body["items"]:
        assert item.get("because") or item.get("genres") or item.get("popular_now")
    assert body["items"][0]["because"][0]["weight"] > 0
    assert body["items"][0]["genres"] == ["Even"]
    unknown = client.get("/recommend?user_id=stranger&k=3&explain=true").json()
    assert all(x["popular_now"] for x in unknown["items"])
    assert client.get("/recommend?user_id=0&explain=maybe").status_code == 422
