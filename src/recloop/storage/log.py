"""The ``EventLog`` contract and the registry that opens a log by URL.

A log is an append-only, ordered sequence of validated events. Each event gets an
integer *offset*: offsets start at 1, grow by one per event and are never reused, even
after ``trim``. An append is one all-or-nothing write: when ``append`` returns, every
event of the batch is stored with the durability the log was opened with; when it
raises ``StorageError``, none is.

Examples
--------
>>> import tempfile
>>> from recloop.events import Event, EventColumns
>>> batch = EventColumns([], [], [], [], [])
>>> batch.append(Event("u1", "i1", "click", 1.0, 1.7e9))
>>> with tempfile.TemporaryDirectory() as d:
...     log = open_log(f"sqlite://{d}/events.db")
...     offsets = log.append(batch)
...     first = next(iter(log.read(1)))
...     log.close()
>>> list(offsets), first[0], first[1].item_ids
([1], 1, ['i1'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from recloop.errors import ConfigError
from recloop.events import EventColumns

Durability = Literal["process", "fsync"]
DURABILITIES: tuple[str, ...] = ("process", "fsync")


@dataclass(frozen=True)
class LogInfo:
    """What a log holds: ``events`` between ``first_offset`` and ``last_offset``
    (0 and 0 when empty), the timestamps of the oldest and newest event, and the
    bytes it takes (None where the backend cannot tell)."""

    url: str
    events: int
    first_offset: int
    last_offset: int
    oldest_timestamp: float | None
    newest_timestamp: float | None
    size_bytes: int | None


@runtime_checkable
class EventLog(Protocol):
    """An ordered, durable, replayable sequence of events addressed by offset.

    Implementations are safe to call from several threads; one process appends at a
    time (the serving process owns its log).
    """

    url: str
    durability: Durability

    def append(self, batch: EventColumns) -> range:
        """Store ``batch`` (all or nothing) and return its offsets, one per event, in order.

        Raises ``StorageError`` when the write is refused (full disk, read-only folder,
        server gone); nothing of the batch is stored then.
        """
        ...

    def read(self, start: int, batch_size: int = 10_000) -> Iterator[tuple[int, EventColumns]]:
        """Events from offset ``start`` on, in order, as ``(first_offset, batch)`` chunks of
        at most ``batch_size`` events with consecutive offsets."""
        ...

    def last_offset(self) -> int:
        """The offset of the newest event (0 for a log that never held one)."""
        ...

    def trim(self, before: int) -> int:
        """Drop the events with offsets below ``before``; return how many were dropped."""
        ...

    def info(self) -> LogInfo:
        """Counts, offsets, time range and size."""
        ...

    def close(self) -> None:
        """Release the file or connection; a closed log refuses further calls."""
        ...


Opener = Callable[[str, Durability], EventLog]
_OPENERS: dict[str, Opener] = {}


def register(scheme: str, opener: Opener) -> None:
    """Make ``open_log`` open URLs of ``scheme`` (``"sqlite"``, ``"redis"``) with ``opener``."""
    _OPENERS[scheme] = opener


def open_log(url: str | Path, durability: str = "process") -> EventLog:
    """Open (creating if needed) the event log at ``url``.

    ``sqlite:///ABS/PATH/events.db`` (or a plain file path) is the embedded default;
    ``redis://host:port/db?stream=NAME`` (also ``rediss://``, ``valkey://``) keeps the
    log in a Redis or Valkey stream. ``durability`` is ``"process"`` (survives the
    process being killed) or ``"fsync"`` (also survives the machine losing power).
    """
    from recloop.storage import redis_log, sqlite_log  # noqa: F401  (they register themselves)

    if durability not in DURABILITIES:
        raise ConfigError(
            f"durability: must be one of {', '.join(DURABILITIES)}, got {durability!r}"
        )
    text = str(url)
    scheme = text.split("://", 1)[0].lower() if "://" in text else "sqlite"
    if "://" not in text:
        text = "sqlite://" + str(Path(text).absolute())
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise ConfigError(
            f"log: unknown URL scheme {scheme!r} in {text!r}; allowed: {', '.join(sorted(_OPENERS))}"
        )
    return opener(text, durability)  # type: ignore[arg-type]


def concat(batches: list[EventColumns]) -> EventColumns:
    """One batch holding ``batches`` in order (contexts re-keyed to their new rows)."""
    if len(batches) == 1:
        return batches[0]
    out = EventColumns([], [], [], [], [])
    for b in batches:
        base = len(out.user_ids)
        for row, ctx in b.contexts.items():
            out.contexts[base + row] = ctx
        out.user_ids.extend(b.user_ids)
        out.item_ids.extend(b.item_ids)
        out.types.extend(b.types)
        out.values.extend(b.values)
        out.timestamps.extend(b.timestamps)
    return out


def slice_columns(batch: EventColumns, start: int, stop: int) -> EventColumns:
    """Rows ``start:stop`` of ``batch``."""
    if start == 0 and stop >= len(batch):
        return batch
    return EventColumns(
        batch.user_ids[start:stop],
        batch.item_ids[start:stop],
        batch.types[start:stop],
        batch.values[start:stop],
        batch.timestamps[start:stop],
        {r - start: c for r, c in batch.contexts.items() if start <= r < stop},
    )
