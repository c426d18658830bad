"""Durable updates: every event is in the log before it is applied or acknowledged.

``Durable`` wires a ``Recommender`` to an ``EventLog`` and, optionally, a ``ModelStore``:

- ``submit(events)`` validates the events (nothing is logged if one is invalid), queues
  them for the ``GroupCommitter``, and returns a future that resolves once they are
  durable *and* applied. The committer thread applies each group in offset order
  (``apply_logged``), so every user's history follows the log exactly, whatever the
  interleaving of concurrent requests, and a replay of the log rebuilds the same state.
- A background thread writes a snapshot every ``every_events`` events or ``every_seconds``
  seconds (whichever comes first) and trims the log behind the oldest snapshot kept.
- ``recover`` loads the newest valid snapshot (else the fallback model) and replays the
  log after the snapshot's offset through ``apply_logged``, the live path (state only:
  see ``replay``).

The engine's ``log_offset_`` is the offset of the last event applied; snapshots record it
(``meta.json``), and ``apply_logged`` skips what it already covers, so an event is
applied once whatever the crash point.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recloop.engine.ingest import parse_events
from recloop.errors import ConfigError, StorageError
from recloop.events import EventColumns
from recloop.storage import EventLog, GroupCommitter, ModelStore, SnapshotInfo
from recloop.storage.log import slice_columns

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender

log = logging.getLogger(__name__)
#: a snapshot's writer process is killed (and the snapshot abandoned) after this long
SNAPSHOT_TIMEOUT_S = 600.0
#: ``(offset applied, last offset of the log)`` as a replay goes
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SnapshotPolicy:
    """When ``Durable`` snapshots on its own: after ``every_events`` logged events or
    ``every_seconds`` seconds with new events, whichever comes first (0 turns a rule off)."""

    every_events: int = 100_000
    every_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.every_events < 0:
            raise ConfigError(f"snapshot_every_events: must be >= 0, got {self.every_events}")
        if self.every_seconds < 0:
            raise ConfigError(f"snapshot_every_seconds: must be >= 0, got {self.every_seconds}")


def apply_logged(rec: Recommender, cols: EventColumns, offsets: range) -> int:
    """Apply logged events to ``rec`` as ``update`` does, skipping those at or below its
    ``log_offset_`` (already applied); returns how many were applied."""
    with rec._lock:
        done = rec.log_offset_
        if offsets.stop - 1 <= done:
            return 0
        if offsets.start <= done:
            cols = slice_columns(cols, done + 1 - offsets.start, len(cols))
        elif offsets.start > done + 1:
            raise StorageError(
                f"log: events {done + 1}..{offsets.start - 1} are missing "
                f"(the engine has applied up to {done}, the log continues at {offsets.start})"
            )
        rec._apply(cols)
        rec.log_offset_ = offsets.stop - 1
        return len(cols)


def replay(
    rec: Recommender,
    event_log: EventLog,
    progress: Progress | None = None,
    *,
    learn: bool = False,
    batch_size: int = 20_000,
) -> int:
    """Apply every logged event after ``rec.log_offset_``; returns how many were applied.

    Each event changes the state (vocabularies, histories, seen items, popularity) exactly
    as it did live. With ``learn`` False (the default) the replayed events are not queued
    for parameter steps: the snapshot's parameters serve them, reading the replayed
    histories as they read any user's (fold-in, sequence models), and a step per replayed
    event would cost a recovery as much as the online learning of the whole period
    (``mf``'s fold-in solves a system per user). Snapshots every ``every_events`` bound
    how many events that is.
    """
    last = event_log.last_offset()
    applied = 0
    if progress is not None:
        progress(rec.log_offset_, last)
    learner = rec._learner
    if not learn:
        rec._learner = None
    try:
        for first, cols in event_log.read(rec.log_offset_ + 1, batch_size):
            applied += apply_logged(rec, cols, range(first, first + len(cols)))
            if progress is not None:
                progress(rec.log_offset_, max(last, rec.log_offset_))
    finally:
        rec._learner = learner
    if rec.log_offset_ < last:
        raise StorageError(
            f"log: ends at {rec.log_offset_} but its last offset is {last}: events are missing"
        )
    return applied


def recover(
    event_log: EventLog,
    store: ModelStore | None,
    model_path: Path | None,
    progress: Progress | None = None,
) -> Recommender:
    """The engine as of the log's end: the newest valid snapshot in ``store`` (else the
    model at ``model_path``) with the rest of the log replayed."""
    from recloop.engine.recommender import Recommender

    loaded: list[Recommender] = []
    snap = store.latest(loader=lambda p: loaded.append(Recommender.load(p))) if store else None
    if snap is not None:
        rec = loaded[-1]
        log.info("recovering from snapshot %s (log offset %d)", snap.folder, rec.log_offset_)
    elif model_path is not None:
        rec = Recommender.load(model_path)
        log.info("recovering from %s (log offset %d)", model_path, rec.log_offset_)
    else:
        raise ConfigError("model: no valid snapshot and no model folder to start from")
    t0 = time.perf_counter()
    n = replay(rec, event_log, progress)
    seconds = time.perf_counter() - t0
    log.info(
        "replayed %d events in %.1f s (%.0f/s); at log offset %d",
        n,
        seconds,
        n / seconds if seconds > 0 else 0.0,
        rec.log_offset_,
    )
    return rec


class Durable:
    """A recommender's log, group committer, snapshots and their background thread.

    Parameters
    ----------
    rec
        The engine; its ``log_offset_`` must already be the log's last offset (``recover``
        or ``replay`` first).
    event_log
        The log every update is appended to before it is applied.
    store
        Where automatic and ``snapshot()`` snapshots go; ``None``: no snapshots.
    policy
        When to snapshot on its own.
    """

    def __init__(
        self,
        rec: Recommender,
        event_log: EventLog,
        store: ModelStore | None = None,
        policy: SnapshotPolicy | None = None,
    ) -> None:
        last = event_log.last_offset()
        if rec.log_offset_ != last:
            raise StorageError(
                f"log: the engine is at offset {rec.log_offset_} but the log at {last}: "
                "replay the log first (recloop.engine.durable.replay)"
            )
        self.rec = rec
        self.log = event_log
        self.store = store
        self.policy = policy or SnapshotPolicy()
        self.committer = GroupCommitter(event_log)
        #: write snapshots from a forked child (POSIX), pausing updates only for the fork
        self.fork = True
        #: how long the last snapshot held the engine's locks, in milliseconds
        self.pause_ms = 0.0
        self.last_snapshot: SnapshotInfo | None = None
        self._snap_offset = rec.log_offset_
        self._snap_time = time.monotonic()
        self._snap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if store is not None and (self.policy.every_events or self.policy.every_seconds):
            self._thread = threading.Thread(
                target=self._snapshots, name="recloop-snapshots", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ updates
    def submit(self, events: Any) -> Future[tuple[int, int]]:
        """Validate ``events`` and queue them; the future resolves to ``(accepted, offset)``
        (the last event's log offset) once they are durable and applied, or raises
        ``StorageError`` when the log refused them (nothing applied)."""
        self.rec._check_fitted()
        cols = parse_events(events, self.rec.feedback.types)
        if len(cols) == 0:
            done: Future[tuple[int, int]] = Future()
            done.set_result((0, self.rec.log_offset_))
            return done
        return self.committer.submit(cols, lambda offsets: self._apply(cols, offsets))

    def _apply(self, cols: EventColumns, offsets: range) -> tuple[int, int]:
        apply_logged(self.rec, cols, offsets)
        return len(cols), offsets.stop - 1

    def update(self, events: Any) -> int:
        """``submit`` and wait: the number of events applied."""
        return self.submit(events).result()[0]

    # ------------------------------------------------------------------ snapshots
    def _save(self, folder: Path) -> dict[str, int]:
        if self.fork and hasattr(os, "fork"):
            self._save_forked(folder)
        else:
            t0 = time.perf_counter()
            self.rec.save(folder)
            self.pause_ms = (time.perf_counter() - t0) * 1000
        meta = json.loads((folder / "meta.json").read_text())
        return {"model_version": int(meta["model_version"]), "log_offset": int(meta["log_offset"])}

    def _save_forked(self, folder: Path) -> None:
        """``rec.save`` in a forked child: the fork is a copy-on-write image of the state
        taken under the engine's locks, so updates pause only for the fork itself (as
        Redis's BGSAVE) while the child writes."""
        rec = self.rec
        t0 = time.perf_counter()
        parent = os.getpid()
        with rec._lock, rec._model_lock:
            pid = os.fork()
            if pid == 0:  # the child: the locks are its own thread's, save re-enters them
                code = 1
                try:
                    _die_with_parent(parent)
                    # the parent's intra-op thread pool did not survive the fork: one thread
                    torch.set_num_threads(1)
                    rec.save(folder)
                    code = 0
                except BaseException:  # report, and exit without the parent's cleanup
                    traceback.print_exc()
                finally:
                    os._exit(code)
        self.pause_ms = (time.perf_counter() - t0) * 1000
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise StorageError(
                    f"snapshots: writing {str(folder)!r} took over {SNAPSHOT_TIMEOUT_S} s"
                )
            time.sleep(0.01)
        if status != 0:
            raise StorageError(
                f"snapshots: the process writing {str(folder)!r} failed (wait status {status})"
            )

    def snapshot(self) -> SnapshotInfo:
        """Write a snapshot now and trim the log behind the oldest snapshot kept."""
        if self.store is None:
            raise ConfigError("snapshots: no snapshot folder is configured (--data-dir)")
        with self._snap_lock:
            t0 = time.perf_counter()
            info = self.store.write(self._save)
            self.last_snapshot = info
            self._snap_offset, self._snap_time = info.log_offset, time.monotonic()
            oldest = self.store.oldest_offset()
            dropped = self.log.trim(oldest + 1) if oldest is not None else 0
            log.info(
                "snapshot at log offset %d in %.2f s (updates paused %.1f ms; %s); "
                "%d log events trimmed",
                info.log_offset,
                time.perf_counter() - t0,
                self.pause_ms,
                info.folder.name,
                dropped,
            )
            return info

    def _due(self) -> bool:
        new = self.rec.log_offset_ - self._snap_offset
        if new <= 0:
            return False
        p = self.policy
        return bool(
            (p.every_events and new >= p.every_events)
            or (p.every_seconds and time.monotonic() - self._snap_time >= p.every_seconds)
        )

    def _snapshots(self) -> None:
        while not self._stop.wait(0.2):
            if self._due():
                try:
                    self.snapshot()
                except Exception:  # a failed snapshot leaves the log untrimmed: retry later
                    log.exception("automatic snapshot failed")
                    self._snap_time = time.monotonic()

    def close(self, close_log: bool = True) -> None:
        """Stop snapshotting, apply what waits for a commit, and close the log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60.0)
        self.committer.close()
        if close_log:
            self.log.close()


def _die_with_parent(parent: int) -> None:
    """Linux: the snapshot child is killed with its parent (it must not outlive it holding
    the parent's listening socket)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent is already gone
        os._exit(1)
