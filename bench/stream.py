"""Streaming (test-then-train) replay on MovieLens-100K: every recloop model x {static, online},
beside outside baselines (ISGD, River's BiasedMF, online item co-occurrence) on the same replay.

    .venv/bin/python bench/stream.py [--models mf,sasrec] [--max-events N] [--seed S] [--plot docs/stream.png]

Prints one JSON object; writes the markdown table with --markdown PATH.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from baselines import ISGD, Cooccurrence, RiverBiasedMF
from common import emit, markdown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="popularity,mf,neumf,lightgcn,mlp,ease,sasrec,hybrid")
    ap.add_argument("--modes", default="static,online")
    ap.add_argument("--baselines", default="cooccurrence,isgd,river")
    ap.add_argument("--max-events", type=int, default=None)
    ap.add_argument("--history", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0, help="every recloop model's seed")
    ap.add_argument("--plot", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument(
        "--metadata",
        choices=("off", "on", "both"),
        default="off",
        help="give the models MovieLens' items and users (both: each model without, then with)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    from recloop import Recommender
    from recloop.data.movielens import load_movielens_100k
    from recloop.evaluation.replay import plot_windows, replay
    from recloop.models import available

    data = load_movielens_100k()
    events = data.interactions

    def make(model: str, metadata: bool) -> Recommender:
        rec = Recommender(model=model, seed=args.seed)
        if metadata:  # kept by the fit that replay runs
            rec.set_items(data.items)
            rec.set_users(data.users)
        return rec

    variants = {"off": [False], "on": [True], "both": [False, True]}[args.metadata]
    results = []
    for model in [m for m in args.models.split(",") if m in available()]:
        for metadata in variants:
            label = f"{model}+metadata" if metadata else model
            for mode in args.modes.split(","):
                t = time.perf_counter()
                r = replay(
                    lambda model=model, metadata=metadata: make(model, metadata),
                    events,
                    mode=mode,
                    history_fraction=args.history,
                    max_events=args.max_events,
                    model_name=label,
                )
                print(
                    f"{label} {mode}: hr {r.hr:.4f} ndcg {r.ndcg:.4f} "
                    f"({time.perf_counter() - t:.0f}s)",
                    file=sys.stderr,
                )
                results.append(r)
    makers = {
        "cooccurrence": lambda: Cooccurrence(),
        "isgd": lambda: ISGD(),
        "river": lambda: RiverBiasedMF(),
    }
    for name in [b for b in args.baselines.split(",") if b]:
        t = time.perf_counter()
        r = replay(
            makers[name],
            events,
            mode="online",
            history_fraction=args.history,
            max_events=args.max_events,
            model_name=f"{name} (outside)",
        )
        print(
            f"{name}: hr {r.hr:.4f} ndcg {r.ndcg:.4f} ({time.perf_counter() - t:.0f}s)",
            file=sys.stderr,
        )
        results.append(r)
    rows = [
        {
            "model": r.model,
            "mode": r.mode,
            "HR@10": r.hr,
            "NDCG@10": r.ndcg,
            "events/s": round(r.events_per_second),
            "update p50 ms": round(r.update_ms_p50, 3),
            "update p99 ms": round(r.update_ms_p99, 3),
            "fit s": round(r.fit_seconds, 1),
        }
        for r in results
    ]
    best_base = max(
        (r for r in results if "(outside)" in r.model), key=lambda r: r.hr, default=None
    )
    best_ours = max(
        (r for r in results if "(outside)" not in r.model), key=lambda r: r.hr, default=None
    )
    summary = {}
    if best_base and best_ours:
        summary = {
            "best_recloop": f"{best_ours.model} {best_ours.mode}",
            "best_outside": best_base.model,
            "hr_ratio": round(best_ours.hr / max(best_base.hr, 1e-9), 3),
            "ndcg_ratio": round(best_ours.ndcg / max(best_base.ndcg, 1e-9), 3),
        }
    if r0 := results[:1]:
        summary["share_new_users"] = round(r0[0].share_new_users, 3)
        summary["share_new_items"] = round(r0[0].share_new_items, 3)
    table = markdown(rows, list(rows[0])) if rows else ""
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.plot:
        plot_windows(results, args.plot)
    emit(
        "stream",
        {
            "models": args.models,
            "modes": args.modes,
            "baselines": args.baselines,
            "max_events": args.max_events,
            "history": args.history,
            "seed": args.seed,
            **({"metadata": args.metadata} if args.metadata != "off" else {}),
        },
        {
            "summary": summary,
            "rows": rows,
            "windows": {f"{r.model} {r.mode}": r.windows for r in results},
        },
    )
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
