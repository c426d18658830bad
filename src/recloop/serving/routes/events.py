"""``POST /events``: feedback, one event or a batch, answered once applied."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recloop.serving.errors import ApiError
from recloop.serving.inputs import check_id_number, check_object, read_json
from recloop.serving.responses import OrjsonResponse
from recloop.serving.schemas import ERRORS, ErrorResponse, EventsAck, json_body
from recloop.serving.state import ServingState

#: batches larger than this are applied in a worker thread, so the event loop keeps
#: answering reads meanwhile (smaller ones cost less than the thread hop)
INLINE_EVENTS = 256


def _check_ids(event: Any, prefix: str) -> None:
    if isinstance(event, dict):
        check_id_number(event.get("user_id"), prefix + "user_id")
        check_id_number(event.get("item_id"), prefix + "item_id")


def router(state: ServingState) -> APIRouter:
    r = APIRouter(tags=["events"])
    responses = {**ERRORS, 503: {"model": ErrorResponse, "description": "the log refused it"}}
    limit = state.settings.max_body_bytes
    max_batch = state.settings.max_batch_events

    @r.post(
        "/events",
        response_model=EventsAck,
        responses=responses,
        openapi_extra=json_body("EventIn", "EventBatch"),
        summary="Learn from feedback",
    )
    async def post_events(request: Request) -> Response:
        """One event ``{"user_id", "item_id", "type", "value"?, "timestamp"?, "context"?}``
        or a batch ``{"events": [...]}``. A batch is all-or-nothing: one invalid event
        (named as ``events[i].field``) rejects it. Answered once every event is in its
        user's history (read-your-writes); the parameter step follows within the
        online learner's freshness budget. With an event log, answered once the events
        are also durable; ``offset`` is the last one's log offset, and a write the log
        refuses is a 503 with nothing applied."""
        state.keys.require(request, write=True)
        body = await read_json(request, limit)
        payload: Any
        if isinstance(body, dict) and "events" in body:
            check_object(body, "body", frozenset({"events"}))
            events = body["events"]
            if not isinstance(events, list):
                raise ApiError(422, "events", "must be an array of events")
            if not events:
                raise ApiError(422, "events", "must hold at least one event")
            if len(events) > max_batch:
                raise ApiError(
                    413, "events", f"must hold at most {max_batch} events, got {len(events)}"
                )
            for n, event in enumerate(events):
                if not isinstance(event, dict):
                    raise ApiError(422, f"events[{n}]", "must be a JSON object")
                # only a float id needs the check: the common (string, integer) case costs two lookups
                if isinstance(event.get("user_id"), float) or isinstance(
                    event.get("item_id"), float
                ):
                    _check_ids(event, f"events[{n}].")
            payload = events
        elif isinstance(body, dict):
            _check_ids(body, "")
            payload = body
        else:
            raise ApiError(422, "body", 'must be an event object or {"events": [...]}')
        rec = state.engine()
        durable = state.durable
        offset: int | None = None
        if durable is not None:  # wait for the group commit without holding the event loop
            if isinstance(payload, list) and len(payload) > INLINE_EVENTS:
                future = await run_in_threadpool(durable.submit, payload)
            else:
                future = durable.submit(payload)
            applied, offset = await asyncio.wrap_future(future)  # type: ignore[arg-type]
        elif isinstance(payload, list) and len(payload) > INLINE_EVENTS:
            applied = await run_in_threadpool(rec.update, payload)
        else:
            applied = rec.update(payload)
        state.metrics.events.inc(applied)
        state.live.count(applied)
        if state.live.watching():  # the online hit rate: were these items just served?
            state.live.record_events(
                payload if isinstance(payload, list) else [payload], rec.feedback
            )
        return OrjsonResponse(
            {
                "accepted": applied,
                "events_applied": rec.events_applied,
                "model_version": rec.model_version,
                "offset": offset,
            }
        )

    return r
