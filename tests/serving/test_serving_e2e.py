"""End to end: ``recloop serve`` and Gunicorn as real processes, checked by contract_check.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from serverproc import free_port, running

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def find_contract() -> Path | None:
    """``../shared/contract_check.py`` beside the repository (or beside any parent folder)."""
    override = os.environ.get("RECLOOP_CONTRACT_CHECK")
    candidates = [Path(override)] if override else []
    candidates += [p / "shared" / "contract_check.py" for p in ROOT.parents]
    return next((p for p in candidates if p.is_file()), None)


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
