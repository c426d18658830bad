"""``POST /admin/snapshot`` and ``POST /admin/reload`` (write key required when keys are set)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recloop.engine import Recommender
from recloop.serving.errors import ApiError
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, AdminResponse, ErrorResponse
from recloop.serving.state import ServingState

log = logging.getLogger(__name__)
_RESPONSES = {
    **ERRORS,
    409: {"model": ErrorResponse, "description": "no model path, or no snapshot there"},
}


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["admin"], prefix="/admin")

    def model_path() -> Path:
        path = state.settings.model_path
        if path is None:
            raise ApiError(
                409, "model_path", "no model path is configured (RECLOOP_MODEL_PATH or --model)"
            )
        return path

    @r.post(
        "/snapshot",
        response_model=AdminResponse,
        responses=_RESPONSES,
        summary="Save the model to its path",
    )
    async def snapshot(request: Request) -> Response:
        """Atomically write the live model (online updates included) to ``model_path``; with
        a data folder, a snapshot there instead (and the log trimmed behind the oldest kept)."""
        state.keys.require(request, write=True)
        rec = state.engine()
        durable = state.durable if state.durable is not None and state.durable.store else None
        path = model_path() if durable is None else Path()
        if not state.admin_lock.acquire(blocking=False):
            raise ApiError(409, None, "another snapshot or reload is running")
        try:
            if durable is not None:
                path = (await run_in_threadpool(durable.snapshot)).folder
            else:
                await run_in_threadpool(rec.save, path)
        finally:
            state.admin_lock.release()
        log.info("snapshot written to %s", path)
        return OrjsonResponse(
            {
                "path": str(path),
                "model_version": rec.model_version,
                "events_applied": rec.events_applied,
            }
        )

    @r.post(
        "/reload",
        response_model=AdminResponse,
        responses=_RESPONSES,
        summary="Load the model from its path",
    )
    async def reload(request: Request) -> Response:
        """Load ``model_path`` and serve it; requests in flight finish on the old model."""
        state.keys.require(request, write=True)
        path = model_path()
        if state.durable is not None:
            raise ApiError(
                409,
                "model_path",
                "reload is not available with an event log: restart the service, which "
                "recovers from its newest snapshot and the log",
            )
        if not state.admin_lock.acquire(blocking=False):
            raise ApiError(409, None, "another snapshot or reload is running")
        try:
            try:
                rec = await run_in_threadpool(Recommender.load, path)
            except Exception as exc:  # a missing, partial or foreign snapshot: the old model stays
                raise ApiError(
                    409, "model_path", f"cannot load a snapshot from {str(path)!r}: {exc}"
                ) from None
            state.replace(rec)
        finally:
            state.admin_lock.release()
        log.info("model reloaded from %s", path)
        return OrjsonResponse(
            {
                "path": str(path),
                "model_version": rec.model_version,
                "events_applied": rec.events_applied,
            }
        )

    return r
