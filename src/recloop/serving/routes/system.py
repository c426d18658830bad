"""``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from recloop.serving.errors import error_response
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ErrorResponse, HealthResponse, RecoveringResponse
from recloop.serving.state import ServingState


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["system"])

    @r.get(
        "/health",
        response_model=HealthResponse,
        responses={
            503: {
                "model": RecoveringResponse | ErrorResponse,
                "description": "recovering (replaying the event log), or no model loaded",
            }
        },
        summary="Liveness and model",
    )
    async def health() -> Response:
        """Always open (load balancers call it without a key). While the event log is
        replayed at startup: 503 with ``"status": "recovering"`` and the progress."""
        rec = state.rec
        recovery = state.recovery
        if rec is None and recovery is not None:
            done, target = int(recovery["log_offset"]), int(recovery["target"])
            failed = "error" in recovery
            message = f"recovery failed: {recovery['error']}" if failed else "replaying the log"
            return OrjsonResponse(
                {
                    "status": "failed" if failed else "recovering",
                    "log_offset": done,
                    "target": target,
                    "progress": round(done / target, 4) if target else 0.0,
                    "error": {"field": "model", "message": message},
                },
                status_code=503,
            )
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
                "log_offset": rec.log_offset if state.durable is not None else None,
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
