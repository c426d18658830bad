"""SIGKILL a real ``recloop serve --data-dir`` at random moments while clients post events:
every acknowledged event survives, once, in its user's order."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import recloop
from serverproc import free_port
from storage.storage_helpers import save_model

CYCLES = 20
CLIENTS = 3
USERS_PER_CLIENT = 3


class ForkServer:
    """``tests/storage/forkserver.py``: forks ``recloop serve`` children from a process that
    has imported recloop once (an interpreter start with torch takes seconds here)."""

    def __init__(self) -> None:
        src = str(Path(recloop.__file__).parents[1])
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            env={**os.environ, "PYTHONPATH": src},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(self, argv: list[str], env: dict[str, str], stderr: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"argv": argv, "env": env, "stderr": str(stderr)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Server:
    """One ``recloop serve ARGS --port P`` child of the fork server."""

    def __init__(
        self, forks: ForkServer, args: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {"RECLOOP_LOG_LEVEL": "warning", **(env or {})}
        self.pid = forks.start(["serve", *args, "--port", str(self.port)], env, log)

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()

    def wait_ok(self, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                r = httpx.get(f"{self.url}/health", timeout=1.0)
                if r.status_code == 200:
                    return dict(r.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("the server did not become healthy")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        while self.alive():  # the kernel reaps it (the fork server ignores SIGCHLD)
            time.sleep(0.01)

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("crash") / "model")


class Client(threading.Thread):
    """Posts events for its own users, one request at a time; remembers what was acknowledged."""

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.n, self.rng = n, random.Random(seed)
        self.users = [f"c{n}u{k}" for k in range(USERS_PER_CLIENT)]
        self.acked: dict[str, list[str]] = {u: [] for u in self.users}
        self.sent = 0
        self.url = ""
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while not self.stop.is_set():
                user = self.rng.choice(self.users)
                size = 1 if self.rng.random() < 0.7 else self.rng.randint(2, 40)
                items = [f"{user}-e{self.sent + j}" for j in range(size)]
                self.sent += size
                events = [{"user_id": user, "item_id": i, "type": "click"} for i in items]
                body = events[0] if size == 1 else {"events": events}
                try:
                    r = http.post(f"{self.url}/events", json=body)
                except httpx.HTTPError:
                    time.sleep(0.02)  # the server is down: this request is not acknowledged
                    continue
                if r.status_code == 200:
                    assert r.json()["accepted"] == size and r.json()["offset"] >= size
                    self.acked[user].extend(items)
                else:
                    time.sleep(0.02)


def test_sigkill_loses_no_acknowledged_event_and_applies_none_twice(
    forks: ForkServer, model: Path, tmp_path: Path
) -> None:
    rng = random.Random(16)
    data = tmp_path / "data"
    env = {"RECLOOP_SNAPSHOT_EVERY_EVENTS": "150", "RECLOOP_SNAPSHOT_KEEP": "2"}
    args = ["--model", str(model), "--data-dir", str(data)]
    clients = [Client(n, seed=n) for n in range(CLIENTS)]
    started = False
    for cycle in range(CYCLES):
        server = Server(forks, args, tmp_path / "serve.log", env)
        if cycle % 5 == 4:  # now and then, kill it while it starts or recovers
            time.sleep(rng.uniform(0.2, 2.0))
            server.kill()
            continue
        server.wait_ok()
        for c in clients:
            c.url = server.url
        if not started:
            for c in clients:
                c.start()
            started = True
        time.sleep(rng.uniform(0.05, 0.8))
        server.kill()
    for c in clients:
        c.stop.set()
    for c in clients:
        c.join(timeout=10)

    server = Server(forks, args, tmp_path / "serve.log", env)
    health = server.wait_ok()
    try:
        total_acked = 0
        for c in clients:
            for user, acked in c.acked.items():
                history = httpx.get(f"{server.url}/users/{user}/history").json()["items"]
                assert len(history) == len(set(history)), f"{user}: an event applied twice"
                assert [i for i in history if i in set(acked)] == acked, f"{user}: order or loss"
                total_acked += len(acked)
        assert total_acked > 100  # the clients really got through between the kills
        assert isinstance(health["log_offset"], int) and health["log_offset"] >= total_acked
        assert any(data.joinpath("snapshots").glob("snap-*"))  # snapshots were taken meanwhile
    finally:
        server.kill()


def test_serve_without_a_data_dir_says_it_keeps_state_in_memory(
    forks: ForkServer, model: Path, tmp_path: Path
) -> None:
    server = Server(forks, ["--model", str(model)], tmp_path / "serve.log")
    try:
        health = server.wait_ok()
        assert health["log_offset"] is None
    finally:
        server.terminate()
    err = (tmp_path / "serve.log").read_text()
    lines = [x for x in err.splitlines() if "in memory only" in x]
    assert len(lines) == 1, err


def test_serve_with_a_data_dir_that_is_a_file_exits_2_with_one_line(
    model: Path, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    src = str(Path(recloop.__file__).parents[1])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recloop.cli",
            "serve",
            "--model",
            str(model),
            "--data-dir",
            str(not_a_dir),
        ],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().startswith("recloop: error: log: cannot open")
    assert len(out.stderr.strip().splitlines()) == 1
