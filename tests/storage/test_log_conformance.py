"""One suite every ``EventLog`` backend passes, on the real SQLite and a real Valkey server."""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recloop.errors import ConfigError, StorageError
from recloop.events import Event, EventColumns
from recloop.storage import EventLog, open_log


def batch(n: int, start: int = 0, user: str | None = None) -> EventColumns:
    out = EventColumns([], [], [], [], [])
    for j in range(start, start + n):
        ctx = {"page": j, "tags": ["a", {"b": None}]} if j % 3 == 0 else None
        out.append(
            Event(
                user or f"u{j % 5}", f"i{j}", "rating" if j % 2 else "click", j / 2, 1.7e9 + j, ctx
            )
        )
    return out


def everything(log: EventLog, start: int = 1) -> tuple[list[int], list[Event]]:
    offsets, events = [], []
    for first, cols in log.read(start, batch_size=7):
        offsets.extend(range(first, first + len(cols)))
        events.extend(cols.events())
    return offsets, events


def test_append_returns_consecutive_offsets_from_1(log_url: str) -> None:
    log = open_log(log_url)
    assert log.last_offset() == 0
    assert list(log.append(batch(3))) == [1, 2, 3]
    assert list(log.append(batch(2, 3))) == [4, 5]
    assert log.last_offset() == 5
    assert isinstance(log, EventLog)
    log.close()


def test_read_returns_every_field_in_order(log_url: str) -> None:
    log = open_log(log_url)
    log.append(batch(10))
    log.append(batch(10, 10))
    offsets, events = everything(log)
    assert offsets == list(range(1, 21))
    assert events == batch(20).events()
    assert [e.item_id for e in everything(log, 15)[1]] == [f"i{j}" for j in range(14, 20)]
    assert everything(log, 21) == ([], [])
    log.close()


def test_an_empty_batch_takes_no_offset(log_url: str) -> None:
    log = open_log(log_url)
    assert len(log.append(batch(0))) == 0
    assert list(log.append(batch(1))) == [1]
    log.close()


def test_reopened_log_keeps_events_and_offsets(log_url: str) -> None:
    log = open_log(log_url)
    log.append(batch(4))
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.append(batch(1))
    again = open_log(log_url)
    assert again.last_offset() == 4
    assert list(again.append(batch(1, 4))) == [5]
    assert everything(again)[1] == batch(5).events()
    again.close()


def test_trim_drops_older_events_and_never_reuses_offsets(log_url: str) -> None:
    log = open_log(log_url)
    log.append(batch(10))
    assert log.trim(4) == 3
    offsets, _ = everything(log)
    assert offsets == list(range(4, 11))
    info = log.info()
    assert (info.events, info.first_offset, info.last_offset) == (7, 4, 10)
    log.trim(11)  # everything
    assert everything(log) == ([], [])
    log.close()
    again = open_log(log_url)
    assert list(again.append(batch(1))) == [11]
    again.close()


def test_info_reports_counts_offsets_time_range(log_url: str) -> None:
    log = open_log(log_url)
    empty = log.info()
    assert (empty.events, empty.first_offset, empty.last_offset) == (0, 0, 0)
    assert empty.oldest_timestamp is None
    log.append(batch(6))
    info = log.info()
    assert (info.events, info.first_offset, info.last_offset) == (6, 1, 6)
    assert (info.oldest_timestamp, info.newest_timestamp) == (1.7e9, 1.7e9 + 5)
    assert info.size_bytes is None or info.size_bytes > 0
    log.close()


def test_concurrent_appends_get_distinct_consecutive_offsets(log_url: str) -> None:
    log = open_log(log_url)
    got: list[range] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for _ in range(20):
            r = log.append(batch(3, user=f"w{w}"))
            with lock:
                got.append(r)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for r in got for o in r) == list(range(1, 241))
    assert all(len(r) == 3 and r.step == 1 for r in got)
    log.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(0, 30), max_size=8), trim_at=st.integers(1, 200))
def test_offsets_stay_monotonic_whatever_the_appends_and_trims(
    log_url: str, sizes: list[int], trim_at: int
) -> None:
    log = open_log(log_url)
    base = log.last_offset()
    at = base
    for n in sizes:
        r = log.append(batch(n))
        assert r.start == at + 1 and len(r) == n
        at = r.stop - 1
    log.trim(base + trim_at)
    offsets, _ = everything(log, base + 1)
    assert offsets == list(range(max(base + 1, base + trim_at), at + 1))
    assert log.last_offset() == at
    log.close()


def test_unknown_scheme_and_bad_durability_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown URL scheme 'kafka'"):
        open_log("kafka://x")
    with pytest.raises(ConfigError, match="durability: must be one of process, fsync"):
        open_log(f"sqlite://{tmp_path}/e.db", durability="sometimes")


def test_a_plain_path_opens_a_sqlite_log(tmp_path) -> None:
    log = open_log(tmp_path / "plain.db")
    log.append(batch(2))
    assert log.url.startswith("sqlite://") and (tmp_path / "plain.db").exists()
    log.close()


def test_fsync_durability_appends_on_every_backend(tmp_path, durable_valkey) -> None:
    for url in (f"sqlite://{tmp_path}/f.db", f"{durable_valkey.url}?stream=fsync"):
        log = open_log(url, durability="fsync")
        assert list(log.append(batch(3))) == [1, 2, 3]
        log.close()


def test_fsync_on_a_server_without_append_only_file_is_refused(valkey) -> None:
    log = open_log(f"{valkey.url}?stream=no-aof", durability="fsync")
    with pytest.raises(StorageError, match="cannot append 1 events"):
        log.append(batch(1))
    log.close()


def test_a_server_gone_is_a_storage_error(durable_valkey) -> None:
    log = open_log(f"{durable_valkey.url}?stream=gone")
    log.append(batch(2))
    durable_valkey.kill()
    with pytest.raises(StorageError, match="cannot append 1 events"):
        log.append(batch(1))
    durable_valkey.start()  # the append-only file brings every acknowledged event back
    assert everything(log)[1] == batch(2).events()
    log.close()
    with pytest.raises(StorageError, match="cannot reach"):
        open_log(f"redis://127.0.0.1:{unused_port()}/0")


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_torn_append_only_file_tail_keeps_every_acknowledged_event(durable_valkey) -> None:
    url = f"{durable_valkey.url}?stream=torn"
    log = open_log(url, durability="fsync")
    for k in range(3):
        log.append(batch(4, 4 * k))
    log.close()
    durable_valkey.kill()
    incr = sorted(durable_valkey.folder.rglob("*.incr.aof"))
    assert incr, "the server keeps an append-only file"
    with open(incr[-1], "ab") as f:  # a command cut short by the crash
        f.write(b"*5\r\n$4\r\nXADD\r\n$5\r\ntorn")
    durable_valkey.start()
    again = open_log(url, durability="fsync")
    assert everything(again)[1] == batch(12).events()
    assert list(again.append(batch(1))) == [13]
    again.close()
