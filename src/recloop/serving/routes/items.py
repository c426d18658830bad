"""``GET /items/{item_id}/similar``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from recloop.serving.inputs import query_int
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, ErrorResponse, SimilarResponse
from recloop.serving.state import ServingState


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["items"])
    max_k = state.settings.max_k
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

    return r
