"""Validation of the attribute objects of ``PUT /items/{id}`` and ``PUT /users/{id}``."""

from __future__ import annotations

import math
import re
from typing import Any

from recloop.serving.errors import ApiError

MAX_ATTRIBUTES = 100
MAX_TEXT = 10_000
MAX_TAGS = 1_000
MAX_TAG = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\- ']{0,63}$")


def check_attributes(body: Any, key: str, path_id: str) -> dict[str, Any]:
    """The attributes of ``body`` (a JSON object), checked: names like identifiers (at most
    64 characters), values a string (at most 10,000 characters), a finite number, a
    boolean, null, or a list of at most 1,000 strings (tags, each at most 256
    characters). ``key`` (``item_id`` / ``user_id``) may repeat the path's id, nothing else.
    """
    if not isinstance(body, dict):
        raise ApiError(422, "body", f"must be a JSON object of attributes, got {_kind(body)}")
    if len(body) > MAX_ATTRIBUTES:
        raise ApiError(
            422, "body", f"must hold at most {MAX_ATTRIBUTES} attributes, got {len(body)}"
        )
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name == key:
            if str(value) != path_id:
                raise ApiError(
                    422, key, f"must match the path's id {path_id!r} or be left out, got {value!r}"
                )
            continue
        if name in ("item_id", "user_id"):
            raise ApiError(422, name, f"is not an attribute of a {key[:-3]}")
        if not _NAME.match(name):
            raise ApiError(
                422,
                name[:64],
                "attribute names start with a letter or _ and hold at most 64 letters, digits, "
                "spaces or _ . - '",
            )
        out[name] = _check_value(name, value)
    return out


def _check_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)) or abs(float(value)) > 1e15:
            raise ApiError(422, name, f"must be a finite number of at most 1e15, got {value!r}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ApiError(422, name, f"must be at most {MAX_TEXT} characters, got {len(value)}")
        return value
    if isinstance(value, list):
        if len(value) > MAX_TAGS:
            raise ApiError(422, name, f"must hold at most {MAX_TAGS} tags, got {len(value)}")
        for n, tag in enumerate(value):
            if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
                raise ApiError(
                    422,
                    f"{name}[{n}]",
                    f"tags are non-empty strings of at most {MAX_TAG} characters, got {tag!r}"[
                        :300
                    ],
                )
        return list(value)
    raise ApiError(
        422,
        name,
        f"must be a string, a number, a boolean, null or a list of strings, got {_kind(value)}",
    )


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else type(value).__name__
