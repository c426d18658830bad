"""Validation NDCG@10 for early stopping: full ranking over items not yet seen."""

from __future__ import annotations

from typing import Any

import numpy as np

from recloop.evaluation.metrics import ndcg, target_ranks


def validation_ndcg(model: Any, data: Any, k: int = 10, batch: int = 512) -> float:
    """NDCG@k of ``model.score`` on ``data.valid_*`` (a ``RecModel`` and its ``TrainData``;
    typed loosely because models sit above training in the layers)."""
    users, items = data.valid_user_idx, data.valid_item_idx
    if not len(users):
        return 0.0
    ranks = []
    for s in range(0, len(users), batch):
        u = users[s : s + batch]
        hist = [data.sequences[x] for x in u]
        scores = model.score(u, hist)
        ranks.append(target_ranks(scores, items[s : s + batch], hist))
    return ndcg(np.concatenate(ranks), k)
