"""``GET /users/{user_id}/history``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from recloop.events import parse_id
from recloop.serving.inputs import query_int
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, HistoryResponse
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

    return r
