"""Shared by the storage tests: a small saved model, engine state to compare, tiny filesystems."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recloop import Recommender
from synthdata import synthetic


def save_model(path: Path, model: str = "popularity") -> Path:
    Recommender(model=model, seed=0).fit(synthetic(n_users=20, n_items=30, per_user=6)).save(path)
    return path


def engine_state(rec: Recommender) -> dict[str, Any]:
    """What a replay must reproduce: vocabularies, histories, seen items, popularity."""
    n = len(rec.items_)
    return {
        "users": rec.users_.to_list(),
        "items": rec.items_.to_list(),
        "sequences": [list(s) for s in rec.sequences_],
        "times": [list(t) for t in rec.times_],
        "seen": [sorted(s) for s in rec.seen_],
        "item_counts": rec.item_counts_[:n].tolist(),
        "recent": np.round(rec.recent_.scores(n, rec.item_counts_[:n]), 9).tolist(),
        "events_applied": rec.events_applied_,
        "log_offset": rec.log_offset_,
    }


def can_mount() -> bool:
    return os.geteuid() == 0 and os.path.exists("/bin/mount")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def make_read_only(path: Path) -> None:
    """Remount a ``tmpfs`` read-only (root), or take the write bits away (anyone else)."""
    if can_mount():
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    else:
        path.chmod(0o500)


def make_writable(path: Path) -> None:
    """Undo ``make_read_only``."""
    if can_mount():
        subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True)
    else:
        path.chmod(0o700)
