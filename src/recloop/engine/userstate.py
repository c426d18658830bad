"""Per-user state: each user's positive sequence (with timestamps) and seen items.

The engine reads a user's state to score them and appends to it as events arrive; the
online learner keeps a reference to a user's sequence and a length (``Prefixes``), which
stays valid because a sequence only grows at its end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0, np.float64)


class UserState:
    """Sequences, timestamps and seen items of users ``0 .. n_users-1``."""

    def __init__(self) -> None:
        self._seqs: list[list[int]] = []
        self._times: list[list[float]] = []
        self._seen: list[set[int]] = []

    def __len__(self) -> int:
        return len(self._seqs)

    def reset(
        self,
        sequences: Sequence[np.ndarray],
        times: Sequence[np.ndarray],
        seen: Sequence[np.ndarray],
    ) -> None:
        """Replace every user's state (index ``u`` of each list is user ``u``)."""
        self._seqs = [np.asarray(s).tolist() for s in sequences]
        self._times = [np.asarray(t, np.float64).tolist() for t in times]
        self._seen = [set(np.asarray(s).tolist()) for s in seen]

    def ensure(self, n_users: int) -> None:
        """Give users up to ``n_users - 1`` an empty state."""
        while len(self._seqs) < n_users:
            self._seqs.append([])
            self._times.append([])
            self._seen.append(set())

    # ------------------------------------------------------------------ reading
    def history(self, u: int) -> np.ndarray:
        """(n,) int64 positive items of user ``u`` in time order (empty for ``u < 0``)."""
        return np.asarray(self._seqs[u], np.int64) if u >= 0 else _EMPTY_I

    def times(self, u: int) -> np.ndarray:
        """(n,) float64 timestamps of ``history(u)``."""
        return np.asarray(self._times[u], np.float64) if u >= 0 else _EMPTY_F

    def seen(self, u: int) -> np.ndarray:
        """(m,) int64 every item user ``u`` interacted with, each once."""
        if u < 0:
            return _EMPTY_I
        s = self._seen[u]
        return np.fromiter(s, np.int64, len(s))

    def length(self, u: int) -> int:
        return len(self._seqs[u]) if u >= 0 else 0

    # ------------------------------------------------------------------ writing
    def append(
        self,
        users: Sequence[int],
        items: Sequence[int],
        positive: Sequence[bool],
        stamps: Sequence[float],
        refs: bool,
    ) -> tuple[list[Sequence[int]], list[int]]:
        """Apply events in order: each item joins its user's seen items, and a positive one
        the user's sequence. With ``refs``, also returns per event a reference to its user's
        sequence and the sequence's length before the event (``Prefixes`` reads the history
        through them later)."""
        seqs, seen, times = self._seqs, self._seen, self._times
        hist: list[Sequence[int]] = []
        ends: list[int] = []
        for u, i, p, t in zip(users, items, positive, stamps):
            s = seqs[u]
            if refs:
                hist.append(s)
                ends.append(len(s))
            seen[u].add(i)
            if p:
                s.append(i)
                times[u].append(t)
        return hist, ends

    # ------------------------------------------------------------------ persistence
    def to_flat(self) -> dict[str, np.ndarray]:
        """Flat arrays for a snapshot: ``seq_len``, ``seq_flat``, ``seq_time``, ``seen_len``,
        ``seen_flat`` (each user's seen items sorted)."""
        return {
            "seq_len": np.array([len(s) for s in self._seqs], np.int64),
            "seq_flat": np.fromiter((x for s in self._seqs for x in s), np.int64),
            "seq_time": np.fromiter((x for s in self._times for x in s), np.float64),
            "seen_len": np.array([len(s) for s in self._seen], np.int64),
            "seen_flat": np.fromiter((x for s in self._seen for x in sorted(s)), np.int64),
        }

    @classmethod
    def from_flat(cls, flat: dict[str, np.ndarray]) -> UserState:
        """The state ``to_flat`` wrote."""

        def split(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
            return list(np.split(values, np.cumsum(lengths)[:-1])) if len(lengths) else []

        out = cls()
        out.reset(
            split(flat["seq_flat"], flat["seq_len"]),
            split(flat["seq_time"], flat["seq_len"]),
            split(flat["seen_flat"], flat["seen_len"]),
        )
        return out


def known_history(
    hist: list[np.ndarray], times: list[np.ndarray] | None, n_items: int
) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Histories without the items a model has no row for yet (tables grow lazily, in the
    learner's step), and the keyword arguments that pass their timestamps, cut alike, to
    ``score`` / ``user_states`` (none when ``times`` is None)."""
    keep = [None if not len(h) or h.max() < n_items else h < n_items for h in hist]
    cut = [h if k is None else h[k] for h, k in zip(hist, keep)]
    if times is None:
        return cut, {}
    return cut, {"times": [t if k is None else t[k] for t, k in zip(times, keep)]}
