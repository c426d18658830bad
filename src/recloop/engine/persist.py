"""Snapshots: a folder with ``meta.json`` (settings, counters) and ``state.pt`` (tensors only).

``save`` writes into a temporary folder and renames it into place, so a reader never sees
half a snapshot; ``load`` reads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recloop.data.vocab import Vocab
from recloop.engine.userids import UserIds
from recloop.engine.userstate import FREE, UserState
from recloop.errors import InvalidInputError
from recloop.events import FeedbackMapping
from recloop.online import OnlineConfig

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender

FORMAT_VERSION = 2
_STATE_KEYS = ("seq_len", "seq_flat", "seq_time", "seen_len", "seen_flat")


def write_snapshot(
    path: Path,
    meta: dict[str, Any],
    state: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``meta`` and ``state`` to ``path`` atomically, with what ``write_extra(folder)``
    adds (the item and user attributes); files others put in an existing ``path`` (a run's
    train/test split) are kept."""
    tmp = path.with_name(path.name + f".tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION, **meta}, indent=2))
    if write_extra is not None:
        write_extra(tmp)
    if path.exists():
        for extra in path.iterdir():
            if not (tmp / extra.name).exists() and extra.is_file():
                shutil.copy2(extra, tmp / extra.name)
        old = path.with_name(path.name + f".old-{time.time_ns()}")
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(path)
    return path


def snapshot_of(rec: Recommender) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, state)`` of a fitted recommender (caller holds both of its locks)."""
    n_items = len(rec.items_)
    meta = {
        "model": rec.model_name,
        "seed": rec.seed,
        "hyperparameters": rec.model_.hyperparameters(),
        "threads": rec.threads,
        "online": rec.online_config.__dict__,
        "events_applied": rec.events_applied_,
        "model_version": rec.model_version_,
        "log_offset": rec.log_offset_,
        "fit_users": rec.users_.reuse_from,
        "fit_report": jsonable(rec.fit_report_),
        "feedback": {t: [sig.label, sig.weight] for t, sig in rec.feedback.signals.items()},
        "recent_counts": rec.recent_.state(),
        "rating_threshold": rec.feedback.rating_threshold,
    }
    state = {
        "model": to_torch(rec.model_.get_state()),
        "users": rec.users_.to_list(),
        "items": rec.items_.to_list(),
        **{k: torch.from_numpy(rec.user_state_.to_flat()[k]) for k in _STATE_KEYS},
        "item_counts": torch.from_numpy(rec.item_counts_[:n_items].copy()),
        "recent_counts": torch.from_numpy(rec.recent_.values[:n_items].copy()),
    }
    return meta, state


def read_snapshot(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, state)`` of the snapshot at ``path``."""
    meta_file = path / "meta.json"
    if not meta_file.exists():
        raise InvalidInputError("path", f"{path} is not a recloop snapshot (no meta.json)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise InvalidInputError(
            "path", f"{path} has snapshot format {meta.get('format')!r}; allowed: {FORMAT_VERSION}"
        )
    state = torch.load(path / "state.pt", weights_only=True)
    return meta, state


def settings_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``Recommender`` constructor's arguments recorded in ``meta``."""
    return {
        "model": meta["model"],
        "seed": meta["seed"],
        "threads": meta["threads"],
        "online": OnlineConfig(**meta["online"]),
        "feedback": FeedbackMapping.from_dict(meta["feedback"], meta["rating_threshold"]),
        "popularity_half_life": int(meta["recent_counts"]["half_life"]),
        **meta["hyperparameters"],
    }


def user_arrays(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """The users' state arrays of a snapshot's ``state``."""
    return {k: state[k].numpy() for k in _STATE_KEYS}


def restore(rec: Recommender, meta: dict[str, Any], state: dict[str, Any]) -> None:
    """A snapshot's model, users' state, vocabularies and counters into ``rec`` (built with
    the snapshot's settings)."""
    rec.model_.set_state(state["model"])
    restore_counters(rec, meta, state)
    rec.user_state_ = UserState.from_flat(user_arrays(state))
    free = [u for u, key in enumerate(state["users"]) if key == ""]
    rec.user_state_.last_active[free] = FREE  # never the least recently active
    rec.model_.grow(len(rec.users_), len(rec.items_))


def restore_counters(rec: Recommender, meta: dict[str, Any], state: dict[str, Any]) -> None:
    """Vocabularies, popularity and counters of a snapshot into ``rec``."""
    rec.users_ = UserIds.from_list(state["users"], int(meta["fit_users"]))
    rec.items_ = Vocab.from_list(state["items"])
    rec.item_counts_ = state["item_counts"].numpy().astype(np.float64)
    recent = meta["recent_counts"]
    rec.recent_.values = state["recent_counts"].numpy().astype(np.float64)
    rec.recent_.n, rec.recent_.base = int(recent["n"]), int(recent["base"])
    rec.events_applied_ = int(meta["events_applied"])
    rec.model_version_ = int(meta["model_version"])
    rec.log_offset_ = int(meta["log_offset"])
    rec.fit_report_ = meta["fit_report"]


def to_torch(obj: Any) -> Any:
    """numpy arrays (also inside dicts and lists) as tensors, for ``torch.save``."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], np.ndarray):
        return [to_torch(v) for v in obj]
    return obj


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars (and anything else json cannot write) made plain."""
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return json.loads(
            json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        )
