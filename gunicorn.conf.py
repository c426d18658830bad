"""Gunicorn settings for recloop: ``gunicorn --no-control-socket -c gunicorn.conf.py``.

Everything comes from recloop's settings (defaults → ``RECLOOP_CONFIG`` file →
``RECLOOP_*`` environment), so one place configures both ``recloop serve`` and Gunicorn:
``RECLOOP_MODEL_PATH`` (required), ``RECLOOP_HOST``, ``RECLOOP_PORT``, ``RECLOOP_WORKERS``.

Each worker loads its own copy of the model (``preload_app = False``): online updates
posted to one worker are not seen by the others. Keep ``RECLOOP_WORKERS=1`` (the
default) for the online loop; see docs/serving.md.
"""

import importlib.util

from recloop.config import load_settings

_settings = load_settings()

wsgi_app = "recloop.serving.app:gunicorn_app()"
bind = [
    f"[{_settings.host}]:{_settings.port}"
    if ":" in _settings.host
    else f"{_settings.host}:{_settings.port}"
]
workers = _settings.workers
# uvicorn-worker is the maintained home of the worker class; uvicorn.workers is its deprecated twin
worker_class = (
    "uvicorn_worker.UvicornWorker"
    if importlib.util.find_spec("uvicorn_worker")
    else "uvicorn.workers.UvicornWorker"
)
preload_app = False  # each worker loads (and learns on) its own model copy
loglevel = _settings.log_level
accesslog = "-" if _settings.access_log else None
timeout = 120  # a large model loads slowly; the worker must not be killed meanwhile
graceful_timeout = 30
keepalive = 5
control_socket_disable = (
    True  # gunicorn >= 25 shares one control socket per user otherwise (MACHINE.md)
)
