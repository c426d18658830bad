"""``POST /predict``: the design document's click probability."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from starlette.responses import Response

from recloop.events import parse_id, parse_value
from recloop.serving.batching import Job
from recloop.serving.errors import ApiError
from recloop.serving.inputs import check_id_number, check_object, read_json
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, PredictResponse, json_body
from recloop.serving.state import ServingState

_FIELDS = frozenset({"user_id", "item_id", "behavior"})


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["predict"])
    limit = state.settings.max_body_bytes

    @r.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra=json_body("PredictRequest"),
        summary="Probability that a user clicks an item",
    )
    async def predict(request: Request) -> Response:
        """Body ``{"user_id": 1, "item_id": 2, "behavior": 0.5}`` (``behavior`` optional) →
        ``{"prediction": p}`` with 0 ≤ p ≤ 1. Works with every model: those without a
        click model answer the item's percentile among the user's scores."""
        state.keys.require(request, write=False)
        body = check_object(
            await read_json(request, limit), "body", _FIELDS, ("user_id", "item_id")
        )
        check_id_number(body["user_id"], "user_id")
        check_id_number(body["item_id"], "item_id")
        user_id, item_id = (
            parse_id(body["user_id"], "user_id"),
            parse_id(body["item_id"], "item_id"),
        )
        raw = body.get("behavior")
        behavior = None if raw is None else parse_value(raw, "behavior")
        rec = state.engine()
        if state.batcher is not None:
            p = await state.batcher.submit(
                Job("predict", rec, user_id, item_id=item_id, behavior=behavior)
            )
        else:
            p = rec.predict_proba(user_id, item_id, behavior)
        if not math.isfinite(p):
            raise ApiError(500, None, "the model returned a non-finite probability")
        return OrjsonResponse({"prediction": min(1.0, max(0.0, float(p)))})

    return r
