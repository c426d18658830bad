"""End to end: ``recloop serve`` and Gunicorn as real processes, checked by contract_check.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def find_contract() -> Path | None:
    """``../shared/contract_check.py`` beside the repository (or beside any parent folder)."""
    override = os.environ.get("RECLOOP_CONTRACT_CHECK")
    candidates = [Path(override)] if override else []
    candidates += [p / "shared" / "contract_check.py" for p in ROOT.parents]
    return next((p for p in candidates if p.is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``cmd``, wait until ``/health`` answers, yield the base URL, then stop it."""
    log = open(os.devnull, "wb")
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
                )
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /health within 90 s")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if proc.stderr:
            proc.stderr.close()


def contract(base: str) -> subprocess.CompletedProcess[str]:
    path = find_contract()
    if path is None:
        pytest.skip(
            "shared/contract_check.py is not beside the repository (../shared/contract_check.py)"
        )
    return subprocess.run(
        [sys.executable, str(path), "--models", "", "--http", base],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_recloop_serve_passes_the_http_contract(model_dir):
    if find_contract() is None:
        pytest.skip(
            "shared/contract_check.py is not beside the repository (../shared/contract_check.py)"
        )
    port = free_port()
    with running(
        [
            str(BIN / "recloop"),
            "serve",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        port,
    ) as base:
        out = contract(base)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
        assert "all contract checks passed" in out.stdout


def test_gunicorn_serves_the_app_factory(model_dir):
    port = free_port()
    env = {
        "RECLOOP_MODEL_PATH": str(model_dir),
        "RECLOOP_PORT": str(port),
        "RECLOOP_WORKERS": "1",
        "RECLOOP_LOG_LEVEL": "warning",
    }
    cmd = [str(BIN / "gunicorn"), "--no-control-socket", "-c", str(ROOT / "gunicorn.conf.py")]
    with running(cmd, port, env) as base:
        req = urllib.request.Request(
            base + "/events",
            data=json.dumps({"user_id": "g", "item_id": "4"}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["accepted"] == 1
        with urllib.request.urlopen(base + "/users/g/history", timeout=10) as r:
            assert json.loads(r.read())["items"] == ["4"]
