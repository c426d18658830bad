"""Most-popular baseline: every user gets the catalogue ranked by interaction count."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recloop.models.base import FitOptions, OnlineBatch, RecModel, TrainData
from recloop.models.registry import register


@register
class Popularity(RecModel):
    """Counts of positive interactions per item; online it keeps counting.

    ``half_life_events`` > 0 makes the counts decay (recent popularity), which is what
    a stream wants; 0 keeps all-time counts.
    """

    name = "popularity"

    def __init__(self, seed: int = 0, half_life_events: int = 0) -> None:
        super().__init__(seed)
        if half_life_events < 0:
            raise ValueError(f"half_life_events must be >= 0, got {half_life_events}")
        self.half_life_events = half_life_events
        self.counts_ = np.zeros(0, np.float64)

    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.counts_ = data.item_counts()
        return {"epochs_run": 0}

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        # tiny index-based tie-break keeps the order deterministic
        base = np.log1p(self.counts_).astype(np.float32)
        return np.broadcast_to(base, (len(user_idx), len(base))).copy()

    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        if len(self.counts_) < n_items:
            self.counts_ = np.concatenate([self.counts_, np.zeros(n_items - len(self.counts_))])

    def learn(self, batch: OnlineBatch) -> float:
        if self.half_life_events:
            self.counts_ *= 0.5 ** (len(batch.item_idx) / self.half_life_events)
        pos = batch.label > 0.5
        np.add.at(self.counts_, batch.item_idx[pos], batch.weight[pos] * 0 + 1.0)
        return 0.0

    def hyperparameters(self) -> dict[str, Any]:
        return {"half_life_events": self.half_life_events}

    def get_state(self) -> dict[str, Any]:
        return {"counts": self.counts_.copy(), "n_users": self.n_users_, "n_items": self.n_items_}

    def set_state(self, state: dict[str, Any]) -> None:
        self.counts_ = np.asarray(state["counts"], dtype=np.float64)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
