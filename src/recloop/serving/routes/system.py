"""``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from recloop.serving.errors import error_response
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ErrorResponse, HealthResponse
from recloop.serving.state import ServingState


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["system"])

    @r.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": ErrorResponse, "description": "no model loaded"}},
        summary="Liveness and model",
    )
    async def health() -> Response:
        """Always open (load balancers call it without a key)."""
        rec = state.rec
        if rec is None:
            return error_response(503, "model", "no model is loaded")
        return OrjsonResponse(
            {
                "status": "ok",
                "model": rec.model_name,
                "model_version": rec.model_version,
                "events_applied": rec.events_applied,
                "n_users": rec.n_users,
                "n_items": rec.n_items,
                "retrieval": state.retrieval_status(),
                **rec.memory_status(),
            }
        )

    @r.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}},
                "description": "text exposition format",
            }
        },
    )
    async def metrics(request: Request) -> Response:
        """Request latency per route, events, online update latency, model version."""
        state.keys.require(request, write=False)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return r
