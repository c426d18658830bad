"""Scoring users' rows and picking their top items: who the model personalises, exact
scores for them, recent popularity for the others, and the top-k pass with seen items out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from recloop.engine.userstate import known_history
from recloop.models import RecModel


def personalised(model: RecModel, arr: np.ndarray, hist: list[np.ndarray]) -> np.ndarray:
    """(n,) bool: the users ``model`` ranks; the others get recent popularity. The caller
    holds the model lock; ``hist`` is already cut to the model's items."""
    warm = np.array(
        [x >= 0 and (len(h) > 0 or not model.uses_history) for x, h in zip(arr, hist)], bool
    )
    if warm.any():
        warm[warm] = model.can_personalise(arr[warm], [h for h, w in zip(hist, warm) if w])
    return warm


def score_rows(
    model: RecModel,
    model_lock: threading.RLock,
    popular: Callable[[], np.ndarray],
    uidxs: Sequence[int],
    hist: list[np.ndarray],
    n_items: int,
    times: list[np.ndarray] | None = None,
    warm: np.ndarray | None = None,
    learning: bool = False,
    fill_cold: Callable[[np.ndarray, np.ndarray, list[np.ndarray], int], None] | None = None,
) -> np.ndarray:
    """(len(uidxs), n_items) float32 scores: the model's for the users it personalises
    (``warm`` when the caller knows them already), ``popular()`` for the others. With
    ``learning`` the model is told the rows it served (``RecModel.served``), so an online
    step can reuse them. ``fill_cold(out, mask, histories, n_model_items)`` then scores the
    items the model has no interactions for (content, ``engine.metadata``).

    Takes only the model lock, so ``update`` never waits for scoring. Items newer than
    the model's table score ``-inf`` (they cannot be recommended before it has a row).
    """
    arr = np.asarray(uidxs, np.int64)
    out = np.empty((len(arr), n_items), np.float32)
    mask = np.zeros(len(arr), bool) if warm is None else warm
    if warm is None or warm.any():
        with model_lock:
            hist, extra = known_history(hist, times, model.n_items_)
            if warm is None:
                mask = personalised(model, arr, hist)
            extra = {k: [t for t, w in zip(v, mask) if w] for k, v in extra.items()}
            shown = [h for h, w in zip(hist, mask) if w]
            s = model.score(arr[mask], shown, **extra) if mask.any() else None
            if s is not None and learning:
                model.served(arr[mask], shown, s)
        if s is not None:
            m = min(s.shape[1], n_items)
            rows = slice(None) if mask.all() else mask  # a slice copies without a mask's gather
            out[rows, :m] = s[:, :m]
            out[rows, m:] = -np.inf
            if fill_cold is not None:
                fill_cold(out, mask, hist, m)
    if (~mask).any():
        out[~mask] = popular()
    return out


def top_rows(
    scores: np.ndarray, seen: Sequence[np.ndarray], k: int, exclude_seen: bool
) -> list[list[int]]:
    """Top-``k`` item indices of each row of ``scores``, best first.

    Per row, one argpartition and a sort of its ``k`` candidates (cheaper than the
    block-wide version for a request's few rows); a row with fewer than ``k``
    recommendable items returns what it has. With ``exclude_seen`` the row's ``seen``
    items are set to ``-inf`` first (in place).
    """
    if exclude_seen:
        for r, ex in enumerate(seen):
            if len(ex):
                scores[r, ex] = -np.inf
    out: list[list[int]] = []
    n_items = scores.shape[1]
    for row in scores:
        finite = np.isfinite(row)
        neg = np.where(finite, -row, np.inf)  # what cannot be recommended sorts last
        top = np.argpartition(neg, k - 1)[:k] if k < n_items else np.arange(n_items)
        top = top[np.argsort(neg[top], kind="stable")]
        out.append(top[finite[top]].tolist())
    return out


def click_proba(
    fn: Callable[..., np.ndarray],
    uidx: np.ndarray,
    iidx: np.ndarray,
    behaviors: Sequence[float | None],
) -> np.ndarray:
    """(n,) float64 a click model's ``predict_proba(user_idx, item_idx, features)``; rows
    without a behavior are asked with ``None`` (the model uses its training mean)."""
    if all(x is None for x in behaviors):
        return np.asarray(fn(uidx, iidx, None), np.float64)
    out = np.empty(len(uidx))
    given = np.array([x is not None for x in behaviors])
    if given.any():
        feats = np.array([[x] for x in behaviors if x is not None], np.float32)
        out[given] = fn(uidx[given], iidx[given], feats)
    if (~given).any():
        out[~given] = fn(uidx[~given], iidx[~given], None)
    return out


def percentile_of(scores: np.ndarray, iidx: np.ndarray) -> np.ndarray:
    """(n,) float64 the share of row ``r``'s items that score below item ``iidx[r]``
    (0 for an unknown item, -1, or one the model cannot score yet)."""
    at = scores[np.arange(len(iidx)), np.maximum(iidx, 0)]
    share = (scores < at[:, None]).mean(1)
    out: np.ndarray = np.where((iidx >= 0) & np.isfinite(at), share, 0.0)
    return out
