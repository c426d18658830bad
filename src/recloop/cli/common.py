"""Helpers shared by the CLI commands: loading data sets, printing JSON and tables."""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from recloop.data.dataset import Dataset
from recloop.errors import InvalidInputError


def load_data(name_or_path: str) -> Dataset:
    from recloop.data import load

    return load(name_or_path)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table, floats to 4 significant digits."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[j]) for row in cells)) if cells else len(c)
        for j, c in enumerate(columns)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def set_threads(threads: int) -> None:
    if threads < 1:
        raise InvalidInputError("--threads", f"must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def parse_hyper(pairs: list[str] | None) -> dict[str, Any]:
    """``--set dim=64 --set lr=0.001`` -> {"dim": 64, "lr": 0.001} (JSON values, else strings)."""
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise InvalidInputError("--set", f"expects NAME=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out
