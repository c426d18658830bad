"""Offline protocols over a fitted recommender's public API.

``full``: rank the held-out item among every item the user has not interacted with in
train (and validation). ``sampled``: rank it among 100 items the user never interacted
with, drawn with a seed (He et al. 2017's protocol). Works on anything with the
``Recommender`` surface (``score``, ``seen_items``), so it imports nothing above it.
"""
from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from recloop.evaluation.metrics import hit_rate, mrr, ndcg


class Scorer(Protocol):
    def score(self, user_id: object, item_ids: Any) -> np.ndarray: ...
    def score_all(self, user_id: object) -> tuple[list[str], np.ndarray]: ...


def evaluate(rec: Any, train: pd.DataFrame, test: pd.DataFrame, protocol: Literal["full", "sampled"] = "full",
             k: int = 10, n_negatives: int = 100, seed: int = 0, extra_seen: pd.DataFrame | None = None) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of ``rec`` on ``test`` (one held-out row per user)."""
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    seen_df = train if extra_seen is None else pd.concat([train, extra_seen])
    seen = {str(u): set(map(str, g)) for u, g in seen_df.groupby("user_id")["item_id"]}
    all_items = np.array(sorted(set(map(str, seen_df["item_id"])) | set(map(str, test["item_id"]))), dtype=object)
    rng = np.random.default_rng(seed)
    ranks = []
    for uid, iid in zip(test["user_id"].astype(str), test["item_id"].astype(str)):
        user_seen = seen.get(uid, set())
        if protocol == "sampled":
            cand = []
            while len(cand) < n_negatives:
                draw = all_items[rng.integers(0, len(all_items), n_negatives * 2)]
                cand.extend(x for x in draw if x not in user_seen and x != iid and x not in cand)
            items = [iid, *cand[:n_negatives]]
            s = rec.score(uid, items)
            ranks.append(int((s[1:] >= s[0]).sum()))
        else:
            ids, s = rec.score_all(uid)
            s = s.astype(np.float64, copy=True)
            pos = {x: j for j, x in enumerate(ids)}
            if iid not in pos:
                ranks.append(len(ids))
                continue
            t = s[pos[iid]]
            mask = [pos[x] for x in user_seen if x in pos]
            s[mask] = -np.inf
            s[pos[iid]] = -np.inf
            ranks.append(int((s >= t).sum()))
    r = np.asarray(ranks)
    return {f"hr@{k}": hit_rate(r, k), f"ndcg@{k}": ndcg(r, k), "mrr": mrr(r), "n_users": int(len(r))}
