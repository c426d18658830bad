"""Group commit: concurrent appends share one log write.

A single committer thread takes every batch waiting, appends them to the log as one
write (one commit, at most one fsync), then hands each batch its offsets through its
``then`` callback, in offset order, before resolving its future. A caller that needs
the events applied in log order does that work in ``then``: the committer is the only
thread that calls it, so applying follows the log exactly, whatever the interleaving
of the requests that submitted them.

While a write is in flight, new batches wait; the next write takes all of them. Under
load writes grow and their number per second stays near one per commit latency; a lone
batch waits for nobody.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from recloop.errors import StorageError
from recloop.events import EventColumns
from recloop.storage.log import EventLog, concat

log = logging.getLogger(__name__)
T = TypeVar("T")
#: events written in one commit at most (a large backlog is split into several)
MAX_COMMIT_EVENTS = 100_000


class GroupCommitter:
    """Append batches to ``event_log`` from many threads, one commit per group.

    Parameters
    ----------
    event_log
        The log written to.
    """

    def __init__(self, event_log: EventLog) -> None:
        self.log = event_log
        self._cond = threading.Condition()
        self._waiting: list[tuple[EventColumns, Callable[[range], Any], Future[Any]]] = []
        self._closed = False
        self.commits = 0
        self.events = 0
        self._thread = threading.Thread(target=self._run, name="recloop-commit", daemon=True)
        self._thread.start()

    def submit(self, batch: EventColumns, then: Callable[[range], T]) -> Future[T]:
        """Queue ``batch``; the future resolves to ``then(offsets)`` once the batch is durable
        (``StorageError`` when the log refused it: ``then`` is not called)."""
        fut: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise StorageError(f"log: {self.log.url!r} is closed")
            self._waiting.append((batch, then, fut))
            self._cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:
                    return
                group: list[tuple[EventColumns, Callable[[range], Any], Future[Any]]] = []
                size = 0
                while self._waiting and (not group or size < MAX_COMMIT_EVENTS):
                    item = self._waiting.pop(0)
                    group.append(item)
                    size += len(item[0])
            self._commit(group)

    def _commit(
        self, group: list[tuple[EventColumns, Callable[[range], Any], Future[Any]]]
    ) -> None:
        try:
            offsets = self.log.append(concat([b for b, _, _ in group]))
        except BaseException as exc:  # the log refused: no batch of the group is acknowledged
            err = exc if isinstance(exc, StorageError) else StorageError(f"log: {exc}")
            if not isinstance(exc, StorageError):
                log.exception("appending to the event log failed")
            for _, _, fut in group:
                fut.set_exception(err)
            return
        self.commits += 1
        self.events += len(offsets)
        at = offsets.start
        for batch, then, fut in group:
            mine = range(at, at + len(batch))
            at += len(batch)
            try:
                fut.set_result(then(mine))
            except BaseException as exc:  # the batch is durable; report what failed after
                log.exception("applying logged events %d..%d failed", mine.start, mine.stop - 1)
                fut.set_exception(exc)

    def close(self) -> None:
        """Write what waits, then stop the committer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30.0)
