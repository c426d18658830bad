"""``recloop replay``: test-then-train over a time-ordered log."""

from __future__ import annotations

import argparse
from functools import partial

from recloop.cli.common import load_data, print_json, set_threads, table
from recloop.cli.plots import require_matplotlib
from recloop.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="test-then-train replay of a time-ordered event log",
        description="Fit on the first part of the log, then for every later event: recommend, "
        "record hit/NDCG@10, then learn (mode 'online'), never learn ('static') or "
        "refit every N events ('retrain:N').",
    )
    p.add_argument(
        "--data", default="movielens-100k", help="data set name or path (default movielens-100k)"
    )
    p.add_argument("--model", default="sasrec", help="model name, or several separated by commas")
    p.add_argument(
        "--modes", default="static,online", help="comma-separated: static, online, retrain:N"
    )
    p.add_argument(
        "--history", type=float, default=0.8, help="share of events used as history (default 0.8)"
    )
    p.add_argument("--max-events", type=int, default=None, help="replay at most this many events")
    p.add_argument("--window", type=int, default=1000, help="events per reported window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--plot", default=None, metavar="PNG", help="write the per-window hit rates as a PNG"
    )
    p.add_argument("--json", action="store_true", help="print every result as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from recloop import Recommender
    from recloop.evaluation.replay import parse_mode, plot_windows, replay
    from recloop.models import available

    set_threads(args.threads)
    if args.plot:
        require_matplotlib()
    models = [m for m in args.model.split(",") if m]
    for m in models:
        if m not in available():
            raise InvalidInputError(
                "--model", f"unknown model {m!r}; available: {', '.join(available())}"
            )
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        try:
            parse_mode(m)
        except ValueError as exc:
            raise InvalidInputError("--modes", str(exc)) from None
    if not 0 < args.history < 1:
        raise InvalidInputError("--history", f"must be in (0, 1), got {args.history}")
    if args.max_events is not None and args.max_events < 1:
        raise InvalidInputError("--max-events", f"must be >= 1, got {args.max_events}")
    ds = load_data(args.data)
    results = []
    for model in models:
        for mode in modes:
            results.append(
                replay(
                    partial(Recommender, model=model, seed=args.seed, threads=args.threads),
                    ds.interactions,
                    mode=mode,
                    history_fraction=args.history,
                    window=args.window,
                    max_events=args.max_events,
                    model_name=model,
                    show_progress=not args.no_progress,
                )
            )
    if args.plot:
        plot_windows(results, args.plot)
    if args.json:
        print_json(
            {
                "data": args.data,
                "history_fraction": args.history,
                "results": [r.as_dict() for r in results],
            }
        )
    else:
        rows = [
            {
                "model": r.model,
                "mode": r.mode,
                "hr@10": r.hr,
                "ndcg@10": r.ndcg,
                "events/s": round(r.events_per_second),
                "update p99 ms": round(r.update_ms_p99, 3),
                "new users": round(r.share_new_users, 3),
            }
            for r in results
        ]
        print(
            table(
                rows,
                ["model", "mode", "hr@10", "ndcg@10", "events/s", "update p99 ms", "new users"],
            )
        )
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0
