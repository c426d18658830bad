"""Cold start on MovieLens-100K: items with no interactions, users with few, all in one run.

Cold items: a seeded 20% of the items lose every training interaction (their metadata
stays). Each user with interactions on them ranks all cold items; recall@10 and NDCG@10,
against random ranking (its exact expectation) and LightFM (WARP) with item features only
(genres and title words, no identity features). Cold users: a seeded 10% of the users
are left out of the fit and then arrive one event at a time; before each of their first
six events the top-10 is checked for that event's item (HR@10 after 0, 1..5 events),
against the engine's recent popularity. Warm: the leave-last-out split with and without
metadata (NDCG@10 full ranking).

    .venv/bin/python bench/coldstart.py [--seed 0] [--skip-warm] [--markdown FILE]
    .venv/bin/python bench/coldstart.py --embedding-only   # the titles' text embedding alone
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from common import emit, markdown

K = 10


def ranking_metrics(order: np.ndarray, relevant: set[int], k: int = K) -> tuple[float, float]:
    """recall@k (hits / relevant) and NDCG@k of one ranked list of candidate positions."""
    top = order[:k]
    gains = np.array([1.0 if int(j) in relevant else 0.0 for j in top])
    dcg = float((gains / np.log2(np.arange(2, len(top) + 2))).sum())
    idcg = float((1.0 / np.log2(np.arange(2, min(len(relevant), k) + 2))).sum())
    return gains.sum() / len(relevant), dcg / idcg


def random_expectation(n_candidates: int, n_relevant: int, k: int = K) -> tuple[float, float]:
    """Exact expected recall@k and NDCG@k of a uniformly random ranking."""
    p = n_relevant / n_candidates  # each position holds a relevant item with this probability
    dcg = sum(p / math.log2(r + 2) for r in range(min(k, n_candidates)))
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(n_relevant, k)))
    return min(k, n_candidates) / n_candidates, dcg / idcg


def title_words(title: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", str(title).lower()) if len(w) > 1]


def lightfm_scores(
    train: pd.DataFrame, items: pd.DataFrame, users: list[str], cold: list[str], seed: int
) -> np.ndarray:
    """(len(users), len(cold)) LightFM scores, item features only (genres + title words)."""
    from lightfm import LightFM
    from lightfm.data import Dataset as LFDataset

    all_items = sorted(set(items.index))
    feats = {
        i: [f"g:{g}" for g in str(items.at[i, "genres"]).split("|") if g]
        + [f"w:{w}" for w in title_words(items.at[i, "title"])]
        for i in all_items
    }
    ds = LFDataset(item_identity_features=False)
    ds.fit(
        users=sorted(set(train["user_id"]) | set(users)),
        items=all_items,
        item_features=sorted({f for fs in feats.values() for f in fs}),
    )
    inter, _ = ds.build_interactions(zip(train["user_id"], train["item_id"]))
    item_features = ds.build_item_features(feats.items())
    model = LightFM(loss="warp", no_components=32, learning_rate=0.05, random_state=seed)
    model.fit(inter, item_features=item_features, epochs=30, num_threads=1)
    umap, _, imap, _ = ds.mapping()
    cidx = np.array([imap[i] for i in cold], np.int32)
    out = np.empty((len(users), len(cold)), np.float32)
    for r, u in enumerate(users):
        out[r] = model.predict(umap[u], cidx, item_features=item_features, num_threads=1)
    return out


def cold_items(data: Any, seed: int, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from recloop import Recommender

    inter, items = data.interactions, data.items
    rng = np.random.default_rng(seed)
    catalogue = np.array(sorted(inter["item_id"].unique()))
    cold = sorted(rng.choice(catalogue, size=len(catalogue) // 5, replace=False).tolist())
    cold_set = set(cold)
    is_cold = inter["item_id"].isin(cold_set)
    train, test = inter[~is_cold], inter[is_cold]
    test = test[test["user_id"].isin(set(train["user_id"]))]
    truth = {u: set(g) for u, g in test.groupby("user_id")["item_id"]}
    users = sorted(truth)
    pos = {i: n for n, i in enumerate(cold)}
    rel = {u: {pos[i] for i in truth[u]} for u in users}
    rows = []

    def score_rows(name: str, scores: np.ndarray, fit_s: float) -> None:
        rec_, ndcg_ = zip(
            *(
                ranking_metrics(np.argsort(-scores[r], kind="stable"), rel[u])
                for r, u in enumerate(users)
            )
        )
        rows.append(
            {
                "model": name,
                "recall@10": round(float(np.mean(rec_)), 4),
                "NDCG@10": round(float(np.mean(ndcg_)), 4),
                "fit s": round(fit_s, 1),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)

    exp = [random_expectation(len(cold), len(rel[u])) for u in users]
    rows.append(
        {
            "model": "random (exact expectation)",
            "recall@10": round(float(np.mean([e[0] for e in exp])), 4),
            "NDCG@10": round(float(np.mean([e[1] for e in exp])), 4),
            "fit s": 0.0,
        }
    )
    t = time.perf_counter()
    lf = lightfm_scores(train, items, users, cold, seed)
    score_rows("LightFM WARP, item features (outside)", lf, time.perf_counter() - t)
    for name, spec in variants.items():
        t = time.perf_counter()
        meta = spec.get("items", items)
        rec = Recommender(model=spec["model"], seed=seed, **spec.get("hp", {})).fit(
            train, items=meta
        )
        fit_s = time.perf_counter() - t
        scores = np.stack([rec.score(u, cold) for u in users])
        score_rows(name, scores, fit_s)
    best = max((r for r in rows if r["model"].startswith("recloop")), key=lambda r: r["recall@10"])
    lfm = next(r for r in rows if r["model"].startswith("LightFM"))
    rnd = rows[0]
    return {
        "n_cold_items": len(cold),
        "n_users": len(users),
        "rows": rows,
        "best": best["model"],
        "best_vs_lightfm": round(best["recall@10"] / max(lfm["recall@10"], 1e-9), 3),
        "best_vs_random": round(best["recall@10"] / max(rnd["recall@10"], 1e-9), 3),
    }


def cold_users(data: Any, seed: int, models: list[str]) -> dict[str, Any]:
    """HR@10 of each new user's n-th event (n = 0..5) from the events before it."""
    from recloop import Recommender

    inter = data.interactions
    rng = np.random.default_rng(seed + 1)
    all_users = np.array(sorted(inter["user_id"].unique()))
    new = set(rng.choice(all_users, size=len(all_users) // 10, replace=False).tolist())
    is_new = inter["user_id"].isin(new)
    train = inter[~is_new]
    firsts = {
        u: g.sort_values("timestamp", kind="stable").head(6)
        for u, g in inter[is_new].groupby("user_id")
    }
    out: dict[str, Any] = {"n_users": len(firsts)}
    for name in models:
        rec = Recommender(model=name, seed=seed).fit(
            train, items=data.items, users=data.users[~data.users.index.isin(new)]
        )
        rec.set_users(data.users[data.users.index.isin(new)])
        hits = np.zeros(6)
        counts = np.zeros(6)
        for u, g in firsts.items():
            for n, (iid, ts) in enumerate(zip(g["item_id"], g["timestamp"])):
                hits[n] += iid in rec.recommend(u, k=K)
                counts[n] += 1
                rec.update({"user_id": u, "item_id": iid, "type": "click", "timestamp": int(ts)})
        rec.flush()
        label = "recent popularity (engine default)" if name == "popularity" else name
        out[label] = {f"HR@10 after {n}": round(float(hits[n] / counts[n]), 4) for n in range(6)}
        print(label, out[label], file=sys.stderr, flush=True)
    return out


def warm(data: Any, models: list[str], seed: int) -> list[dict[str, Any]]:
    from recloop import Recommender
    from recloop.data.splits import leave_one_out
    from recloop.evaluation.protocols import evaluate

    split = leave_one_out(data.interactions, valid=False)
    rows = []
    for name in models:
        for with_meta in (False, True):
            rec = Recommender(model=name, seed=seed).fit(
                split.train,
                items=data.items if with_meta else None,
                users=data.users if with_meta else None,
            )
            full = evaluate(rec, split.train, split.test, "full")
            rows.append(
                {
                    "model": name,
                    "metadata": with_meta,
                    "HR@10 full": round(full["hr@10"], 4),
                    "NDCG@10 full": round(full["ndcg@10"], 4),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm-models", default="hybrid")
    ap.add_argument("--user-models", default="popularity,ease,content")
    ap.add_argument("--skip-warm", action="store_true")
    ap.add_argument("--markdown", default=None)
    ap.add_argument(
        "--embedding-only",
        action="store_true",
        help="only time the text embedding of the titles (cached after the first run)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    from recloop.data.movielens import load_movielens_100k
    from recloop.data.text import TextEmbedder

    data = load_movielens_100k()
    text = TextEmbedder()
    t = time.perf_counter()
    text.embed(data.items["title"].astype(str).tolist())
    embed_s = time.perf_counter() - t
    if args.embedding_only:
        emit(
            "coldstart_embedding",
            {"text_encoder": text.name, "texts": len(data.items)},
            {"titles_embedded": text.computed, "title_embedding_s": round(embed_s, 3)},
        )
        return 0
    genres_only = data.items[["genres"]]
    variants = {
        f"recloop content (genres, release date, {text.name} titles)": {"model": "content"},
        "recloop content (genres only)": {"model": "content", "items": genres_only},
        f"recloop ease + content path (genres, date, {text.name} titles)": {"model": "ease"},
    }
    result: dict[str, Any] = {
        "text_encoder": text.name,
        "titles_embedded": text.computed,
        "title_embedding_s": round(embed_s, 2),
        "cold_items": cold_items(data, args.seed, variants),
        "cold_users": cold_users(data, args.seed, args.user_models.split(",")),
    }
    if not args.skip_warm:
        result["warm"] = warm(data, args.warm_models.split(","), args.seed)
    table = markdown(result["cold_items"]["rows"], ["model", "recall@10", "NDCG@10", "fit s"])
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    emit(
        "coldstart",
        {
            "seed": args.seed,
            "cold_item_share": 0.2,
            "new_user_share": 0.1,
            "warm_models": args.warm_models,
            "user_models": args.user_models,
            "text_encoder": text.name,
        },
        result,
    )
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
