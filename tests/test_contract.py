"""shared/contract_check.py — the public surfaces outside tools rely on — passes on the Python API.

(The HTTP half runs against a real `recloop serve` in tests/serving.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT.parent / "shared" / "contract_check.py"


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not beside the repository")
def test_contract_check_python_api():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "popularity,mf,neumf,sasrec,lightgcn,mlp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "all contract checks passed" in proc.stdout
