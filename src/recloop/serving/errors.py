"""Errors at the HTTP edge: every failure is a JSON body ``{"error": {"field", "message"}}``.

Library errors become HTTP statuses here and nowhere else: ``InvalidInputError`` → 422,
``UnknownIdError`` → 404, ``NotFittedError`` and ``StorageError`` → 503; malformed JSON → 400; oversize bodies → 413; unknown routes →
404; a wrong method → 405. An unexpected exception is logged and answered as a JSON 500
that says nothing about its cause.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from recloop.errors import (
    InvalidInputError,
    NotFittedError,
    RecloopError,
    StorageError,
    UnknownIdError,
)
from recloop.serving.responses import OrjsonResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error answered as ``{"error": {"field": ..., "message": ...}}``.

    Parameters
    ----------
    status
        HTTP status code (4xx for the caller's mistakes).
    field
        The offending field (``"k"``, ``"events[3].user_id"``, ``"body"``), or ``None``.
    message
        What is wrong and what is allowed.
    headers
        Extra response headers (``WWW-Authenticate`` on 401).
    """

    def __init__(
        self, status: int, field: str | None, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field
        self.message = message
        self.headers = headers


def error_response(
    status: int, field: str | None, message: str, headers: dict[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse(
        {"error": {"field": field, "message": message}}, status_code=status, headers=headers
    )


async def _handle(request: Request, exc: Exception) -> Response:
    """One handler for every error type, so the mapping reads in one place."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.field, exc.message, exc.headers)
    if isinstance(exc, InvalidInputError):
        return error_response(422, exc.field, exc.message)
    if isinstance(exc, UnknownIdError):
        return error_response(404, exc.field, exc.message)
    if isinstance(exc, NotFittedError):
        return error_response(503, "model", str(exc))
    if isinstance(exc, StorageError):  # the log refused the write: nothing was applied
        return error_response(503, "log", str(exc))
    if isinstance(exc, RecloopError):
        return error_response(400, None, str(exc))
    if isinstance(exc, StarletteHTTPException):
        path = request.url.path[:200]
        if exc.status_code == 404:
            return error_response(404, "path", f"no such route: {path}")
        if exc.status_code == 405:
            return error_response(
                405,
                "method",
                f"{request.method} is not allowed on {path}",
                dict(exc.headers) if exc.headers else None,
            )
        return error_response(
            exc.status_code,
            None,
            str(exc.detail or "error"),
            dict(exc.headers) if exc.headers else None,
        )
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path", "header")]
        return error_response(422, ".".join(loc) or None, str(first.get("msg", "invalid request")))
    log.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    return error_response(500, None, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    for kind in (ApiError, RecloopError, StarletteHTTPException, RequestValidationError, Exception):
        app.add_exception_handler(kind, _handle)
