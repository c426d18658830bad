"""The dashboard: ``GET /ui`` (a static page) and the small JSON API it reads, ``/ui/api/...``.

The page and its assets are files of the package (``recloop/serving/static/``), read once
when the app is built; nothing is built at install time. The JSON routes are read routes
(a key is needed only with ``read_requires_key``); the page posts feedback to the public
``POST /events``, which needs a key whenever keys are configured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recloop.errors import RecloopError
from recloop.events import MAX_ID_LENGTH, parse_id
from recloop.serving.catalogue import Catalogue
from recloop.serving.errors import ApiError
from recloop.serving.inputs import query_int
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, ErrorResponse
from recloop.serving.state import ServingState

STATIC = Path(__file__).resolve().parent.parent / "static"
#: the files the page loads, with their media types (nothing else under /ui/static)
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "LICENSE-uPlot.txt": "text/plain; charset=utf-8",
}
#: fields of the engine's figures passed to the page when present (the durable event log's)
OPTIONAL_FIGURES = ("log_offset", "log_lag")
MAX_HISTORY = 200


class ItemInfo(BaseModel):
    item_id: str
    title: str | None = Field(None, description="from the model's item table, when it has one")
    genres: str | None = Field(None, description="pipe-separated, when the item table has them")


class ScoredItemInfo(ItemInfo):
    score: float


class UserView(BaseModel):
    user_id: str
    known: bool = Field(description="whether the model has a row for the user")
    history_total: int = Field(description="the user's positive interactions in all")
    history: list[ItemInfo] = Field(
        description="the most recent positive interactions, newest first"
    )
    items: list[ScoredItemInfo] = Field(description="the top-k, best first (seen items excluded)")
    model_version: int
    events_applied: int


class UserMatch(BaseModel):
    user_id: str
    match: str = Field(description="'id', or 'rated <title>'")


class UserSearch(BaseModel):
    q: str
    users: list[UserMatch]


class ItemSearch(BaseModel):
    q: str
    items: list[ItemInfo]


class LatencyMs(BaseModel):
    p50: float | None
    p99: float | None
    steps: int = Field(description="online steps in the latency window")


class StatsPoint(BaseModel):
    t: float = Field(description="epoch seconds")
    events_per_s: float
    hit_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    events_applied: int


class KeysRequired(BaseModel):
    write: bool = Field(description="POST /events needs 'Authorization: Bearer <key>'")
    read: bool = Field(description="read routes need one too")


class Stats(BaseModel):
    model: str
    model_version: int
    events_applied: int = Field(description="online events the model has applied since its fit")
    events_total: int = Field(description="events this server accepted since it started")
    events_per_s: float = Field(description="over the last 10 s")
    update_latency_ms: LatencyMs
    online_hit_rate: float | None = Field(
        description="share of recent positive events whose item was in the top-10 last "
        "served to that user; null before any"
    )
    hit_window_events: int
    n_users: int
    n_items: int
    uptime_s: float
    keys_required: KeysRequired
    log_offset: int | None = Field(None, description="durable event log offset, when there is one")
    log_lag: int | None = Field(None, description="events logged but not yet applied, when known")
    series: list[StatsPoint] = Field(description="one point a second at most, oldest first")


def _query(name: str, description: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_Q = _query(
    "q",
    "what to look for",
    {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": r"\S"},
    True,
)
_LIMIT = _query(
    "limit",
    "how many results",
    {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    False,
)


def _q(request: Request) -> str:
    raw = request.query_params.get("q")
    if raw is None:
        raise ApiError(422, "q", "is required")
    q = raw.strip()
    if not q or len(q) > MAX_ID_LENGTH:
        raise ApiError(422, "q", f"must be 1..{MAX_ID_LENGTH} characters, not only spaces")
    return q


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["dashboard"])
    assets = {name: (STATIC / name).read_bytes() for name in ASSETS}
    page = (STATIC / "index.html").read_bytes()
    max_k = min(state.settings.max_k, 100)
    catalogues: dict[int, Catalogue] = {}

    async def catalogue() -> Catalogue:
        rec = state.engine()
        cat = catalogues.get(id(rec))
        if cat is None or cat.rec is not rec:  # a reload serves a new recommender
            # a million titles take about a second to read: off the event loop
            cat = await run_in_threadpool(Catalogue, rec)
            catalogues.clear()
            catalogues[id(rec)] = cat
        return cat

    @r.get("/ui", include_in_schema=False)
    async def ui(request: Request) -> Response:
        # /ui?user_id=ID carries that user's view in the page, so the list is in the document
        # by its load event (no second request); with read keys the page fetches it instead
        body = page
        raw = request.query_params.get("user_id")
        if raw and state.rec is not None and not state.keys.read_requires_key:
            try:
                view = await view_of(parse_id(raw.strip(), "user_id"), 10, 20)
            except RecloopError:
                view = None
            if view is not None:
                data = orjson.dumps(view).replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
                body = page.replace(
                    _INITIAL,
                    b'<script id="initial-view" type="application/json">' + data + b"</script>",
                )
        return Response(body, media_type="text/html; charset=utf-8", headers=_NO_CACHE)

    @r.get("/ui/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in assets:
            raise ApiError(404, "path", f"no such file: {name[:100]}")
        return Response(assets[name], media_type=ASSETS[name], headers=_NO_CACHE)

    @r.get(
        "/ui/api/stats",
        response_model=Stats,
        responses=ERRORS,
        summary="Live figures for the dashboard",
    )
    async def stats(request: Request) -> Response:
        """Events per second, online update latency, the online hit rate, model version
        and events applied, with a series of the same figures (sampled at most once a
        second, when this route is read) for the last ten minutes."""
        state.keys.require(request, write=False)
        rec = state.engine()
        live = state.live
        figures = state.figures()
        applied = int(figures.get("events_applied", 0))
        steps = np.asarray(figures.get("update_latency_ms", ()), np.float64)
        p50 = float(np.quantile(steps, 0.5)) if len(steps) else None
        p99 = float(np.quantile(steps, 0.99)) if len(steps) else None
        eps = live.events_per_second()
        hit = live.hit_rate()
        series = live.sample(
            {
                "t": time.time(),
                "events_per_s": eps,
                "hit_rate": hit,
                "p50_ms": p50,
                "p99_ms": p99,
                "events_applied": applied,
            }
        )
        body: dict[str, Any] = {
            "model": rec.model_name,
            "model_version": int(figures.get("model_version", 0)),
            "events_applied": applied,
            "events_total": live.events_total,
            "events_per_s": eps,
            "update_latency_ms": {"p50": p50, "p99": p99, "steps": int(len(steps))},
            "online_hit_rate": hit,
            "hit_window_events": live.hit_window_events(),
            "n_users": int(figures.get("users", 0)),
            "n_items": int(figures.get("items", 0)),
            "uptime_s": live.clock() - live.started,
            "keys_required": {
                "write": state.keys.enabled,
                "read": state.keys.read_requires_key,
            },
            "series": series,
        }
        body.update({k: figures[k] for k in OPTIONAL_FIGURES if figures.get(k) is not None})
        return OrjsonResponse(body)

    @r.get(
        "/ui/api/users",
        response_model=UserSearch,
        responses=ERRORS,
        openapi_extra={"parameters": [_Q, _LIMIT]},
        summary="Find users by id, or by a title they rated",
    )
    async def search_users(request: Request) -> Response:
        """Users whose id is or starts with ``q`` (shortest first), then, when the model has
        item titles, users who rated an item whose title contains ``q``."""
        state.keys.require(request, write=False)
        q = _q(request)
        limit = query_int(request, "limit", 20, 1, 100)
        cat = await catalogue()
        users = await run_in_threadpool(cat.search_users, q, limit)  # scans every id
        return OrjsonResponse({"q": q, "users": users})

    @r.get(
        "/ui/api/items",
        response_model=ItemSearch,
        responses=ERRORS,
        openapi_extra={"parameters": [_Q, _LIMIT]},
        summary="Find items by id or title",
    )
    async def search_items(request: Request) -> Response:
        """The item whose id is ``q``, then items whose title contains ``q`` (any case)."""
        state.keys.require(request, write=False)
        q = _q(request)
        limit = query_int(request, "limit", 20, 1, 100)
        cat = await catalogue()
        items = await run_in_threadpool(cat.search_items, q, limit)  # scans every title
        return OrjsonResponse({"q": q, "items": items})

    @r.get(
        "/ui/api/users/{user_id}",
        response_model=UserView,
        responses={**ERRORS, 404: {"model": ErrorResponse, "description": "no such route"}},
        openapi_extra={
            "parameters": [
                _query(
                    "k",
                    "how many recommendations",
                    {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10},
                    False,
                ),
                _query(
                    "history",
                    "how many recent history items",
                    {"type": "integer", "minimum": 0, "maximum": MAX_HISTORY, "default": 20},
                    False,
                ),
            ]
        },
        summary="A user's recent history and top-k, with titles",
    )
    async def user_view(user_id: str, request: Request) -> Response:
        """What the dashboard shows of a user: the most recent positive interactions (newest
        first) and the top-``k`` with scores, with titles and genres when the model has an
        item table. Counts as serving the list for the online hit rate, like
        ``/recommend``."""
        state.keys.require(request, write=False)
        uid = parse_id(user_id, "user_id")
        k = query_int(request, "k", 10, 1, max_k)
        n_hist = query_int(request, "history", 20, 0, MAX_HISTORY)
        return OrjsonResponse(await view_of(uid, k, n_hist))

    async def view_of(uid: str, k: int, n_hist: int) -> dict[str, Any]:
        cat = await catalogue()
        rec = cat.rec
        top = rec.recommend_with_scores(uid, k)
        state.live.served(uid, [i for i, _ in top[:10]])
        history = rec.history(uid)
        recent = history[::-1][:n_hist]
        items = cat.describe([i for i, _ in top])
        for row, (_, score) in zip(items, top):
            row["score"] = score
        figures = state.figures()
        return {
            "user_id": uid,
            "known": rec.knows_user(uid),
            "history_total": len(history),
            "history": cat.describe(recent),
            "items": items,
            "model_version": int(figures.get("model_version", 0)),
            "events_applied": int(figures.get("events_applied", 0)),
        }

    return r


_NO_CACHE = {"Cache-Control": "no-cache"}
_INITIAL = b"<!-- initial-view -->"
