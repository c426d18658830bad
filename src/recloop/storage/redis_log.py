"""The event log on a Redis or Valkey stream (``redis://host:port/db?stream=NAME``).

Each event is a stream entry whose id is ``OFFSET-0`` and whose one field ``e`` holds the
event as JSON. A Lua script takes the batch's offsets from a counter key
(``NAME:offset``) and adds every entry in one atomic call, so concurrent appenders get
distinct, consecutive offsets and a batch is all or nothing. With ``durability="fsync"``
every append then waits for the server to fsync its append-only file (``WAITAOF``),
which needs ``appendonly yes`` on the server; ``"process"`` relies on the server's own
persistence settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson

from recloop.errors import ConfigError, StorageError
from recloop.events import EventColumns
from recloop.storage.log import Durability, LogInfo, register

log = logging.getLogger(__name__)

_APPEND = """
local n = #ARGV
local last = redis.call('INCRBY', KEYS[2], n)
for j = 1, n do
    redis.call('XADD', KEYS[1], (last - n + j) .. '-0', 'e', ARGV[j])
end
return last
"""


class RedisLog:
    """``EventLog`` over a Redis Streams key; see the module docstring."""

    def __init__(self, url: str, durability: Durability = "process") -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is a dependency
            raise ConfigError("log: redis:// URLs need the 'redis' package") from None
        self.url = url
        self.durability = durability
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.stream = query.pop("stream", ["recloop:events"])[0]
        if not self.stream:
            raise ConfigError(f"log: stream must not be empty in {url!r}")
        self._counter = f"{self.stream}:offset"
        scheme = "redis" if parts.scheme == "valkey" else parts.scheme
        client_url = urlunsplit(
            (scheme, parts.netloc, parts.path, urlencode(query, doseq=True), "")
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._r = redis.Redis.from_url(
                client_url, socket_timeout=10.0, socket_connect_timeout=5.0
            )
            self._r.ping()
            self._script = self._r.register_script(_APPEND)
        except self._errors as exc:
            raise StorageError(f"log: cannot reach {self._where()}: {exc}") from None
        self._lock = threading.Lock()
        self._closed = False

    def _where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379} stream {self.stream!r}"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"log: {self._where()} is closed")

    def append(self, batch: EventColumns) -> range:
        self._check_open()
        n = len(batch)
        if n == 0:
            last = self.last_offset()
            return range(last + 1, last + 1)
        ctx = batch.contexts
        payload = [
            orjson.dumps(
                [u, i, t, v, ts, ctx[r]] if r in ctx else [u, i, t, v, ts],
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            for r, (u, i, t, v, ts) in enumerate(
                zip(batch.user_ids, batch.item_ids, batch.types, batch.values, batch.timestamps)
            )
        ]
        try:
            last = int(self._script(keys=[self.stream, self._counter], args=payload))
            if self.durability == "fsync":
                local, _ = self._r.execute_command("WAITAOF", 1, 0, 10_000)  # type: ignore[no-untyped-call]
                if int(local) < 1:
                    raise StorageError(
                        f"log: {self._where()} did not fsync its append-only file within 10 s"
                    )
        except self._errors as exc:
            raise StorageError(f"log: cannot append {n} events to {self._where()}: {exc}") from None
        return range(last - n + 1, last + 1)

    def read(self, start: int, batch_size: int = 10_000) -> Iterator[tuple[int, EventColumns]]:
        at = max(int(start), 1)
        while True:
            self._check_open()
            try:
                entries: Any = self._r.xrange(self.stream, min=f"{at}-0", max="+", count=batch_size)
            except self._errors as exc:
                raise StorageError(f"log: cannot read {self._where()}: {exc}") from None
            if not entries:
                return
            batch = EventColumns([], [], [], [], [])
            offsets = []
            for n, (eid, fields) in enumerate(entries):
                offsets.append(int(eid.split(b"-", 1)[0]))
                row = orjson.loads(fields[b"e"])
                batch.user_ids.append(row[0])
                batch.item_ids.append(row[1])
                batch.types.append(row[2])
                batch.values.append(float(row[3]))
                batch.timestamps.append(float(row[4]))
                if len(row) > 5:
                    batch.contexts[n] = row[5]
            yield offsets[0], batch
            at = offsets[-1] + 1

    def last_offset(self) -> int:
        self._check_open()
        try:
            value = self._r.get(self._counter)
        except self._errors as exc:
            raise StorageError(f"log: cannot read {self._where()}: {exc}") from None
        return int(value or 0)

    def trim(self, before: int) -> int:
        self._check_open()
        try:
            return int(self._r.xtrim(self.stream, minid=f"{int(before)}-0", approximate=False))
        except self._errors as exc:
            raise StorageError(f"log: cannot trim {self._where()}: {exc}") from None

    def info(self) -> LogInfo:
        self._check_open()
        try:
            count = int(self._r.xlen(self.stream))
            first: Any = self._r.xrange(self.stream, count=1)
            last: Any = self._r.xrevrange(self.stream, count=1)
            size: Any = self._r.memory_usage(self.stream)
        except self._errors as exc:
            raise StorageError(f"log: cannot read {self._where()}: {exc}") from None

        def stamp(entries: list[Any]) -> float | None:
            return float(orjson.loads(entries[0][1][b"e"])[4]) if entries else None

        return LogInfo(
            url=self.url,
            events=count,
            first_offset=int(first[0][0].split(b"-", 1)[0]) if first else 0,
            last_offset=self.last_offset(),
            oldest_timestamp=stamp(first),
            newest_timestamp=stamp(last),
            size_bytes=int(size) if size is not None else None,
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._r.close()
            except self._errors:  # closing: nothing left to protect
                log.warning("closing the connection to %s failed", self._where(), exc_info=True)


def _open(url: str, durability: Durability) -> RedisLog:
    return RedisLog(url, durability)


for _scheme in ("redis", "rediss", "valkey"):
    register(_scheme, _open)
