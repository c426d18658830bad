"""``GET /users/{user_id}/history``, ``GET /users/{user_id}``, ``PUT /users/{user_id}``."""

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
    HistoryResponse,
    json_body,
)
from recloop.serving.state import ServingState

_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": "only the most recent items",
    "schema": {"type": "integer", "minimum": 1, "maximum": 100_000},
}


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["users"])

    @r.get(
        "/users/{user_id}/history",
        response_model=HistoryResponse,
        responses=ERRORS,
        openapi_extra={"parameters": [_LIMIT]},
        summary="A user's positive interactions",
    )
    async def history(user_id: str, request: Request) -> Response:
        """Items the user interacted with positively, oldest first (empty for an unknown user)."""
        state.keys.require(request, write=False)
        uid = parse_id(user_id, "user_id")
        limit = query_int(request, "limit", 0, 1, 100_000) if "limit" in request.query_params else 0
        items = state.engine().history(uid)
        return OrjsonResponse({"user_id": uid, "items": items[-limit:] if limit else items})

    @r.get(
        "/users/{user_id}",
        response_model=AttributesResponse,
        responses={**ERRORS, 404: {"model": ErrorResponse, "description": "no attributes"}},
        summary="A user's attributes",
    )
    async def get_user(user_id: str, request: Request) -> Response:
        """The attributes set for the user (404 when none were)."""
        state.keys.require(request, write=False)
        uid = parse_id(user_id, "user_id")
        attrs = state.engine().user_metadata(uid)
        if attrs is None:
            raise ApiError(404, "user_id", f"no attributes for user {uid!r}")
        return OrjsonResponse({"user_id": uid, "attributes": attrs})

    @r.put(
        "/users/{user_id}",
        response_model=AttributesResponse,
        responses=ERRORS,
        openapi_extra=json_body("AttributesIn"),
        summary="Add or change a user's attributes",
    )
    async def put_user(user_id: str, request: Request) -> Response:
        """Set a user's attributes (age, gender, occupation...); given attributes replace the
        old ones, others stay."""
        state.keys.require(request, write=True)
        uid = parse_id(user_id, "user_id")
        attrs = check_attributes(
            await read_json(request, state.settings.max_body_bytes), "user_id", uid
        )
        rec = state.engine()
        created = rec.user_metadata(uid) is None
        await run_in_threadpool(rec.set_users, pd.DataFrame([{"user_id": uid, **attrs}]))
        return OrjsonResponse(
            {"user_id": uid, "attributes": rec.user_metadata(uid) or {}, "created": created}
        )

    return r
