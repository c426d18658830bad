"""Offline comparison on MovieLens-100K's leave-last-out-by-time split: every recloop model,
popularity, and implicit's ALS (the outside baseline), HR@10 and NDCG@10 under the full and
sampled protocols, fit time, and recommend latency. "HR@10 sampled" is one draw of 100
negatives (seed 0); "HR@10 sampled (expected)" is the mean over all draws, computed exactly from
the full ranking (one draw scatters about +-0.006 around it on this split).

    .venv/bin/python bench/offline.py [--models mf,sasrec] [--markdown docs/offline.md]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from baselines import ImplicitALS
from common import emit, markdown


def recommend_ms(rec, users: list[str], n: int = 300) -> float:
    times = []
    for u in users[:n]:
        t = time.perf_counter()
        rec.recommend(u, k=10)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="popularity,mf,neumf,lightgcn,mlp,ease,sasrec,hybrid")
    ap.add_argument("--no-als", action="store_true")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from recloop import Recommender
    from recloop.data.movielens import load_movielens_100k
    from recloop.data.splits import leave_one_out
    from recloop.evaluation.protocols import evaluate
    from recloop.models import available

    split = leave_one_out(load_movielens_100k().interactions, valid=False)
    users = sorted(split.test["user_id"].unique())
    rows = []
    makers = [
        (m, lambda m=m: Recommender(model=m, seed=0))
        for m in args.models.split(",")
        if m in available()
    ]
    if not args.no_als:
        makers.append(("implicit ALS (outside)", lambda: ImplicitALS()))
    for name, make in makers:
        t = time.perf_counter()
        rec = make().fit(split.train)
        fit_s = time.perf_counter() - t
        full = evaluate(rec, split.train, split.test, "full")
        sampled = evaluate(rec, split.train, split.test, "sampled", seed=0)
        row = {
            "model": name,
            "HR@10 full": full["hr@10"],
            "NDCG@10 full": full["ndcg@10"],
            "HR@10 sampled": sampled["hr@10"],
            "HR@10 sampled (expected)": round(full["sampled_hr@10_expected"], 4),
            "NDCG@10 sampled": sampled["ndcg@10"],
            "fit s": round(fit_s, 1),
            "recommend ms p50": round(recommend_ms(rec, users), 3),
        }
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    als = next((r for r in rows if r["model"].startswith("implicit")), None)
    if als:
        for r in rows:
            r["NDCG full / ALS"] = round(r["NDCG@10 full"] / max(als["NDCG@10 full"], 1e-9), 2)
    table = markdown(rows, list(rows[0]))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    emit(
        "offline",
        {"models": args.models, "split": "leave-last-out by time", "als": not args.no_als},
        {"rows": rows},
    )
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
