"""Reading untrusted request input: bodies with a size limit, JSON, query parameters.

Everything here raises ``ApiError`` naming the field; the event and id rules
themselves are the library's (``recloop.events``), applied by the engine.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from recloop.serving.errors import ApiError

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_MAX_SAFE_INT = 2**53


async def read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON; 413 above ``limit`` bytes, 400 when malformed.

    ``Content-Length`` is checked first; a chunked body is counted while it streams,
    so an oversize body is refused without being held in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(
                400, "content-length", f"must be a non-negative integer, got {declared[:40]!r}"
            )
        if int(declared) > limit:
            raise ApiError(413, "body", f"must be at most {limit} bytes, got {int(declared)}")
        body = await request.body()
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body", f"must be at most {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    if len(body) > limit:
        raise ApiError(413, "body", f"must be at most {limit} bytes, got {len(body)}")
    if not body:
        raise ApiError(400, "body", "must be a JSON document, got an empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = _non_finite_field(body)
        if where is not None:
            raise ApiError(422, where[0], f"must be a finite number, got {where[1]}") from None
        raise ApiError(400, "body", f"malformed JSON: {exc}") from None


class _NonFinite(str):
    """Marks a NaN/Infinity literal found by the error path's second parse."""


def _non_finite_field(body: bytes) -> tuple[str, str] | None:
    """Where a ``NaN``/``Infinity`` literal sits (``"events[2].value"``), if that made JSON invalid."""
    try:
        doc = json.loads(body, parse_constant=_NonFinite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None

    def walk(node: Any, path: str) -> tuple[str, str] | None:
        if isinstance(node, _NonFinite):
            return path or "body", str(node)
        if isinstance(node, dict):
            for key, value in node.items():
                found = walk(value, f"{path}.{key}" if path else str(key))
                if found:
                    return found
        elif isinstance(node, list):
            for n, value in enumerate(node):
                found = walk(value, f"{path}[{n}]")
                if found:
                    return found
        return None

    try:
        return walk(doc, "")
    except RecursionError:
        return None


def check_object(
    value: Any, field: str, allowed: frozenset[str], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``value`` must be a JSON object with only ``allowed`` keys and every ``required`` one."""
    if not isinstance(value, dict):
        raise ApiError(422, field, f"must be a JSON object, got {_json_type(value)}")
    for key in value:
        if key not in allowed:
            name = f"{field}.{key}" if field != "body" else str(key)
            raise ApiError(422, name, f"unknown field; allowed: {', '.join(sorted(allowed))}")
    for key in required:
        if value.get(key) is None:
            raise ApiError(422, key if field == "body" else f"{field}.{key}", "is required")
    return value


def check_id_number(value: Any, field: str) -> None:
    """Refuse float ids that are not whole numbers of a safe size (``1.0`` is id ``"1"``).

    The engine accepts whole floats as ids; a float like ``1e300`` would otherwise
    become a 301-character id.
    """
    if isinstance(value, float) and not (value.is_integer() and abs(value) <= _MAX_SAFE_INT):
        raise ApiError(422, field, f"must be a string or an integer, got {value!r}")


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter in ``lo..hi`` (``default`` when absent)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or len(body) > 18:
        raise ApiError(422, name, f"must be an integer in {lo}..{hi}, got {raw[:40]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ApiError(422, name, f"must be an integer in {lo}..{hi}, got {value}")
    return value


def query_bool(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no, on/off."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ApiError(422, name, f"must be true or false, got {raw[:40]!r}")


def query_id(request: Request, name: str) -> str:
    """A required id query parameter (non-empty; the engine checks its length)."""
    raw = request.query_params.get(name)
    if raw is None:
        raise ApiError(422, name, "is required")
    return raw


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
