"""The embedded event log: one SQLite file in WAL mode (``sqlite:///ABS/PATH/events.db``).

One row per append: the batch's first and last offsets and its events as columns in one
JSON document, so an append is one row insert and a read decodes thousands of events in
one call (a row per event made the log the slowest step of a replay). ``durability="process"`` commits with
``synchronous=NORMAL`` (a commit survives the process being killed: it is in the WAL
file before ``append`` returns); ``"fsync"`` with ``synchronous=FULL`` (each commit is
fsynced, so it survives power loss too). A commit costs one fsync at most whatever its
size, which is why callers batch (``recloop.storage.commit.GroupCommitter``).

The URL may cap the file: ``?max_bytes=N`` refuses appends that would grow it past
``N`` bytes, as a full disk would (``StorageError``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from recloop.errors import ConfigError, StorageError
from recloop.events import EventColumns
from recloop.storage.log import Durability, LogInfo, concat, register, slice_columns

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    first INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    events BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
#: batches deleted per transaction by ``trim``, so appends wait for a short delete only
_TRIM_CHUNK = 2_000
#: batches fetched per query by ``read``
_PAGE = 256


def _path_of(url: str) -> tuple[Path, dict[str, list[str]]]:
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    if not rest:
        raise ConfigError(f"log: {url!r} names no file; expected sqlite:///ABS/PATH/events.db")
    return Path(rest), parse_qs(query)


class SqliteLog:
    """``EventLog`` over one SQLite file; see the module docstring."""

    def __init__(self, url: str, durability: Durability = "process") -> None:
        self.url = url
        self.durability = durability
        self.path, query = _path_of(url)
        max_bytes = query.get("max_bytes", [None])[0]
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            self._conn.executescript(_SCHEMA)
            if max_bytes is not None:
                page = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
                self._conn.execute(f"PRAGMA max_page_count={max(1, int(max_bytes) // page)}")
            row = self._conn.execute("SELECT max(last) FROM batches").fetchone()
            trimmed = self._conn.execute(
                "SELECT value FROM meta WHERE key='trimmed_before'"
            ).fetchone()
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise StorageError(f"log: cannot open {str(self.path)!r}: {_reason(exc)}") from None
        self._next = max(int(row[0] or 0), int(trimmed[0]) - 1 if trimmed else 0) + 1
        self._reader: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"log: {str(self.path)!r} cannot use WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'fsync' else 'NORMAL'}")
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"log: {self.url!r} is closed")

    # ------------------------------------------------------------------ writes
    def append(self, batch: EventColumns) -> range:
        n = len(batch)
        with self._lock:
            self._check_open()
            start = self._next
            if n == 0:
                return range(start, start)
            doc = orjson.dumps(
                {
                    "u": batch.user_ids,
                    "i": batch.item_ids,
                    "t": batch.types,
                    "v": batch.values,
                    "ts": batch.timestamps,
                    "c": {str(r): c for r, c in batch.contexts.items()},
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            conn = self._conn
            try:
                conn.execute("BEGIN")
                conn.execute("INSERT INTO batches VALUES (?, ?, ?)", (start, start + n - 1, doc))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StorageError(
                    f"log: cannot append {n} events to {str(self.path)!r}: {_reason(exc)}"
                ) from None
            self._next = start + n
            return range(start, start + n)

    def trim(self, before: int) -> int:
        before = min(int(before), self._next)
        visible = self.info().events
        while True:
            with self._lock:
                self._check_open()
                conn = self._conn
                try:
                    conn.execute("BEGIN")
                    rows = conn.execute(
                        "SELECT first FROM batches WHERE last < ? ORDER BY first LIMIT ?",
                        (before, _TRIM_CHUNK),
                    ).fetchall()
                    if rows:
                        conn.execute("DELETE FROM batches WHERE first <= ?", (rows[-1][0],))
                    conn.execute(
                        "INSERT INTO meta VALUES ('trimmed_before', ?) ON CONFLICT(key) "
                        "DO UPDATE SET value = max(value, excluded.value)",
                        (before,),
                    )
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    _rollback(conn)
                    raise StorageError(
                        f"log: cannot trim {str(self.path)!r}: {_reason(exc)}"
                    ) from None
            if len(rows) < _TRIM_CHUNK:
                return visible - self.info().events

    # ------------------------------------------------------------------ reads
    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._read_lock:
            self._check_open()
            try:
                if self._reader is None:
                    self._reader = sqlite3.connect(
                        str(self.path), isolation_level=None, check_same_thread=False
                    )
                return self._reader.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"log: cannot read {str(self.path)!r}: {_reason(exc)}") from None

    def _trimmed_before(self) -> int:
        row = self._query("SELECT value FROM meta WHERE key='trimmed_before'")
        return int(row[0][0]) if row else 0

    def read(self, start: int, batch_size: int = 10_000) -> Iterator[tuple[int, EventColumns]]:
        at = max(int(start), 1, self._trimmed_before())
        parts: list[EventColumns] = []
        first_out, size = at, 0
        while True:
            rows = self._query(
                "SELECT first, last, events FROM batches WHERE last >= ? ORDER BY first LIMIT ?",
                (at, _PAGE),
            )
            for first, last, doc in rows:
                cols = _decode(doc)
                lo = max(at, first) - first
                while lo < len(cols):  # consecutive offsets: parts join into one chunk
                    take = min(len(cols) - lo, batch_size - size)
                    if not parts:
                        first_out = first + lo
                    parts.append(slice_columns(cols, lo, lo + take))
                    size += take
                    lo += take
                    if size == batch_size:
                        yield first_out, concat(parts)
                        parts, size = [], 0
                at = last + 1
            if len(rows) < _PAGE:
                break
        if parts:
            yield first_out, concat(parts)

    def last_offset(self) -> int:
        with self._lock:
            self._check_open()
            return self._next - 1

    def info(self) -> LogInfo:
        lo, hi, total = self._query(
            "SELECT min(first), max(last), sum(last - first + 1) FROM batches"
        )[0]
        oldest = newest = None
        first = 0
        events = 0
        if lo is not None:
            first = max(int(lo), self._trimmed_before())
            events = int(total) - (first - int(lo))
            head = _decode(self._query("SELECT events FROM batches WHERE first = ?", (lo,))[0][0])
            oldest = head.timestamps[first - int(lo)]
            doc = self._query("SELECT events FROM batches WHERE last = ?", (hi,))[0][0]
            newest = _decode(doc).timestamps[-1]
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return LogInfo(
            url=self.url,
            events=events,
            first_offset=first,
            last_offset=self.last_offset(),
            oldest_timestamp=oldest,
            newest_timestamp=newest,
            size_bytes=size,
        )

    def close(self) -> None:
        with self._lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            for conn in (self._reader, self._conn):
                if conn is not None:
                    try:
                        conn.close()
                    except sqlite3.Error:  # closing: nothing left to protect
                        log.warning("closing %s failed", self.path, exc_info=True)


def _decode(doc: bytes) -> EventColumns:
    d = orjson.loads(doc)
    contexts = {int(r): c for r, c in d["c"].items()} if d["c"] else {}
    return EventColumns(d["u"], d["i"], d["t"], d["v"], d["ts"], contexts)


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.warning("rollback failed", exc_info=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _open(url: str, durability: Durability) -> SqliteLog:
    return SqliteLog(url, durability)


register("sqlite", _open)
