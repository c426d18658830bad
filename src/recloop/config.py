"""The service's settings: one typed, frozen object, loaded once.

Sources, each overriding the one before:

1. the defaults below;
2. a TOML or JSON file named by ``RECLOOP_CONFIG`` (``[serving]`` table or top level);
3. ``RECLOOP_<FIELD>`` environment variables (``RECLOOP_PORT=9000``,
   ``RECLOOP_API_KEYS=key1,key2``);
4. explicit overrides (the command line's ``--host``/``--port``/``--model``).

Any invalid value raises ``ConfigError`` naming the field, the value and what is allowed.
API keys are ``SecretStr``: they never appear in ``repr``, logs or error messages.

Examples
--------
>>> s = load_settings(env={"RECLOOP_PORT": "9000", "RECLOOP_API_KEYS": "a,b"})
>>> s.port, len(s.api_keys), s.api_keys[0]
(9000, 2, SecretStr('**********'))
>>> load_settings(env={"RECLOOP_MAX_K": "0"})
Traceback (most recent call last):
...
recloop.errors.ConfigError: max_k: must be an integer in 1..1000, got '0'
"""

from __future__ import annotations

import json
import os
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from recloop.errors import ConfigError

ENV_PREFIX = "RECLOOP_"
CONFIG_ENV = "RECLOOP_CONFIG"
MAX_K_LIMIT = 1000  # the engine's own bound on k

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_BOUNDS: dict[str, tuple[int, int]] = {
    "port": (1, 65535),
    "max_body_bytes": (1024, 1 << 30),
    "max_batch_events": (1, 1_000_000),
    "max_k": (1, MAX_K_LIMIT),
    "faiss_threshold": (0, 1 << 40),
    "faiss_nprobe": (1, 1 << 20),
    "max_users": (0, 1 << 40),
    "workers": (1, 64),
    "threads": (1, 256),
    "snapshot_every_events": (0, 1 << 40),
    "snapshot_keep": (1, 1000),
}


class Settings(BaseModel):
    """Settings of the HTTP service (``recloop serve``, Gunicorn workers).

    Attributes
    ----------
    model_path : folder written by ``Recommender.save``; what ``serve`` loads, and where
        ``POST /admin/snapshot`` writes and ``POST /admin/reload`` reads
    host, port : where ``recloop serve`` and Gunicorn listen
    api_keys : bearer keys; when any is set, ``/events`` and ``/admin/*`` require one
    read_requires_key : also require a key on read routes (``/recommend``, ``/predict``...)
    max_body_bytes : largest request body accepted (413 above)
    max_batch_events : most events in one ``POST /events`` batch (413 above)
    max_k : largest ``k`` accepted by ``/recommend`` and ``/items/{id}/similar`` (<= 1000)
    faiss_threshold : catalogue size above which ``/recommend`` retrieves candidates with
        a faiss index (dot-product models only) before exact re-ranking
    faiss_nprobe : inverted lists the faiss index visits per query (recall against speed)
    max_users : most users whose state the engine holds (0: no bound); past it the least
        recently active users are evicted and start over as new users
        (``Recommender.limit_users``)
    micro_batching : score concurrent ``/recommend`` and ``/predict`` requests together in
        one model call, off the event loop (off: each request calls the engine inline)
    log_level : the server's log level
    access_log : log one line per request (off by default: it costs throughput)
    workers : Gunicorn worker processes (each holds its own model copy; see docs/serving.md)
    threads : torch intra-op threads per process
    data_dir : where the event log (``events.db``) and snapshots (``snapshots/``) live; unset,
        the service keeps its state in memory only
    log_url : the event log's URL (``sqlite:///ABS/PATH``, ``redis://host:port/db?stream=NAME``);
        default ``DATA_DIR/events.db``
    durability : ``process`` (an acknowledged event survives the process being killed) or
        ``fsync`` (also power loss: SQLite ``synchronous=FULL``, Redis ``WAITAOF``)
    snapshot_every_events, snapshot_every_seconds : automatic snapshots after this many new
        events or this many seconds with new events (0 turns a rule off)
    snapshot_keep : snapshots kept; the log is trimmed behind the oldest
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    model_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr, ...] = ()
    read_requires_key: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch_events: int = 10_000
    max_k: int = MAX_K_LIMIT
    faiss_threshold: int = 100_000
    faiss_nprobe: int = 48
    max_users: int = 0
    micro_batching: bool = True
    log_level: LogLevel = "info"
    access_log: bool = False
    workers: int = 1
    threads: int = 1
    data_dir: Path | None = None
    log_url: str | None = None
    durability: Literal["process", "fsync"] = "process"
    snapshot_every_events: int = 100_000
    snapshot_every_seconds: float = 300.0
    snapshot_keep: int = 3

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [k.strip() for k in value.split(",")]
        if isinstance(value, (list, tuple)):
            keys = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in value]
            if any(not isinstance(k, str) for k in keys):
                raise ValueError("must be strings")
            return tuple(k for k in keys if k)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("snapshot_every_seconds")
    @classmethod
    def _check_seconds(cls, value: float) -> float:
        if not 0 <= value < 1e9:
            raise ValueError("must be a number of seconds >= 0")
        return value

    @field_validator(*_BOUNDS, mode="before")
    @classmethod
    def _check_int(cls, value: Any, info: Any) -> int:
        lo, hi = _BOUNDS[info.field_name]
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            number = int(value.strip())
        if number is None or not lo <= number <= hi:
            raise ValueError(f"must be an integer in {lo}..{hi}, got {value!r}")
        return number

    def key_bytes(self) -> tuple[bytes, ...]:
        """The API keys as bytes, for constant-time comparison."""
        return tuple(k.get_secret_value().encode() for k in self.api_keys)


_FIELDS = tuple(Settings.model_fields)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{CONFIG_ENV}: cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        data: Any = (
            tomllib.loads(text.decode()) if path.suffix.lower() != ".json" else json.loads(text)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{CONFIG_ENV}: {str(path)!r} is not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_ENV}: {str(path)!r} must hold a table of settings")
    section = data.get("serving", data)
    if not isinstance(section, dict):
        raise ConfigError(f"serving: must be a table of settings in {str(path)!r}")
    return dict(section)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            out[name] = raw
    return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings: defaults → ``RECLOOP_CONFIG`` file → ``RECLOOP_*`` env → ``overrides``.

    ``overrides`` whose value is ``None`` are ignored (an unset command-line option).

    Raises
    ------
    ConfigError
        A value is invalid, a key is unknown, or the file cannot be read; the message
        names the field (never the value of an API key).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = env.get(CONFIG_ENV)
    if config_file:
        values.update(_read_file(Path(config_file)))
    values.update(_from_env(env))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ("settings",)
        name = str(loc[0])
        if err.get("type") == "extra_forbidden":
            raise ConfigError(f"{name}: unknown setting; allowed: {', '.join(_FIELDS)}") from None
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if name in _BOUNDS or name == "api_keys":
            raise ConfigError(f"{name}: {msg}") from None
        raise ConfigError(f"{name}: {msg}, got {values.get(name)!r}") from None


_cached: Settings | None = None
_cache_lock = threading.Lock()


def get_settings() -> Settings:
    """The process's settings, loaded from the environment on first use and then kept."""
    global _cached
    with _cache_lock:
        if _cached is None:
            _cached = load_settings()
        return _cached


def reset_settings() -> None:
    """Forget the cached settings (tests; a process that changed its environment)."""
    global _cached
    with _cache_lock:
        _cached = None
