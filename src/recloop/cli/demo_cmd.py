"""``recloop demo``: the main job, end to end on MovieLens-100K."""

from __future__ import annotations

import argparse
import time

from recloop.cli.common import print_json, set_threads, table
from recloop.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="fetch MovieLens-100K, fit and compare models, show recommendations and online learning",
        description="Fetch MovieLens-100K (offline mirror), hold out each user's last interaction by "
        "time, fit the models, print HR@10 and NDCG@10 (full ranking over unseen items), "
        "the top-10 with titles for three users, and one user's list changing as they click.",
    )
    p.add_argument("--models", default="popularity,mf,sasrec", help="comma-separated model names")
    p.add_argument("--users", default="1,2,3", help="users whose top-10 to show")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON at the end")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--serve",
        action="store_true",
        help="instead: fit the dashboard's model on all of MovieLens-100K unless --run holds "
        "one, serve it and print the dashboard's URL",
    )
    p.add_argument(
        "--run",
        default="runs/dashboard",
        metavar="DIR",
        help="with --serve: the model folder to serve, fitted there first if it has none "
        "(default runs/dashboard)",
    )
    p.add_argument(
        "--serve-model", default="mf", help="with --serve: the model to fit (default mf)"
    )
    p.add_argument("--host", default=None, help="with --serve: interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="with --serve: port (default 8000)")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.serve:
        return serve_dashboard(args)
    from recloop import Recommender
    from recloop.data.movielens import load_movielens_100k
    from recloop.data.splits import leave_one_out
    from recloop.evaluation.protocols import evaluate
    from recloop.models import available

    set_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in available():
            raise InvalidInputError(
                "--models", f"unknown model {m!r}; available: {', '.join(available())}"
            )
    ds = load_movielens_100k()
    inter = ds.interactions
    print(
        f"MovieLens-100K: {len(inter):,} ratings, {inter.user_id.nunique():,} users, {inter.item_id.nunique():,} items"
    )
    split = leave_one_out(inter, valid=False)
    print(
        f"split: leave-last-out by time -> {len(split.train):,} train rows, {len(split.test):,} held-out (one per user)\n"
    )
    rows, fitted = [], {}
    for name in models:
        t0 = time.perf_counter()
        rec = Recommender(model=name, seed=args.seed, threads=args.threads).fit(
            split.train, items=ds.items, users=ds.users, show_progress=not args.no_progress
        )
        fit_s = time.perf_counter() - t0
        full = evaluate(rec, split.train, split.test, "full")
        sampled = evaluate(rec, split.train, split.test, "sampled", seed=args.seed)
        rows.append(
            {
                "model": name,
                "HR@10 full": full["hr@10"],
                "NDCG@10 full": full["ndcg@10"],
                "HR@10 sampled": sampled["hr@10"],
                "fit s": round(fit_s, 1),
            }
        )
        fitted[name] = rec
        print(f"  fitted {name} in {fit_s:.1f}s: NDCG@10 {full['ndcg@10']:.4f}", flush=True)
    print("\n" + table(rows, ["model", "HR@10 full", "NDCG@10 full", "HR@10 sampled", "fit s"]))
    by = {r["model"]: r for r in rows}
    if "popularity" in by and "mf" in by and by["popularity"]["NDCG@10 full"] > 0:
        print(
            f"\nBPR-MF's full-ranking NDCG@10 is {by['mf']['NDCG@10 full'] / by['popularity']['NDCG@10 full']:.2f}x popularity's"
        )
    best = max(rows, key=lambda r: r["NDCG@10 full"])["model"]
    rec = fitted[best]
    for uid in [u for u in args.users.split(",") if u]:
        print(
            f"\ntop-10 for user {uid} ({best}); last rated: {ds.title(rec.history(uid)[-1]) if rec.history(uid) else '-'}"
        )
        for rank, iid in enumerate(rec.recommend(uid, k=10), 1):
            print(f"  {rank:2d}. {ds.title(iid)}")
    # the real-time loop: the user reacts, the next list already reflects it
    uid = [u for u in args.users.split(",") if u][0]
    before = rec.recommend(uid, k=5)
    clicked = before[0]
    rec.update({"user_id": uid, "item_id": clicked, "type": "click"})
    after = rec.recommend(uid, k=5)
    print(f"\nonline: user {uid} clicks {ds.title(clicked)!r}; next top-5 (already updated):")
    for iid in after:
        print(f"  - {ds.title(iid)}")
    if args.json:
        print_json({"metrics": rows, "best": best})
    return 0


def serve_dashboard(args: argparse.Namespace) -> int:
    """Fit the dashboard's model on MovieLens-100K unless ``--run`` holds one, then serve it."""
    from pathlib import Path

    from recloop import Recommender
    from recloop.cli.serve_cmd import serve
    from recloop.config import load_settings
    from recloop.data.movielens import load_movielens_100k
    from recloop.models import available
    from recloop.serving import create_app

    set_threads(args.threads)
    settings = load_settings(model_path=args.run, host=args.host, port=args.port)
    run = Path(args.run)
    if (run / "meta.json").exists():
        print(f"serving the model in {run} (delete the folder to fit a new one)", flush=True)
        rec = Recommender.load(run)
    else:
        if args.serve_model not in available():
            raise InvalidInputError(
                "--serve-model",
                f"unknown model {args.serve_model!r}; available: {', '.join(available())}",
            )
        ds = load_movielens_100k()
        print(
            f"fitting {args.serve_model} on all of MovieLens-100K "
            f"({len(ds.interactions):,} ratings) for the dashboard...",
            flush=True,
        )
        t0 = time.perf_counter()
        rec = Recommender(model=args.serve_model, seed=args.seed, threads=args.threads).fit(
            ds.interactions, items=ds.items, show_progress=not args.no_progress
        )
        rec.save(run)
        print(f"fitted in {time.perf_counter() - t0:.0f}s, saved to {run}", flush=True)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(
        f"\ndashboard: http://{host}:{settings.port}/ui   (a user: /ui?user_id=1; API docs: /docs;"
        " Ctrl-C stops)\n",
        flush=True,
    )
    serve(create_app(settings, rec), settings)
    return 0
