"""``recloop serve --model runs/NAME [--host 127.0.0.1] [--port 8000]``: the HTTP service.

Settings come from defaults → ``RECLOOP_CONFIG`` file → ``RECLOOP_*`` environment → these
options. One uvicorn process owns the model and learns online; for several processes
use Gunicorn with ``gunicorn.conf.py`` (see docs/serving.md for what that changes).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from recloop.config import Settings, load_settings

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a saved model over HTTP",
        description="Serve a model folder written by Recommender.save over HTTP "
        "(POST /predict, GET /recommend, POST /events, OpenAPI at /docs).",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="DIR",
        help="model folder written by Recommender.save (default: RECLOOP_MODEL_PATH)",
    )
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default 8000)")
    p.add_argument(
        "--log-level",
        default=None,
        choices=("debug", "info", "warning", "error", "critical"),
        help="server log level (default info)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        model_path=args.model, host=args.host, port=args.port, log_level=args.log_level
    )
    if settings.model_path is None:
        from recloop.errors import ConfigError

        raise ConfigError(
            "model: is required: pass --model DIR (a folder written by Recommender.save) "
            "or set RECLOOP_MODEL_PATH"
        )
    import torch

    from recloop.engine import Recommender
    from recloop.serving import create_app

    torch.set_num_threads(settings.threads)
    rec = Recommender.load(settings.model_path)
    log.info("loaded %s: %d users, %d items", rec.model_name, rec.n_users, rec.n_items)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"dashboard: http://{host}:{settings.port}/ui   API docs: /docs", flush=True)
    serve(create_app(settings, rec), settings)
    return 0


def serve(app: Any, settings: Settings) -> None:
    """Run ``app`` with uvicorn as ``recloop serve`` does (also used by bench/serving.py)."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
