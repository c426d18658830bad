"""The JSON response class of the service: orjson, without FastAPI's deprecated wrapper."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonResponse(JSONResponse):
    """``application/json`` rendered by orjson (numpy scalars and arrays included).

    Handlers build it directly from plain dicts, so no per-request pydantic
    serialisation runs; the route's ``response_model`` documents the shape.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)
