"""The engine with an event log: logged before applied, applied in log order, replayable,
and nothing acknowledged lost when the log refuses a write."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recloop import Recommender
from recloop.engine.durable import SnapshotPolicy, recover, replay
from recloop.errors import InvalidInputError, StorageError
from recloop.storage import ModelStore, open_log
from storage.storage_helpers import (
    can_mount,
    engine_state,
    make_read_only,
    make_writable,
    save_model,
    tmpfs,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("durable") / "model")


def click(user: object, item: object, ts: float = 1.8e9) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "type": "click", "timestamp": ts}


def test_update_logs_then_applies(model: Path, log_url: str) -> None:
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(log_url))
    assert rec.update([click("a", "x1"), click("a", "x2")]) == 2
    accepted, offset = durable.submit(click("b", "x3")).result()
    assert (accepted, offset, rec.log_offset_) == (1, 3, 3)
    assert rec.history("a")[-2:] == ["x1", "x2"]
    logged = [e.item_id for _, cols in durable.log.read(1) for e in cols.events()]
    assert logged == ["x1", "x2", "x3"]
    durable.close()


def test_an_invalid_batch_is_neither_logged_nor_applied(model: Path, tmp_path: Path) -> None:
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(f"sqlite://{tmp_path}/e.db"))
    before = engine_state(rec)
    with pytest.raises(InvalidInputError, match=r"events\[1\].type"):
        rec.update([click("a", "x1"), {"user_id": "a", "item_id": "x2", "type": "nope"}])
    assert durable.log.last_offset() == 0 and engine_state(rec) == before
    durable.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["u1", "u2", "3", "new-user"]),
                st.sampled_from(["1", "2", "x", "y", "z"]),
                st.sampled_from(["click", "view", "skip", "rating", "purchase"]),
                st.floats(0, 5),
            ),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=12,
    ),
    threads=st.integers(1, 4),
)
def test_replaying_the_log_reproduces_the_live_state(
    model: Path, tmp_path: Path, batches: list[list[tuple[str, str, str, float]]], threads: int
) -> None:
    url = f"sqlite://{tmp_path}/prop-{threads}-{abs(hash(str(batches)))}.db"
    live = Recommender.load(model)
    durable = live.attach_log(open_log(url))
    todo = list(enumerate(batches))
    lock = threading.Lock()

    def worker() -> None:  # concurrent requests: the log decides the order
        while True:
            with lock:
                if not todo:
                    return
                n, b = todo.pop()
            live.update(
                [
                    {"user_id": u, "item_id": i, "type": t, "value": v, "timestamp": 1.8e9 + n}
                    for u, i, t, v in b
                ]
            )

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    durable.close()
    fresh = Recommender.load(model)
    log = open_log(url)
    replay(fresh, log)
    log.close()
    assert engine_state(fresh) == engine_state(live)
    assert fresh.log_offset_ == sum(len(b) for b in batches)


def test_snapshots_trim_the_log_and_recovery_resumes_from_them(model: Path, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    store = ModelStore(tmp_path / "snaps", keep=2)
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(url), store, SnapshotPolicy(every_events=0, every_seconds=0))
    for k in range(3):
        rec.update([click(f"u{k}", f"i{j}", 1.8e9 + j) for j in range(10)])
        durable.snapshot()
    rec.update(click("late", "i99"))
    live = engine_state(rec)
    assert [s.log_offset for s in store.kept()] == [30, 20]
    assert durable.log.info().first_offset == 21  # every event after the oldest snapshot kept
    durable.close()
    log = open_log(url)
    back = recover(log, store, model)
    assert engine_state(back) == live and back.history("late") == ["i99"]
    log.close()


def test_automatic_snapshot_after_n_events(model: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "snaps")
    rec = Recommender.load(model)
    durable = rec.attach_log(
        open_log(f"sqlite://{tmp_path}/e.db"), store, SnapshotPolicy(every_events=5)
    )
    rec.update([click("a", f"i{j}") for j in range(6)])
    for _ in range(100):
        if store.kept():
            break
        threading.Event().wait(0.05)
    assert [s.log_offset for s in store.kept()] == [6]
    durable.close()


def test_recovery_skips_a_corrupt_snapshot_and_replays_more(model: Path, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    store = ModelStore(tmp_path / "snaps", keep=3)
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(url), store, SnapshotPolicy(0, 0))
    rec.update([click("a", "i1"), click("a", "i2")])
    durable.snapshot()
    rec.update([click("a", "i3")])
    newest = durable.snapshot()
    rec.update([click("a", "i4")])
    live = engine_state(rec)
    durable.close()
    (newest.path / "state.pt").write_bytes(b"half a snapshot")
    log = open_log(url)
    back = recover(log, store, None)
    assert engine_state(back) == live
    log.close()


def test_a_log_trimmed_past_the_snapshot_is_an_error_not_a_silent_loss(
    model: Path, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(url))
    rec.update([click("a", f"i{j}") for j in range(5)])
    durable.log.trim(3)
    durable.close()
    log = open_log(url)
    with pytest.raises(StorageError, match=r"events 1\.\.2 are missing"):
        recover(log, None, model)
    log.close()


def test_attaching_replays_what_the_log_holds_beyond_the_model(model: Path, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    first = Recommender.load(model)
    d = first.attach_log(open_log(url))
    first.update([click("a", "i1")])
    d.close()
    second = Recommender.load(model)
    d2 = second.attach_log(open_log(url))
    assert second.history("a") == ["i1"] and second.log_offset_ == 1
    d2.close()


# ---------------------------------------------------------------- the log refuses a write


def _fill_until_refused(rec: Recommender) -> tuple[list[str], StorageError]:
    acked: list[str] = []
    for n in range(100_000):
        items = [f"item-{n}-{j}-" + "x" * 200 for j in range(20)]
        try:
            rec.update([click(f"user{n % 7}", i) for i in items])
        except StorageError as exc:
            return acked, exc
        acked.extend(items)
    raise AssertionError("the log never refused a write")


def _check_nothing_lost(rec: Recommender, acked: list[str], url: str, model: Path) -> None:
    applied = [i for u in range(7) for i in rec.history(f"user{u}")]
    assert sorted(applied) == sorted(acked)  # nothing refused was applied
    log = open_log(url)
    back = Recommender.load(model)
    replay(back, log)
    log.close()
    assert engine_state(back) == engine_state(rec)


def test_a_full_disk_refuses_with_a_clear_error_and_loses_nothing(
    model: Path, tmp_path: Path
) -> None:
    if can_mount():  # a real full filesystem
        with tmpfs(tmp_path / "tiny", "256k") as folder:
            url = f"sqlite://{folder}/e.db"
            rec = Recommender.load(model)
            durable = rec.attach_log(open_log(url))
            acked, err = _fill_until_refused(rec)
            durable.close()
            assert "full" in str(err) and len(acked) > 0
            _check_nothing_lost(rec, acked, url, model)
    url = f"sqlite://{tmp_path}/capped.db?max_bytes=200000"  # anyone: SQLite's page cap
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(url))
    acked, err = _fill_until_refused(rec)
    durable.close()
    assert "cannot append 20 events" in str(err) and "full" in str(err) and acked
    _check_nothing_lost(rec, acked, url, model)


def test_a_read_only_folder_is_a_clear_error_and_keeps_the_log(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    ctx = tmpfs(folder, "4m") if can_mount() else None
    if ctx is not None:
        ctx.__enter__()
    else:
        folder.mkdir()
    try:
        url = f"sqlite://{folder}/e.db"
        rec = Recommender.load(model)
        durable = rec.attach_log(open_log(url))
        rec.update(click("a", "kept"))
        durable.close()
        make_read_only(folder)
        with pytest.raises(StorageError, match=r"log: cannot open '.*e.db': .*(read|open)"):
            open_log(url)
        with pytest.raises(StorageError, match=r"log: cannot open '.*new.db'"):
            open_log(f"sqlite://{folder}/sub/new.db")
        with pytest.raises(StorageError, match="snapshots: cannot write to"):
            ModelStore(folder / "snapshots")
        make_writable(folder)
        log = open_log(url)
        back = Recommender.load(model)
        replay(back, log)
        assert back.history("a") == ["kept"]
        log.close()
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
        else:
            folder.chmod(0o700)


def _crash_copy(src: Path, dst: Path) -> None:
    """The files as a killed process leaves them: the database and its WAL, not checkpointed."""
    dst.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{src}{suffix}", dst / f"e.db{suffix}")


def test_a_torn_log_tail_keeps_every_complete_commit(model: Path, tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    log = open_log(f"sqlite://{path}")
    conn = sqlite3.connect(path)  # a second connection keeps the WAL from being checkpointed
    conn.execute("PRAGMA wal_autocheckpoint=0")
    rec = Recommender.load(model)
    durable = rec.attach_log(log)
    for j in range(5):
        rec.update([click("a", f"i{j}")])
    _crash_copy(path, tmp_path / "garbage")
    with open(tmp_path / "garbage" / "e.db-wal", "ab") as f:  # a half-written next commit
        f.write(b"\x37\x7f\x06\x82" + b"\xab" * 3000)
    _crash_copy(path, tmp_path / "cut")
    wal = tmp_path / "cut" / "e.db-wal"
    wal.write_bytes(wal.read_bytes()[:-100])  # the last commit's final frame is cut short
    durable.close()
    conn.close()

    torn = open_log(f"sqlite://{tmp_path}/garbage/e.db")
    assert [e.item_id for _, c in torn.read(1) for e in c.events()] == [f"i{j}" for j in range(5)]
    torn.close()
    cut = open_log(f"sqlite://{tmp_path}/cut/e.db")
    assert [e.item_id for _, c in cut.read(1) for e in c.events()] == [f"i{j}" for j in range(4)]
    assert list(cut.append(open_log_batch())) == [5]  # the incomplete commit's offset is reused
    cut.close()


def open_log_batch():  # one event as columns
    from recloop.events import Event, EventColumns

    out = EventColumns([], [], [], [], [])
    out.append(Event("a", "again", "click", 1.0, 1.8e9))
    return out


def test_a_corrupt_log_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"log: cannot open '.*e.db': file is not a database"):
        open_log(f"sqlite://{path}")


@pytest.mark.parametrize("fork", [True, False])
def test_snapshots_taken_while_updates_run_are_consistent(
    model: Path, tmp_path: Path, fork: bool
) -> None:
    url = f"sqlite://{tmp_path}/e.db"
    store = ModelStore(tmp_path / "snaps", keep=10)
    rec = Recommender.load(model)
    durable = rec.attach_log(open_log(url), store, SnapshotPolicy(0, 0))
    durable.fork = fork
    done = threading.Event()

    def writer() -> None:
        for n in range(300):
            rec.update([click(f"w{n % 4}", f"i{n}-{j}", 1.8e9 + n) for j in range(3)])
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set():
        durable.snapshot()
    t.join()
    assert durable.pause_ms >= 0.0
    live = engine_state(rec)
    durable.close()
    for snap in store.kept():  # each snapshot plus the log after its offset is the live state
        back = Recommender.load(snap.path)
        assert back.log_offset_ == snap.log_offset
        assert sum(len(back.history(f"w{u}")) for u in range(4)) == snap.log_offset
        log = open_log(url)
        replay(back, log)
        log.close()
        assert engine_state(back) == live
