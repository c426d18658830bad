"""What every bench script prints beside its results: machine, versions, config hash."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
    }


def emit(name: str, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Print one JSON object and append it to bench/results/NAME.jsonl keyed by a config hash."""
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    out = {
        "bench": name,
        "config_hash": key,
        "config": config,
        "machine": machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return out


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    return head + "".join(
        "| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows
    )
