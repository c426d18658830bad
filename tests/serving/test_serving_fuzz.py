"""Fuzz every operation of the OpenAPI document with schemathesis: no input gives a 5xx.

Positive cases follow the schema; negative ones break it (wrong types, missing fields,
out-of-range numbers). Examples are few and derandomised, so the run is short and stable.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from recloop.config import load_settings
from recloop.serving import create_app

OPERATIONS = [
    ("POST", "/predict"),
    ("GET", "/recommend"),
    ("POST", "/events"),
    ("GET", "/users/{user_id}/history"),
    ("GET", "/items/{item_id}/similar"),
    ("GET", "/items/{item_id}"),
    ("PUT", "/items/{item_id}"),
    ("GET", "/users/{user_id}"),
    ("PUT", "/users/{user_id}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/admin/snapshot"),
    ("POST", "/admin/reload"),
    ("GET", "/ui/api/stats"),
    ("GET", "/ui/api/users"),
    ("GET", "/ui/api/items"),
    ("GET", "/ui/api/users/{user_id}"),
]
EXAMPLES = 40
#: operations that take no input (or only a path id) have no negative cases to generate
NO_INPUT = {
    ("GET", "/items/{item_id}"),  # any string is an id: nothing negative to make
    ("GET", "/users/{user_id}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/admin/snapshot"),
    ("POST", "/admin/reload"),
    ("GET", "/ui/api/stats"),
}
CASES = [
    (m, p, mode)
    for m, p in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or (m, p) not in NO_INPUT
]


@pytest.fixture(scope="module")
def schema(model_dir):
    from recloop import Recommender

    app = create_app(load_settings(env={}, max_body_bytes=64 * 1024), Recommender.load(model_dir))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_fuzzed(schema):
    documented = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(
    "method, path, mode", CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_no_input_gives_a_server_error(schema, method, path, mode):
    operation = schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call()
        seen.append(response.status_code)
        assert response.status_code < 500, (
            case.as_curl_command(),
            response.status_code,
            response.text[:500],
        )
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])
            assert content_type[0].startswith("application/json"), response.text[:200]
            assert "error" in response.json()

    run()
    assert seen
