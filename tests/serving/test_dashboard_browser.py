"""The dashboard in a real headless Chromium, against a real ``recloop serve`` process.

Driven by Playwright's Python package with Debian's ``/usr/bin/chromium`` (``make setup``
installs it). The server runs with an API key, so the page's key form is part of the path.
Set ``RECLOOP_SCREENSHOT=docs/dashboard.png`` to save a screenshot of the page.

Timings (page load, click to re-rendered list) are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recloop import Recommender
from serverproc import free_port, running
from synthdata import synthetic

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("RECLOOP_CHROMIUM", "/usr/bin/chromium"))
KEY = "dashboard-test-key"
#: MACHINE.md: what Chromium needs here (root, no GPU, no network beyond loopback)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASSET_BUDGET = 500 * 1024

sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (make setup installs it)", allow_module_level=True)


def titled_model(path: Path) -> Path:
    """The serving tests' two-group MF model, with an item table of titles and genres."""
    df = synthetic()
    ids = sorted(df["item_id"].unique())
    genres = ["Drama", "Comedy|Romance", "Action|Sci-Fi", "Animation|Children's"]
    items = pd.DataFrame(
        {
            "title": [f"Film number {i} ({1990 + i % 20})" for i in ids],
            "genres": [genres[i % 4] for i in ids],
        },
        index=pd.Index([str(i) for i in ids], name="item_id"),
    )
    Recommender(model="mf", seed=0).fit(df, items=items).save(path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``recloop serve`` on a free loopback port, with one API key; yields its base URL."""
    model = titled_model(tmp_path_factory.mktemp("dashboard") / "mf")
    port = free_port()
    cmd = [sys.executable, "-m", "recloop", "serve", "--model", str(model), "--port", str(port)]
    env = {"RECLOOP_API_KEYS": KEY, "RECLOOP_LOG_LEVEL": "warning"}
    with running(cmd, port, env) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent context in a fresh profile folder (MACHINE.md: a fresh user-data-dir)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.close()


def get_json(url: str, key: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def post_event(base: str, event: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        base + "/events",
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def traffic(base: str, seconds: float) -> None:
    """Other users browse and click for ``seconds``: most clicks on an item just served."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        user = 20 + n % 30
        served = get_json(f"{base}/recommend?user_id={user}&k=10")["items"]
        item = served[n % 10]["item_id"] if n % 4 else str(n % 80)
        post_event(base, {"user_id": user, "item_id": item, "type": "click"})
        n += 1
        time.sleep(0.05 + 0.1 * (n % 7 == 0))


def rec_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#recs li[data-item-id]", "els => els.map(e => e.dataset.itemId)"
    )


def history_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#history li[data-item-id]", "els => els.map(e => e.dataset.itemId)"
    )


def test_assets_fit_the_budget(server: str) -> None:
    html = urllib.request.urlopen(server + "/ui", timeout=10).read()
    refs = re.findall(rb'(?:src|href)="(/ui/static/[^"]+)"', html)
    assert {r.decode() for r in refs} >= {
        "/ui/static/dashboard.js",
        "/ui/static/uPlot.iife.min.js",
        "/ui/static/dashboard.css",
    }
    total = len(html) + sum(
        len(urllib.request.urlopen(server + r.decode(), timeout=10).read()) for r in refs
    )
    print(f"\ndashboard assets: {total:,} bytes (budget {ASSET_BUDGET:,})")
    assert total < ASSET_BUDGET


def test_click_changes_the_list_history_and_live_panel(server: str, browser: Any) -> None:
    with Page(browser) as p:
        page = p.page
        start = time.perf_counter()
        page.goto(server + "/ui?user_id=2")
        page.wait_for_selector("#recs li[data-item-id]")
        page.wait_for_function("document.getElementById('f-total').textContent !== '–'")
        load_ms = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n.loadEventEnd - n.startTime; }"
        )
        print(
            f"\n/ui load event {load_ms:.0f} ms; first list and figures shown after "
            f"{1000 * (time.perf_counter() - start):.0f} ms"
        )
        before, hist_before = rec_ids(page), history_ids(page)
        assert len(before) == 10
        titles = page.eval_on_selector_all("#recs li .title", "els => els.map(e => e.textContent)")
        assert all(t.startswith("Film number") for t in titles)
        total_before = int(page.inner_text("#f-total"))

        # without a key the server refuses the write and the page says so
        target = before[0]
        page.click(f'#recs li[data-item-id="{target}"] button[data-type="click"]')
        page.wait_for_selector("#status.error")
        assert "API key" in page.inner_text("#status")
        assert rec_ids(page) == before

        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")
        page.click(f'#recs li[data-item-id="{target}"] button[data-type="click"]')
        page.wait_for_function(
            f"!document.querySelector('#recs li[data-item-id=\"{target}\"]')", timeout=5000
        )
        render_ms = float(page.get_attribute("#recs", "data-render-ms") or "nan")
        print(f"click to re-rendered list: {render_ms:.1f} ms (measured in the page)")
        after, hist_after = rec_ids(page), history_ids(page)
        assert target not in after and len(after) == 10
        assert hist_after[0] == target and len(hist_after) >= len(hist_before)
        assert int(page.inner_text("#hist-total")) == len(hist_before) + 1 or len(hist_before) == 20
        # what changed is shown: the item that moved in is marked new, the rest moved up
        assert page.locator("#recs li.new").count() >= 1
        assert page.locator("#recs li.up").count() >= 1
        page.wait_for_function(
            f"Number(document.getElementById('f-total').textContent) > {total_before}"
        )
        assert page.inner_text("#f-hit") != "–"  # the click was on a served item: a hit
        if os.environ.get("RECLOOP_SCREENSHOT"):
            traffic(server, seconds=20)  # something for the charts to show
            page.screenshot(path=os.environ["RECLOOP_SCREENSHOT"], full_page=True)
        assert p.errors == []


def test_search_by_title_finds_raters(server: str, browser: Any) -> None:
    with Page(browser) as p:
        page = p.page
        page.goto(server + "/ui")
        page.fill("#search", "Film number 7 ")
        page.press("#search", "Enter")
        page.wait_for_selector("#search-results button[data-user-id]")
        labels = page.eval_on_selector_all(
            "#search-results button", "els => els.map(e => e.textContent)"
        )
        assert any("rated Film number 7 " in t for t in labels)
        uid = page.get_attribute("#search-results button[data-user-id]", "data-user-id")
        page.focus("#search-results button[data-user-id]")
        page.keyboard.press("Enter")
        page.wait_for_selector("#recs li[data-item-id]")
        assert page.inner_text("#user-id").startswith(str(uid))
        assert "user_id=" + str(uid) in page.url
        assert p.errors == []


def test_every_control_is_reachable_by_keyboard(server: str, browser: Any) -> None:
    with Page(browser) as p:
        page = p.page
        page.goto(server + "/ui?user_id=3")
        page.wait_for_selector("#recs li[data-item-id]")
        page.fill("#search", "1")
        page.press("#search", "Enter")
        page.wait_for_selector("#search-results button")
        controls = page.evaluate(
            "() => Array.from(document.querySelectorAll('button, input, a'))"
            ".filter(e => e.offsetParent !== null).length"
        )
        page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
        reached: set[str] = set()
        for _ in range(controls + 20):
            page.keyboard.press("Tab")
            tag = page.evaluate(
                "() => { const e = document.activeElement;"
                " if (!e || e === document.body) return null;"
                " if (!e.dataset.kbd) e.dataset.kbd = String(Math.random());"
                " return e.dataset.kbd; }"
            )
            if tag:
                reached.add(tag)
        unreached = page.evaluate(
            "() => Array.from(document.querySelectorAll('button, input, a'))"
            ".filter(e => e.offsetParent !== null && !e.dataset.kbd)"
            ".map(e => e.outerHTML.slice(0, 80))"
        )
        assert unreached == []
        assert len(reached) >= controls
        # a feedback button works from the keyboard too
        first = rec_ids(page)[0]
        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")
        page.focus(f'#recs li[data-item-id="{first}"] button[data-type="purchase"]')
        page.keyboard.press("Enter")
        page.wait_for_function(f"!document.querySelector('#recs li[data-item-id=\"{first}\"]')")
        assert p.errors == []


def test_a_reload_shows_an_event_posted_through_the_api(server: str, browser: Any) -> None:
    """What an outside check does: post an event for a user, reload /ui?user_id=ID."""
    with Page(browser) as p:
        page = p.page
        page.goto(server + "/ui?user_id=5")
        page.wait_for_selector("#recs li[data-item-id]")
        before = rec_ids(page)
        post_event(server, {"user_id": 5, "item_id": before[1], "type": "purchase"})
        page.reload()  # returns at the load event: the list is in the document by then
        after = rec_ids(page)
        assert before[1] not in after and after != before
        assert history_ids(page)[0] == before[1]
        stats = get_json(server + "/ui/api/stats")
        assert stats["events_total"] >= 1
        assert p.errors == []
