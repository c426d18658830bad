"""``GET /recommend``: top-k items for a user, read-your-writes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recloop.events import MAX_ID_LENGTH, parse_id
from recloop.serving.batching import Job
from recloop.serving.inputs import query_bool, query_id, query_int
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, RecommendResponse
from recloop.serving.state import ServingState


def _parameters(max_k: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "user_id",
            "in": "query",
            "required": True,
            "description": "the user (unknown users get popular items)",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_ID_LENGTH,
                "pattern": r"\S",
            },
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "description": "how many items",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10},
        },
        {
            "name": "exclude_seen",
            "in": "query",
            "required": False,
            "description": "drop items the user interacted with",
            "schema": {"type": "boolean", "default": True},
        },
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "description": "add each item's reasons: because (history items), genres, popular_now",
            "schema": {"type": "boolean", "default": False},
        },
    ]


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["recommend"])
    max_k = state.settings.max_k

    @r.get(
        "/recommend",
        response_model=RecommendResponse,
        responses=ERRORS,
        openapi_extra={"parameters": _parameters(max_k)},
        summary="Top-k items for a user",
    )
    async def recommend(request: Request) -> Response:
        """The ``k`` best items for ``user_id`` with their scores. An event posted to
        ``/events`` is reflected here as soon as that POST has answered."""
        state.keys.require(request, write=False)
        user_id = parse_id(query_id(request, "user_id"), "user_id")
        k = query_int(request, "k", 10, 1, max_k)
        exclude_seen = query_bool(request, "exclude_seen", True)
        explain = query_bool(request, "explain", False)
        rec = state.engine()
        if state.batcher is not None:
            top = await state.batcher.submit(Job("recommend", rec, user_id, k, exclude_seen))
        else:
            top = rec.recommend_with_scores(user_id, k, exclude_seen)
        state.live.served(user_id, [i for i, _ in top[:10]])
        items: list[dict[str, Any]] = [{"item_id": i, "score": s} for i, s in top]
        if explain and items:
            reasons = await run_in_threadpool(rec.explain_items, user_id, [i for i, _ in top])
            items = [{**reason, **item} for item, reason in zip(items, reasons)]
        return OrjsonResponse(
            {
                "user_id": user_id,
                "items": items,
                "model_version": rec.model_version,
                "events_applied": rec.events_applied,
            }
        )

    return r
