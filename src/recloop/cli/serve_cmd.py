"""``recloop serve --model runs/NAME [--data-dir DATA] [--host 127.0.0.1] [--port 8000]``.

With ``--data-dir`` (or ``--log``) every event is in the event log before it is
acknowledged, snapshots are written to ``DATA/snapshots/`` on their own, and a start
recovers from the newest valid snapshot plus the log (``/health`` says ``"recovering"``
meanwhile). Without either, the state lives in memory only.

Settings come from defaults → ``RECLOOP_CONFIG`` file → ``RECLOOP_*`` environment → these
options. One uvicorn process owns the model and learns online; for several processes
use Gunicorn with ``gunicorn.conf.py`` (see docs/serving.md for what that changes).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recloop.config import Settings, load_settings
from recloop.errors import ConfigError

if TYPE_CHECKING:
    from recloop.engine.durable import Durable

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
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DATA",
        help="keep the event log (DATA/events.db) and snapshots (DATA/snapshots/) here and "
        "recover from them at start (default: RECLOOP_DATA_DIR; unset: in memory only)",
    )
    p.add_argument(
        "--log",
        default=None,
        metavar="URL",
        help="event log URL: sqlite:///ABS/PATH/events.db or redis://host:port/db?stream=NAME "
        "(default: DATA/events.db)",
    )
    p.add_argument(
        "--durability",
        choices=("process", "fsync"),
        default=None,
        help="process: acknowledged events survive a killed process (default); "
        "fsync: also a power loss",
    )
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default 8000)")
    p.add_argument(
        "--log-level",
        default=None,
        choices=("debug", "info", "warning", "error", "critical"),
        help="server log level (default info)",
    )
    p.add_argument(
        "--max-users",
        type=int,
        default=None,
        metavar="N",
        help="hold at most N users' state; the least recently active beyond are evicted "
        "(default: no bound)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        model_path=args.model,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        max_users=args.max_users,
        data_dir=args.data_dir,
        log_url=args.log,
        durability=args.durability,
    )
    if settings.model_path is None and settings.data_dir is None:
        raise ConfigError(
            "model: is required: pass --model DIR (a folder written by Recommender.save) "
            "or set RECLOOP_MODEL_PATH"
        )
    import torch

    from recloop.engine import Recommender
    from recloop.serving import create_app

    torch.set_num_threads(settings.threads)
    if settings.data_dir is not None or settings.log_url is not None:
        serve(create_app(settings, None, recover=durable_start(settings)), settings)
        return 0
    if settings.model_path is None:
        raise ConfigError("model: is required without --data-dir: pass --model DIR")
    rec = Recommender.load(settings.model_path)
    log.info("loaded %s: %d users, %d items", rec.model_name, rec.n_users, rec.n_items)
    _say(
        "no --data-dir: events are kept in memory only and lost when the process stops "
        "(pass --data-dir DATA to log them durably)"
    )
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"dashboard: http://{host}:{settings.port}/ui   API docs: /docs", flush=True)
    serve(create_app(settings, rec), settings)
    return 0


def _say(message: str) -> None:
    """One warning line at start (the CLI's logging shows warnings only)."""
    log.warning(message)


def durable_start(settings: Settings) -> Callable[[Callable[[int, int], None]], Durable]:
    """Open the log and the snapshot folder now (a bad folder or URL fails the command),
    and return the recovery that the app runs in the background at startup."""
    from recloop.engine.durable import SnapshotPolicy, recover
    from recloop.storage import ModelStore, open_log

    data = settings.data_dir
    url = settings.log_url or f"sqlite://{(data or Path()).absolute() / 'events.db'}"
    event_log = open_log(url, settings.durability)
    store = ModelStore(data / "snapshots", keep=settings.snapshot_keep) if data else None
    policy = SnapshotPolicy(settings.snapshot_every_events, settings.snapshot_every_seconds)
    if store is None:
        _say("no --data-dir: no snapshots are written; a restart replays the whole log")
    if settings.model_path is None and (store is None or not store.folders()):
        event_log.close()
        raise ConfigError(
            f"model: {data} holds no snapshot yet: pass --model DIR to start from a saved model"
        )

    def start(progress: Callable[[int, int], None]) -> Durable:
        rec = recover(event_log, store, settings.model_path, progress)
        return rec.attach_log(event_log, store, policy)

    log.info("event log %s (durability %s)", url, settings.durability)
    return start


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
