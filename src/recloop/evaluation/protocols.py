"""Offline protocols over a fitted recommender's public API.

``full``: rank the held-out item among every item the user has not interacted with in
train (and validation). ``sampled``: rank it among 100 items the user never interacted
with, drawn with a seed (He et al. 2017's protocol); ``full`` also reports what that
protocol gives in expectation over its draws of negatives (``sampled_hr@k_expected``). Works on anything with the
``Recommender`` surface (``score``, ``seen_items``), so it imports nothing above it.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from recloop.evaluation.metrics import expected_sampled_hit_rate, hit_rate, mrr, ndcg


class Scorer(Protocol):
    def score(self, user_id: object, item_ids: Any) -> np.ndarray: ...
    def score_all(self, user_id: object) -> tuple[list[str], np.ndarray]: ...


def evaluate(
    rec: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    protocol: Literal["full", "sampled"] = "full",
    k: int = 10,
    n_negatives: int = 100,
    seed: int = 0,
    extra_seen: pd.DataFrame | None = None,
) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of ``rec`` on ``test`` (one held-out row per user).

    ``full`` adds ``sampled_hr@k_expected``: the sampled protocol's HR@k (with
    ``n_negatives``) averaged over every draw of negatives, from the same full ranking.
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    seen_df = train if extra_seen is None else pd.concat([train, extra_seen])
    seen = {str(u): set(map(str, g)) for u, g in seen_df.groupby("user_id")["item_id"]}
    all_items = np.array(
        sorted(set(map(str, seen_df["item_id"])) | set(map(str, test["item_id"]))), dtype=object
    )
    rng = np.random.default_rng(seed)
    ranks, above, pools = [], [], []
    all_set = set(all_items)
    for uid, iid in zip(test["user_id"].astype(str), test["item_id"].astype(str)):
        user_seen = seen.get(uid, set())
        if protocol == "sampled":
            cand: list[str] = []
            # a user who has seen nearly every item is ranked among all that are left
            free = (
                len(all_set) - len(all_set & user_seen) - (iid in all_set and iid not in user_seen)
            )
            if free <= n_negatives:
                cand = [x for x in all_items if x not in user_seen and x != iid]
            while len(cand) < min(n_negatives, free):
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
                above.append(len(all_items))
                pools.append(len(all_items))
                continue
            t = s[pos[iid]]
            mask = [pos[x] for x in user_seen if x in pos]
            s[mask] = -np.inf
            s[pos[iid]] = -np.inf
            ranks.append(int((s >= t).sum()))
            # the sampled protocol's pool: known items the user never had; items the model
            # does not score count as below the held-out one
            s[[j for j, x in enumerate(ids) if x not in all_set]] = -np.inf
            above.append(int((s >= t).sum()))
            pools.append(len(all_items) - len(user_seen & all_set) - 1)
    r = np.asarray(ranks)
    out = {
        f"hr@{k}": hit_rate(r, k),
        f"ndcg@{k}": ndcg(r, k),
        "mrr": mrr(r),
        "n_users": int(len(r)),
    }
    if protocol == "full":
        out[f"sampled_hr@{k}_expected"] = expected_sampled_hit_rate(
            np.asarray(above), np.asarray(pools), n_negatives, k
        )
    return out
