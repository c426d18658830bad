"""Negative samplers over the item catalogue."""

from __future__ import annotations

from typing import Literal

import numpy as np


class NegativeSampler:
    """Draw items a user is assumed not to want.

    ``uniform`` draws every item alike; ``popularity`` draws in proportion to
    ``count ** alpha`` (word2vec's 0.75 by default), which makes harder negatives.
    Collisions with the positive are rare on real catalogues and left in: resampling
    them costs more than the bias they add (Rendle's BPR does the same).
    """

    def __init__(
        self,
        n_items: int,
        kind: Literal["uniform", "popularity"] = "uniform",
        counts: np.ndarray | None = None,
        alpha: float = 0.75,
    ) -> None:
        if n_items <= 0:
            raise ValueError(f"n_items must be positive, got {n_items}")
        self.n_items = n_items
        self.kind = kind
        self.cdf: np.ndarray | None = None
        if kind == "popularity":
            if counts is None:
                raise ValueError("popularity sampling needs item counts")
            p = np.asarray(counts, dtype=np.float64) ** alpha + 1e-3
            self.cdf = np.cumsum(p / p.sum())
        elif kind != "uniform":
            raise ValueError(f"kind must be 'uniform' or 'popularity', got {kind!r}")

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        if self.cdf is None:
            return rng.integers(0, self.n_items, size=size, dtype=np.int64)
        u = rng.random(size)
        return np.minimum(np.searchsorted(self.cdf, u), self.n_items - 1).astype(np.int64)
