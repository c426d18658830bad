"""Events that share a timestamp: their orders at scoring time and their shuffles in training.

A page of ratings sent in one second has no order of its own, yet a sequence model reads
one. Training reads each such run in a fresh random order every epoch (``shuffle_ties``);
scoring averages the output over a few seeded orders of it (``tie_orders``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recloop.models.base import TrainData


def tie_orders(
    history: np.ndarray, times: np.ndarray | None, window: int, n_orders: int, seed: int
) -> np.ndarray:
    """(orders, length): ``history`` as logged, then ``n_orders - 1`` orders in which each run
    of same-timestamp events that reaches into the last ``window`` items is shuffled (one
    row when no such run has two events, or without ``times``). Deterministic in ``seed``.

    A page of ratings sent in one second has no order of its own, yet the transformer reads
    one; averaging its output over orders is what training (``shuffle_ties``) prepared it for.

    >>> tie_orders(np.array([5, 6, 7, 8]), np.array([1, 2, 2, 3]), 2, 3, 0).shape
    (3, 4)
    >>> tie_orders(np.array([5, 6, 7, 8]), np.array([1, 2, 2, 3]), 1, 3, 0).shape
    (1, 4)
    """
    n = len(history)
    if n_orders < 2 or times is None or n < 2:
        return history[None]
    start = max(0, n - window)  # the window, widened to whole runs (one may reach back out of it)
    while start > 0 and times[start - 1] == times[start]:
        start -= 1
    t = times[start:]
    same = t[1:] == t[:-1]
    if not same.any():
        return history[None]
    runs = np.zeros(len(t), np.int64)
    np.cumsum(~same, out=runs[1:])
    out = np.repeat(history[None], n_orders, 0)
    out[1:, start:] = history[start:][
        np.argsort(runs + _tie_keys(seed, n_orders - 1, len(t)), axis=1)
    ]
    return out


_KEYS: dict[tuple[int, int], np.ndarray] = {}


def _tie_keys(seed: int, rows: int, length: int) -> np.ndarray:
    """(rows, length) uniform [0, 1) keys, the same for a seed whatever was asked before
    (drawn column by column, so a longer table starts with the shorter one)."""
    keys = _KEYS.get((seed, rows))
    if keys is None or keys.shape[1] < length:
        keys = np.random.default_rng(seed).random((max(64, 2 * length), rows)).T.copy()
        _KEYS[(seed, rows)] = keys
    return keys[:, :length]


def _tie_runs(data: TrainData) -> list[np.ndarray | None] | None:
    """Per user, a run number for each item of ``data.sequences[u]``: consecutive items
    with the same timestamp share one (None for a user without ties). None when the rows'
    positives do not line up with the sequences (then there is nothing to shuffle by)."""
    pos = np.flatnonzero(data.label > 0.5)
    order = pos[np.argsort(data.user_idx[pos], kind="stable")]
    counts = np.bincount(data.user_idx[pos], minlength=data.n_users)
    if len(counts) != len(data.sequences) or any(
        c != len(s) for c, s in zip(counts, data.sequences)
    ):
        return None
    out: list[np.ndarray | None] = []
    for t in np.split(data.timestamp[order], np.cumsum(counts)[:-1]):
        same = np.diff(t) == 0
        out.append(np.concatenate([[0], np.cumsum(~same)]) if same.any() else None)
    return out


def _shuffle_ties(
    seqs: Sequence[np.ndarray], runs: Sequence[np.ndarray | None], rng: np.random.Generator
) -> list[np.ndarray]:
    """Each sequence with the items of each same-timestamp run in a random order.

    >>> _shuffle_ties([np.array([1, 2, 3, 4])], [np.array([0, 1, 1, 2])], np.random.default_rng(1))[0].tolist()
    [1, 3, 2, 4]
    """
    return [s if r is None else s[np.lexsort((rng.random(len(s)), r))] for s, r in zip(seqs, runs)]
