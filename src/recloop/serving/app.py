"""The app factory: ``create_app(settings, engine)``; ``gunicorn_app()`` for Gunicorn.

Nothing is built at import: an app exists only when a factory is called, with the
settings and the recommender it is given, and each app has its own metrics registry.

Examples
--------
>>> from recloop.config import load_settings
>>> app = create_app(load_settings(env={}), None)    # no model: model routes answer 503
>>> sorted(r.path for r in app.routes if r.path.startswith("/admin"))
['/admin/reload', '/admin/snapshot']
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from recloop import __version__
from recloop.config import Settings, get_settings
from recloop.engine import Recommender
from recloop.engine.durable import Durable
from recloop.errors import ConfigError
from recloop.serving.errors import install_error_handlers
from recloop.serving.metrics import MetricsMiddleware
from recloop.serving.responses import OrjsonResponse
from recloop.serving.routes import ALL
from recloop.serving.schemas import body_schemas
from recloop.serving.state import ServingState

log = logging.getLogger(__name__)

#: routes that change state: they need a key whenever keys are configured
WRITE_PATHS = frozenset({"/events", "/admin/snapshot", "/admin/reload"})
_DESCRIPTION = """A real-time recommender: post feedback to `/events`, and the next
`/recommend` for that user reflects it. Errors are JSON: `{"error": {"field", "message"}}`."""


def create_app(
    settings: Settings,
    engine: Recommender | None,
    *,
    durable: Durable | None = None,
    recover: Callable[[Callable[[int, int], None]], Durable] | None = None,
) -> FastAPI:
    """Build the HTTP app serving ``engine`` under ``settings``.

    Parameters
    ----------
    settings
        The service's settings (``recloop.config.load_settings``).
    engine
        A fitted ``Recommender``, or ``None`` to start empty (model routes answer 503
        until ``POST /admin/reload`` loads ``settings.model_path``).
    durable
        ``engine``'s event log and snapshots (``Recommender.attach_log``): ``POST /events``
        then answers once the events are durable, with their log ``offset``.
    recover
        Instead of ``engine``: called at startup in a background thread with a progress
        callback, it returns the recovered engine attached to its log; until then every
        route but ``/health`` (``"status": "recovering"``) answers 503.

    Returns
    -------
    FastAPI
        The app; ``app.state.serving`` is its ``ServingState``. A faiss retrieval index is
        built in the background at startup when the catalogue is over
        ``settings.faiss_threshold`` (``/health`` says ``"retrieval": "building"`` until then).
    """
    state = ServingState(settings, engine)
    state.durable = durable

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if recover is not None:
            state.start_recovery(recover)
        state.start_index(background=True)
        yield
        state.close()

    app = FastAPI(
        title="recloop",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.serving = state
    install_error_handlers(app)
    for module in ALL:
        app.include_router(module.router(state))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    _document(app, settings)
    return app


def _document(app: FastAPI, settings: Settings) -> None:
    """Add the hand-validated request bodies and the bearer scheme to the OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = doc.setdefault("components", {})
            components.setdefault("schemas", {}).update(body_schemas())
            if settings.api_keys:
                components.setdefault("securitySchemes", {})["bearer"] = {
                    "type": "http",
                    "scheme": "bearer",
                }
                for path, ops in doc.get("paths", {}).items():
                    for op in ops.values():
                        if path in WRITE_PATHS or (
                            settings.read_requires_key and path != "/health"
                        ):
                            op["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def gunicorn_app() -> FastAPI:
    """App factory for Gunicorn: ``gunicorn 'recloop.serving.app:gunicorn_app()'``.

    Reads the settings from the environment (``RECLOOP_CONFIG``, ``RECLOOP_MODEL_PATH``...)
    and loads the model in each worker (every worker holds its own copy).
    """
    settings = get_settings()
    if settings.data_dir is not None or settings.log_url is not None:
        raise ConfigError(
            "data_dir: an event log needs one process that owns it; serve it with "
            "`recloop serve --data-dir`, not Gunicorn workers"
        )
    if settings.model_path is None:
        raise ConfigError(
            "model_path: is required to serve; set RECLOOP_MODEL_PATH or model_path in RECLOOP_CONFIG"
        )
    _set_threads(settings.threads)
    rec = Recommender.load(settings.model_path)
    log.info(
        "serving %s (%d users, %d items) from %s",
        rec.model_name,
        rec.n_users,
        rec.n_items,
        settings.model_path,
    )
    return create_app(settings, rec)


def _set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
