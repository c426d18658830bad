"""The dashboard's JSON API and the online hit rate, in process (the page itself is tested in
a real Chromium by test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from recloop import Recommender
from recloop.events import FeedbackMapping
from recloop.serving.live import LiveStats
from synthdata import synthetic


@pytest.fixture(scope="module")
def titled(tmp_path_factory: pytest.TempPathFactory):
    df = synthetic()
    ids = sorted(df["item_id"].unique())
    items = pd.DataFrame(
        {"title": [f"Title {i}" for i in ids], "genres": ["Drama|Comedy"] * len(ids)},
        index=pd.Index([str(i) for i in ids], name="item_id"),
    )
    path = tmp_path_factory.mktemp("titled") / "mf"
    Recommender(model="mf", seed=0).fit(df, items=items).save(path)
    return path


@pytest.fixture
def ui(make_client, titled):
    return make_client(engine=Recommender.load(titled))


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_user_view_has_titles_history_newest_first_and_scores(ui):
    rec = ui.app.state.serving.rec
    view = ui.get("/ui/api/users/3", params={"k": 5, "history": 4}).json()
    assert view["known"] is True and view["user_id"] == "3"
    assert [i["item_id"] for i in view["history"]] == rec.history("3")[::-1][:4]
    assert view["history_total"] == len(rec.history("3"))
    assert [(i["item_id"], pytest.approx(i["score"])) for i in view["items"]] == [
        (i, pytest.approx(s)) for i, s in rec.recommend_with_scores("3", 5)
    ]
    assert all(i["title"] == f"Title {i['item_id']}" for i in view["items"] + view["history"])
    assert view["items"][0]["genres"] == "Drama|Comedy"
    unknown = ui.get("/ui/api/users/nobody").json()
    assert unknown["known"] is False and unknown["history"] == [] and len(unknown["items"]) == 10


def test_user_view_without_an_item_table_has_no_titles(client):
    view = client.get("/ui/api/users/3").json()
    assert view["items"] and all(i["title"] is None for i in view["items"])


def test_events_show_in_the_view_and_the_stats(ui):
    before = ui.get("/ui/api/users/4").json()
    clicked = before["items"][0]["item_id"]
    assert ui.post("/events", json={"user_id": 4, "item_id": clicked}).status_code == 200
    after = ui.get("/ui/api/users/4").json()
    assert clicked not in [i["item_id"] for i in after["items"]]
    assert after["history"][0]["item_id"] == clicked
    assert after["events_applied"] == before["events_applied"] + 1
    stats = ui.get("/ui/api/stats").json()
    assert stats["events_total"] == 1 and stats["events_applied"] == 1
    assert stats["events_per_s"] > 0
    assert stats["model"] == "mf" and stats["n_users"] == 60
    assert stats["keys_required"] == {"write": False, "read": False}
    assert "log_offset" not in stats  # shown only where a durable log reports one
    assert stats["series"][-1]["events_applied"] == 1


def test_online_hit_rate_counts_positive_events_on_served_lists(ui):
    served = [i["item_id"] for i in ui.get("/recommend", params={"user_id": 6}).json()["items"]]
    unserved = next(i for i in map(str, range(80)) if i not in served)
    assert ui.get("/ui/api/stats").json()["online_hit_rate"] is None
    ui.post("/events", json={"user_id": 6, "item_id": served[3], "type": "purchase"})
    ui.post("/events", json={"events": [{"user_id": "6", "item_id": unserved}]})
    ui.post("/events", json={"user_id": 6, "item_id": served[4], "type": "dislike"})  # negative
    ui.post("/events", json={"user_id": 7, "item_id": served[5]})  # user 7 was never served
    stats = ui.get("/ui/api/stats").json()
    assert stats["online_hit_rate"] == 0.5 and stats["hit_window_events"] == 2
    text = ui.get("/metrics").text
    assert metric(text, "recloop_online_hit_rate") == 0.5
    assert metric(text, "recloop_online_hit_window_events") == 2


def test_live_stats_bounds_what_it_keeps():
    now = [1000.0]
    live = LiveStats(served_capacity=2, hit_window=3, rate_seconds=10, clock=lambda: now[0])
    for u in ("a", "b", "c"):
        live.served(u, [f"{u}{n}" for n in range(12)])
    fb = FeedbackMapping()
    live.record_events(
        [
            {"user_id": u, "item_id": i}
            for u, i in (("a", "a0"), ("b", "b9"), ("b", "b10"), ("c", "c0"))
        ],
        fb,
    )
    assert live.hit_window_events() == 3  # "a" was dropped: the least recently served
    assert live.hit_rate() == pytest.approx(2 / 3)  # b10 is past the top-10
    live.record_events([{"user_id": "c", "item_id": "x", "type": "purchase"}] * 5, fb)
    assert live.hit_rate() == 0.0 and live.hit_window_events() == 3
    live.count(30)
    now[0] += 20
    live.count(10)
    assert live.events_per_second() == 1.0  # the 30 are out of the 10 s window
    for t in (1.0, 1.5, 2.0):
        series = live.sample({"t": t})
    assert [p["t"] for p in series] == [1.0, 2.0]


def test_user_search_by_id_prefix_then_by_title(ui):
    users = ui.get("/ui/api/users", params={"q": "1", "limit": 5}).json()["users"]
    assert [u["user_id"] for u in users] == ["1", "10", "11", "12", "13"]
    assert {u["match"] for u in users} == {"id"}
    rec = ui.app.state.serving.rec
    by_title = ui.get("/ui/api/users", params={"q": "Title 7", "limit": 50}).json()["users"]
    raters = {u["user_id"] for u in by_title if u["match"] == "rated Title 7"}
    assert raters and all("7" in rec.history(u) for u in raters)
    assert ui.get("/ui/api/users", params={"q": "zz-none"}).json()["users"] == []


def test_item_search_by_id_and_title(ui):
    items = ui.get("/ui/api/items", params={"q": "title 1", "limit": 3}).json()["items"]
    assert [i["item_id"] for i in items] == ["1", "10", "11"]
    exact = ui.get("/ui/api/items", params={"q": "42", "limit": 2}).json()["items"]
    assert exact[0] == {"item_id": "42", "title": "Title 42", "genres": "Drama|Comedy"}


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/ui/api/users", {}, "q"),
        ("/ui/api/users", {"q": "   "}, "q"),
        ("/ui/api/users", {"q": "x" * 300}, "q"),
        ("/ui/api/items", {"q": "a", "limit": 0}, "limit"),
        ("/ui/api/users/3", {"k": 101}, "k"),
        ("/ui/api/users/3", {"history": -1}, "history"),
    ],
)
def test_bad_queries_are_422_naming_the_field(ui, path, params, field):
    r = ui.get(path, params=params)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


def test_page_and_assets_are_served_and_nothing_else(ui):
    page = ui.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="recs"' in page.text
    js = ui.get("/ui/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert ui.get("/ui/static/LICENSE-uPlot.txt").text.startswith("The MIT License")
    for bad in ("/ui/static/index.html", "/ui/static/..%2F..%2Fapp.py", "/ui/static/x.js"):
        r = ui.get(bad)
        assert r.status_code == 404 and r.json()["error"]["field"] == "path"


def test_keys_protect_reads_only_when_asked(make_client, rec):
    keyed = make_client(engine=rec, api_keys="k1")
    assert keyed.get("/ui").status_code == 200
    assert keyed.get("/ui/api/stats").json()["keys_required"] == {"write": True, "read": False}
    assert keyed.post("/events", json={"user_id": 1, "item_id": 2}).status_code == 401
    closed = make_client(engine=rec, api_keys="k1", read_requires_key=True)
    assert closed.get("/ui").status_code == 200  # the page holds no data
    for path in ("/ui/api/stats", "/ui/api/users/1", "/ui/api/users?q=1", "/ui/api/items?q=1"):
        assert closed.get(path).status_code == 401, path
        assert closed.get(path, headers={"Authorization": "Bearer k1"}).status_code == 200, path
    doc = closed.get("/openapi.json", headers={"Authorization": "Bearer k1"}).json()
    assert doc["paths"]["/ui/api/stats"]["get"]["security"] == [{"bearer": []}]


def test_openapi_documents_the_dashboard_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ui/api/stats", "/ui/api/users", "/ui/api/items", "/ui/api/users/{user_id}"} <= set(
        paths
    )
    assert "/ui" not in paths
    params = {p["name"] for p in paths["/ui/api/users"]["get"]["parameters"]}
    assert params == {"q", "limit"}


def initial_view(html: str) -> dict | None:
    m = re.search(r'<script id="initial-view" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1)) if m else None


def test_ui_with_a_user_id_carries_the_view_in_the_page(ui):
    view = initial_view(ui.get("/ui", params={"user_id": "3"}).text)
    assert view is not None and view["user_id"] == "3"
    assert view["items"] == ui.get("/ui/api/users/3").json()["items"]
    assert initial_view(ui.get("/ui").text) is None
    assert initial_view(ui.get("/ui", params={"user_id": "x" * 300}).text) is None


def test_the_embedded_view_cannot_close_its_script(make_client, rec):
    df = synthetic()
    ids = sorted(df["item_id"].unique())
    items = pd.DataFrame(
        {"title": ["</script><script>alert(1)</script>"] * len(ids)},
        index=pd.Index([str(i) for i in ids], name="item_id"),
    )
    client = make_client(engine=Recommender(model="popularity").fit(df, items=items))
    html = client.get("/ui", params={"user_id": "3"}).text
    assert "<script>alert" not in html
    assert initial_view(html)["items"][0]["title"] == "</script><script>alert(1)</script>"


def test_no_view_in_the_page_when_reads_need_a_key(make_client, rec):
    client = make_client(engine=rec, api_keys="k1", read_requires_key=True)
    assert initial_view(client.get("/ui", params={"user_id": "3"}).text) is None
