"""``GET /items/{item_id}/similar``, ``GET /items/{item_id}``, ``PUT /items/{item_id}``."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recloop.events import parse_id
from recloop.serving.attributes import check_attributes
from recloop.serving.errors import ApiError
from recloop.serving.inputs import query_int, read_json
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import (
    ERRORS,
    AttributesResponse,
    ErrorResponse,
    SimilarResponse,
    json_body,
)
from recloop.serving.state import ServingState


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["items"])
    max_k = state.settings.max_k
    limit = state.settings.max_body_bytes
    k_param = {
        "name": "k",
        "in": "query",
        "required": False,
        "description": "how many items",
        "schema": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10},
    }

    @r.get(
        "/items/{item_id}/similar",
        response_model=SimilarResponse,
        responses={**ERRORS, 404: {"model": ErrorResponse, "description": "unknown item"}},
        openapi_extra={"parameters": [k_param]},
        summary="Items similar to an item",
    )
    async def similar(item_id: str, request: Request) -> Response:
        """Cosine similarity of the model's item vectors when it has them, else
        co-occurrence in users' histories."""
        state.keys.require(request, write=False)
        k = query_int(request, "k", 10, 1, max_k)
        iid, top, method = state.engine().similar_items(item_id, k)
        return OrjsonResponse(
            {
                "item_id": iid,
                "items": [{"item_id": i, "score": s} for i, s in top],
                "method": method,
            }
        )

    @r.get(
        "/items/{item_id}",
        response_model=AttributesResponse,
        responses={**ERRORS, 404: {"model": ErrorResponse, "description": "unknown item"}},
        summary="An item's attributes",
    )
    async def get_item(item_id: str, request: Request) -> Response:
        """The item's attributes (empty for an item known from events only)."""
        state.keys.require(request, write=False)
        iid = parse_id(item_id, "item_id")
        attrs = state.engine().item_metadata(iid)
        if attrs is None:
            raise ApiError(404, "item_id", f"unknown item {iid!r}")
        return OrjsonResponse({"item_id": iid, "attributes": attrs})

    @r.put(
        "/items/{item_id}",
        response_model=AttributesResponse,
        responses=ERRORS,
        openapi_extra=json_body("AttributesIn"),
        summary="Add or change an item",
    )
    async def put_item(item_id: str, request: Request) -> Response:
        """Set an item's attributes (``title``, ``text``, ``genres``/``tags``, numbers,
        categories); given attributes replace the old ones, others stay. A new item is in
        the catalogue when this answers, scored by its content for users whose recent
        items resemble it, with no retraining."""
        state.keys.require(request, write=True)
        iid = parse_id(item_id, "item_id")
        attrs = check_attributes(await read_json(request, limit), "item_id", iid)
        rec = state.engine()
        created = rec.item_metadata(iid) is None
        await run_in_threadpool(rec.set_items, pd.DataFrame([{"item_id": iid, **attrs}]))
        return OrjsonResponse(
            {"item_id": iid, "attributes": rec.item_metadata(iid) or {}, "created": created}
        )

    return r
