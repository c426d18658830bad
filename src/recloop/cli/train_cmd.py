"""``recloop train`` and ``recloop evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from recloop.cli.common import load_data, parse_hyper, print_json, set_threads, table
from recloop.cli.plots import plot_fit, plot_over_k, require_matplotlib
from recloop.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="fit a model on a data set and save it",
        description="Fit a model and save it to --out. By default each user's last interaction "
        "(by time) is held out and saved with the run, for `recloop evaluate`.",
    )
    p.add_argument("--data", required=True, help="data set name (movielens-100k) or path")
    p.add_argument("--model", default="sasrec", help="registered model name (default: sasrec)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument(
        "--holdout",
        choices=["last", "none"],
        default="last",
        help="hold out each user's last interaction for evaluation (default) or train on everything",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the model's number of epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="a model hyperparameter (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="write the loss and validation metric per epoch as a PNG (needs matplotlib)",
    )
    p.set_defaults(func=run_train)

    e = sub.add_parser(
        "evaluate",
        help="score a trained run on its held-out interactions",
        description="Rank each user's held-out item: 'full' among every item the user has not "
        "interacted with, 'sampled' among 100 sampled items the user never interacted with.",
    )
    e.add_argument("run", nargs="+", help="run folder(s) written by `recloop train`")
    e.add_argument("--protocol", choices=["full", "sampled", "both"], default="both")
    e.add_argument("--k", type=int, default=10)
    e.add_argument("--seed", type=int, default=0, help="seed of the sampled negatives")
    e.add_argument("--json", action="store_true")
    e.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="write HR@K and NDCG@K over K, one line per run, as a PNG (needs matplotlib)",
    )
    e.add_argument(
        "--plot-ks",
        default="1,2,5,10,20,50,100",
        metavar="K,K,...",
        help="the K values of --plot (default 1,2,5,10,20,50,100)",
    )
    e.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from recloop import Recommender
    from recloop.data.splits import leave_one_out

    set_threads(args.threads)
    if args.plot:
        require_matplotlib()
    if args.epochs is not None and args.epochs < 1:
        raise InvalidInputError("--epochs", f"must be >= 1, got {args.epochs}")
    ds = load_data(args.data)
    rec = Recommender(
        model=args.model, seed=args.seed, threads=args.threads, **parse_hyper(args.set)
    )
    out = Path(args.out)
    if args.holdout == "last":
        split = leave_one_out(ds.interactions, valid=False)
        train, test = split.train, split.test
    else:
        train, test = ds.interactions, ds.interactions.iloc[:0]
    t0 = time.perf_counter()
    rec.fit(
        train,
        items=ds.items,
        users=ds.users,
        epochs=args.epochs,
        show_progress=not args.no_progress,
    )
    seconds = time.perf_counter() - t0
    rec.save(out)
    train.to_parquet(out / "train.parquet", index=False)
    test.to_parquet(out / "test.parquet", index=False)
    report = {
        "model": args.model,
        "data": args.data,
        "out": str(out),
        "fit_seconds": round(seconds, 2),
        "n_users": rec.n_users,
        "n_items": rec.n_items,
        "train_rows": len(train),
        "heldout_rows": len(test),
        **{k: v for k, v in rec.fit_report_.items() if k != "history"},
    }
    if args.json:
        print_json(report)
    else:
        print(f"trained {args.model} on {args.data} in {seconds:.1f}s -> {out}")
        for k in ("epochs_run", "best_epoch", "best_valid_ndcg@10"):
            if k in report:
                print(f"  {k}: {report[k]}")
    if args.plot:
        plot_fit(rec.fit_report_, args.model, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from recloop import Recommender
    from recloop.evaluation.protocols import evaluate

    if not 1 <= args.k <= 1000:
        raise InvalidInputError("--k", f"must be in 1..1000, got {args.k}")
    ks = _plot_ks(args.plot_ks) if args.plot else []
    if args.plot:
        require_matplotlib()
    protocols: list[Literal["full", "sampled"]] = (
        ["full", "sampled"] if args.protocol == "both" else [args.protocol]
    )
    outs: list[dict[str, Any]] = []
    curves: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    for name in args.run:
        run = Path(name)
        if not (run / "meta.json").exists():
            raise InvalidInputError(
                "run", f"{run} is not a run folder written by `recloop train` (no meta.json)"
            )
        if not (run / "test.parquet").exists():
            raise InvalidInputError(
                "run", f"{run} has no held-out interactions (trained with --holdout none)"
            )
        rec = Recommender.load(run)
        train = pd.read_parquet(run / "train.parquet")
        test = pd.read_parquet(run / "test.parquet")
        if len(test) == 0:
            raise InvalidInputError("run", f"{run} has no held-out interactions")
        results: dict[str, Any] = {
            p: evaluate(rec, train, test, p, k=args.k, seed=args.seed) for p in protocols
        }
        outs.append({"run": str(run), "model": rec.model_name, **results})
        if ks:
            label = f"{rec.model_name} ({run.name})" if len(args.run) > 1 else rec.model_name
            curves[label] = {
                p: [
                    (k, r[f"hr@{k}"], r[f"ndcg@{k}"])
                    for k in ks
                    for r in [evaluate(rec, train, test, p, k=k, seed=args.seed)]
                ]
                for p in protocols
            }
    if args.json:
        print_json(outs[0] if len(outs) == 1 else outs)
    else:
        rows = [
            {"run": o["run"], "model": o["model"], "protocol": p, **o[p]}
            for o in outs
            for p in protocols
        ]
        cols = ["protocol", f"hr@{args.k}", f"ndcg@{args.k}", "mrr", "n_users"]
        print(table(rows, (["run", "model"] if len(outs) > 1 else []) + cols))
    if args.plot:
        plot_over_k(curves, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    sys.stdout.flush()
    return 0


def _plot_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise InvalidInputError(
            "--plot-ks", f"must be integers separated by commas, got {text!r}"
        ) from None
    if not ks or ks[0] < 1 or ks[-1] > 1000:
        raise InvalidInputError("--plot-ks", f"must be integers in 1..1000, got {text!r}")
    return ks
