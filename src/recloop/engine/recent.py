"""``RecentCounts``: item popularity that follows what is popular *now*.

Each positive event adds ``2 ** (n / half_life)`` to its item, ``n`` counting positive
events, so after ``half_life`` more events an old one weighs half as much; only the
ranking matters, so the weights are never divided back down, except to rebase them
before they overflow. Updating costs one add per event, not a pass over the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recloop.errors import ConfigError

_REBASE = 60.0  # rebase when weights pass 2 ** 60


class RecentCounts:
    """Decayed positive-event counts per item (``half_life`` 0: plain counts)."""

    def __init__(self, half_life: int) -> None:
        if isinstance(half_life, bool) or not isinstance(half_life, int) or half_life < 0:
            raise ConfigError(f"popularity_half_life must be an integer >= 0, got {half_life!r}")
        self.half_life = half_life
        self.values = np.zeros(0, np.float64)
        self.n = 0  # positive events counted so far
        self.base = 0  # the event number whose weight is 1

    def _ensure(self, size: int) -> None:
        if size > len(self.values):  # geometric growth: items arriving one by one stay linear
            grown = np.zeros(max(2 * len(self.values), size, 64))
            grown[: len(self.values)] = self.values
            self.values = grown

    def add(self, items: Sequence[int] | np.ndarray) -> None:
        """Count positive events on ``items``, in order."""
        m = len(items)
        if not m:
            return
        idx = np.asarray(items, np.int64)
        self._ensure(int(idx.max()) + 1)
        if not self.half_life:
            np.add.at(self.values, idx, 1.0)
            self.n += m
            return
        h = self.half_life
        if (self.n + m - self.base) / h > _REBASE:
            new_base = self.n + m
            self.values *= np.exp2((self.base - new_base) / h)
            self.base = new_base
        if m <= 8:  # a request's few events: plain adds cost less than np.add.at's setup
            values = self.values
            for j, i in enumerate(idx.tolist(), self.n + 1 - self.base):
                values[i] += 2.0 ** (j / h)
        else:
            np.add.at(self.values, idx, np.exp2((self.n + 1 + np.arange(m) - self.base) / h))
        self.n += m

    def reset(self, items: Sequence[int] | np.ndarray, n_items: int) -> None:
        """Start over from ``items`` (positive events in time order)."""
        self.values = np.zeros(0, np.float64)
        self.n = self.base = len(items)
        self._ensure(n_items)
        if len(items):
            w = (
                np.exp2((np.arange(1, len(items) + 1) - len(items)) / self.half_life)
                if self.half_life
                else None
            )
            self.values[:n_items] = np.bincount(
                np.asarray(items, np.int64), weights=w, minlength=n_items
            )[:n_items]

    def scores(self, n_items: int, counts: np.ndarray) -> np.ndarray:
        """(n_items,) float32 ranking scores: recent popularity, ties broken by all-time
        ``counts`` (one per item)."""
        v = np.zeros(n_items)
        m = min(
            n_items, len(self.values)
        )  # items seen only in non-positive events have no count yet
        v[:m] = self.values[:m]
        top = float(v.max()) if n_items else 0.0
        tie = np.log1p(counts)
        if not self.half_life or top <= 0:
            plain: np.ndarray = tie.astype(np.float32)
            return plain
        out: np.ndarray = (v / top + 1e-6 * tie).astype(np.float32)
        return out

    def state(self) -> dict[str, float | int]:
        return {"half_life": self.half_life, "n": self.n, "base": self.base}
