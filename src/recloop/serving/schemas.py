"""Request and response models: the HTTP contract as it appears in the OpenAPI document.

Handlers validate input with the library's own rules (``recloop.events``) and answer
with plain dicts rendered by orjson; these models *describe* those shapes for
``/docs``, clients and the schemathesis fuzz test.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from recloop.events import DEFAULT_EVENT_TYPES, MAX_ID_LENGTH, MAX_TIMESTAMP

_ID_DOC = f'an integer or a non-empty string of at most {MAX_ID_LENGTH} characters (5 and "5" are the same id)'
Id = int | str
EventType = Literal[DEFAULT_EVENT_TYPES]  # type: ignore[valid-type]


def _id_field(description: str) -> Any:
    return Field(
        description=f"{description}: {_ID_DOC}",
        json_schema_extra={
            "anyOf": [
                {"type": "integer"},
                {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": r"\S"},
            ]
        },
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PredictRequest(_Strict):
    """The design document's body."""

    user_id: Id = _id_field("the user")
    item_id: Id = _id_field("the item")
    behavior: float | None = Field(
        None, description="request-time behaviour feature (finite number)"
    )


class PredictResponse(BaseModel):
    prediction: float = Field(
        ge=0.0, le=1.0, description="probability that the user clicks the item"
    )


class ScoredItem(BaseModel):
    item_id: str
    score: float


class Contribution(BaseModel):
    item_id: str = Field(description="a history item")
    weight: float = Field(description="how much the score falls without it")


class ExplainedItem(ScoredItem):
    """A recommended item; with ``explain=true`` also why."""

    because: list[Contribution] | None = None
    genres: list[str] | None = Field(None, description="tags shared with the user's history")
    popular_now: bool | None = None


class RecommendResponse(BaseModel):
    user_id: str
    items: list[ExplainedItem]
    model_version: int = Field(description="bumped by every fit; carried by snapshots")
    events_applied: int = Field(description="online events applied since the fit")


class EventIn(_Strict):
    """One piece of feedback."""

    user_id: Id = _id_field("the user")
    item_id: Id = _id_field("the item")
    type: EventType = Field("click", description="kind of feedback")
    value: float | None = Field(None, description="rating, watch fraction...; default 1.0")
    timestamp: float | str | None = Field(
        None,
        description="epoch seconds (1970..2100) or ISO-8601; default now",
        json_schema_extra={
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_TIMESTAMP},
                {"type": "string", "format": "date-time"},
                {"type": "null"},
            ]
        },
    )
    context: dict[str, Any] | None = Field(
        None, description="free-form context, kept with the event"
    )


class EventBatch(_Strict):
    events: list[EventIn] = Field(min_length=1)


class EventsAck(BaseModel):
    accepted: int = Field(description="events applied by this request")
    events_applied: int
    model_version: int
    offset: int | None = Field(
        description="the event log's offset of this request's last event (null without a log)"
    )


class HistoryResponse(BaseModel):
    user_id: str
    items: list[str] = Field(description="the user's positive interactions, oldest first")


class SimilarResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]
    method: Literal["cosine", "co-occurrence"]


Attribute = str | float | bool | list[str] | None


class AttributesIn(BaseModel):
    """An item's or user's attributes: ``title``, ``text``, ``genres``/``tags`` (a list or a
    ``|``-separated string), numbers, categories. A null removes nothing; it leaves the cell
    empty."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class AttributesResponse(BaseModel):
    item_id: str | None = None
    user_id: str | None = None
    attributes: dict[str, Attribute]
    created: bool | None = Field(None, description="whether the id was new to the catalogue")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: str
    model_version: int
    events_applied: int
    n_users: int
    n_items: int
    retrieval: Literal["exact", "faiss", "building"]
    users_resident: int = Field(description="users whose state the engine holds")
    users_evicted: int = Field(description="users evicted past max_users since the load")
    user_rows: int = Field(description="rows the user tables are sized to")
    state_bytes: int = Field(description="bytes of the engine's per-user and per-item arrays")
    log_offset: int | None = Field(
        description="the event log's offset of the last event applied (null without a log)"
    )


class AdminResponse(BaseModel):
    path: str
    model_version: int
    events_applied: int


class ErrorDetail(BaseModel):
    field: str | None = Field(description="the offending field, e.g. k or events[3].user_id")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class RecoveringResponse(BaseModel):
    """``/health`` while the service replays its event log (status 503)."""

    status: Literal["recovering", "failed"]
    log_offset: int = Field(description="the last event applied so far")
    target: int = Field(description="the log's last offset when the replay started")
    progress: float = Field(ge=0.0, le=1.0)
    error: ErrorDetail


#: models referenced from hand-written ``openapi_extra`` request bodies
BODY_MODELS: tuple[type[BaseModel], ...] = (PredictRequest, EventIn, EventBatch, AttributesIn)


def body_schemas() -> dict[str, Any]:
    """JSON schemas of ``BODY_MODELS`` keyed by name, with ``#/components/schemas`` refs."""
    _, top = models_json_schema(
        [(m, "validation") for m in BODY_MODELS], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def json_body(*names: str) -> dict[str, Any]:
    """An ``openapi_extra`` request body referring to component schemas by name."""
    refs = [{"$ref": f"#/components/schemas/{n}"} for n in names]
    schema: dict[str, Any] = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "malformed JSON"),
        (401, "missing or invalid API key"),
        (413, "body or batch too large"),
        (422, "invalid field"),
    )
}
