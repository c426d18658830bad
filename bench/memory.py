"""Memory of the engine's online state: RSS per new user and per event, and a soak under max_users.

    .venv/bin/python bench/memory.py [--sizes 100000x5,100000x50,1000000x5,1000000x50]
        [--baseline REF] [--soak-max-users 200000] [--soak-minutes 1] [--plot FILE]

Each measurement runs in a fresh process (``--child``): it fits ``Recommender(model="mf",
seed=0)`` on a synthetic history (2,000 users × 10 clicks over 2,000 items), then sends
``N`` new users × ``E`` click events through ``Recommender.update`` in batches of
``--batch`` (5,000) events, each user's events together, and reads the process's RSS
before and after (after ``gc.collect()``, ``malloc_trim(0)`` and a final ``flush``, so the
figure is memory held, not the allocator's free pages). Events are generated outside the
timed ``update`` calls.

- ``--sizes NxE,...``: the growth runs; bytes per user and per event come from the pair of
  runs with the same ``N`` and two ``E`` (``rss = N * (per_user + E * per_event)``).
- ``--baseline REF``: also runs ``--baseline-size`` (default 200000x5) on the code of git
  ``REF`` (``git archive``), for the same-run comparison of RSS and update events/s.
- the soak: ``Recommender.limit_users(--soak-max-users)``, then new users (5 clicks each)
  until 3× that many have come and ``--soak-minutes`` have passed, RSS sampled every
  ``--sample-seconds`` (10); ``--plot FILE`` draws RSS against users seen.

Prints one JSON object and appends it to bench/results/memory.jsonl.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

N_ITEMS = 2_000


def rss_bytes() -> int:
    """Resident set size of this process, after a collection and returning free pages."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def fitted(seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    from recloop import Recommender

    rng = np.random.default_rng(seed)
    n_users, per = 2_000, 10
    df = pd.DataFrame(
        {
            "user_id": np.repeat([f"fit{u}" for u in range(n_users)], per),
            "item_id": rng.integers(0, N_ITEMS, n_users * per),
            "timestamp": 1_000_000 + np.arange(n_users * per),
        }
    )
    return Recommender(model="mf", seed=0).fit(df)


def batches(first_user: int, n_users: int, per_user: int, batch: int) -> Any:
    """Lists of click events: users ``first_user ..`` with ``per_user`` events each, in order."""
    import numpy as np

    rng = np.random.default_rng(first_user)
    users_per_batch = max(1, batch // per_user)
    t = 2_000_000_000.0
    for lo in range(first_user, first_user + n_users, users_per_batch):
        hi = min(lo + users_per_batch, first_user + n_users)
        items = rng.integers(0, N_ITEMS, (hi - lo) * per_user).tolist()
        ids = [f"user-{u}" for u in range(lo, hi) for _ in range(per_user)]
        yield (
            [
                {"user_id": u, "item_id": i, "timestamp": t + n}
                for n, (u, i) in enumerate(zip(ids, items))
            ],
            hi - lo,
        )


def child_growth(n_users: int, per_user: int, batch: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    rec = fitted()
    rec.flush()
    before = rss_bytes()
    seconds, events = 0.0, 0
    for chunk, _ in batches(0, n_users, per_user, batch):
        t0 = time.perf_counter()
        rec.update(chunk)
        seconds += time.perf_counter() - t0
        events += len(chunk)
    rec.flush()
    after = rss_bytes()
    status = rec.memory_status() if hasattr(rec, "memory_status") else None
    return {
        "users": n_users,
        "events_per_user": per_user,
        "rss_before": before,
        "rss_after": after,
        "rss_growth": after - before,
        "bytes_per_user": round((after - before) / n_users, 1),
        "update_events_per_s": round(events / seconds),
        "memory_status": status,
    }


def child_soak(max_users: int, minutes: float, sample_s: float, batch: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    rec = fitted()
    rec.limit_users(max_users)
    rec.flush()
    start = time.perf_counter()
    samples = [{"t": 0.0, "users_seen": 0, "rss": rss_bytes()}]
    marks: dict[str, int] = {}
    seen, next_sample = 0, sample_s
    stream = batches(0, 10**9, 5, batch)
    while True:
        chunk, n = next(stream)
        rec.update(chunk)
        seen += n
        for m in (1, 2, 3):
            if f"{m}x" not in marks and seen >= m * max_users:
                rec.flush()
                marks[f"{m}x"] = rss_bytes()
        elapsed = time.perf_counter() - start
        if elapsed >= next_sample:
            samples.append({"t": round(elapsed, 1), "users_seen": seen, "rss": rss_bytes()})
            next_sample += sample_s
        if seen >= 3 * max_users and elapsed >= minutes * 60:
            break
    rec.flush()
    return {
        "max_users": max_users,
        "users_seen": seen,
        "seconds": round(time.perf_counter() - start, 1),
        "rss_at": marks,
        "rss_3x_over_1x": round(marks["3x"] / marks["1x"], 4),
        "samples": samples,
        "memory_status": rec.memory_status(),
    }


def run_child(src: Path, args: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, __file__, "--child-src", str(src), "--out", out.name, *args]
        subprocess.run(cmd, check=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def baseline_src(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        if part.strip():
            n, e = part.lower().split("x")
            out.append((int(n), int(e)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000x5,100000x50,1000000x5,1000000x50")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--baseline", default=None, help="git ref of the code to compare with")
    ap.add_argument(
        "--baseline-src", default=None, help="or: a src folder of that code (the ref's label)"
    )
    ap.add_argument("--baseline-size", default="200000x5")
    ap.add_argument("--soak-max-users", type=int, default=200_000, help="0: no soak")
    ap.add_argument("--soak-minutes", type=float, default=1.0)
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--child", choices=("growth", "soak"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "growth":
        result = child_growth(args.users, args.events, args.batch)
        Path(args.out).write_text(json.dumps(result))
        return 0
    if args.child == "soak":
        result = child_soak(args.users, args.soak_minutes, args.sample_seconds, args.batch)
        Path(args.out).write_text(json.dumps(result))
        return 0

    from common import emit

    src = ROOT / "src"
    growth = []
    for n, e in sizes(args.sizes):
        r = run_child(src, ["--child", "growth", "--users", str(n), "--events", str(e)])
        print(
            f"growth {n}x{e}: {r['bytes_per_user']} B/user, {r['update_events_per_s']} ev/s",
            file=sys.stderr,
        )
        growth.append(r)
    fits = {}
    by_n: dict[int, dict[int, dict[str, Any]]] = {}
    for r in growth:
        by_n.setdefault(r["users"], {})[r["events_per_user"]] = r
    for n, runs in by_n.items():
        if len(runs) >= 2:
            (e1, a), (e2, b) = sorted(runs.items())[:2]
            per_event = (b["rss_growth"] - a["rss_growth"]) / (n * (e2 - e1))
            fits[str(n)] = {
                "bytes_per_event": round(per_event, 1),
                "bytes_per_user": round(a["rss_growth"] / n - e1 * per_event, 1),
            }
    compare = None
    if args.baseline:
        (n, e) = sizes(args.baseline_size)[0]
        with tempfile.TemporaryDirectory() as tmp:
            where = (
                Path(args.baseline_src)
                if args.baseline_src
                else baseline_src(args.baseline, Path(tmp))
            )
            base = run_child(where, ["--child", "growth", "--users", str(n), "--events", str(e)])
        cand = run_child(src, ["--child", "growth", "--users", str(n), "--events", str(e)])
        compare = {
            "size": args.baseline_size,
            "baseline_ref": args.baseline,
            "baseline": base,
            "candidate": cand,
            "rss_growth_ratio": round(cand["rss_growth"] / base["rss_growth"], 4),
            "events_per_s_ratio": round(
                cand["update_events_per_s"] / base["update_events_per_s"], 4
            ),
        }
        print(
            f"baseline {base['bytes_per_user']} B/user {base['update_events_per_s']} ev/s; "
            f"candidate {cand['bytes_per_user']} B/user {cand['update_events_per_s']} ev/s",
            file=sys.stderr,
        )
    soak = None
    if args.soak_max_users:
        soak = run_child(
            src,
            [
                "--child",
                "soak",
                "--users",
                str(args.soak_max_users),
                "--soak-minutes",
                str(args.soak_minutes),
                "--sample-seconds",
                str(args.sample_seconds),
            ],
        )
        print(f"soak: RSS at 3x / 1x = {soak['rss_3x_over_1x']}", file=sys.stderr)
        if args.plot:
            plot(soak, args.plot)
    targets = {}
    five = next((r for r in growth if r["events_per_user"] == 5), None)
    if compare is not None:
        c = compare["candidate"]
        targets["200k_x5_le_400B_user_plus_16B_event"] = c["rss_growth"] <= c["users"] * (
            400 + 16 * 5
        )
        targets["update_events_per_s_ge_baseline"] = compare["events_per_s_ratio"] >= 1.0
    elif five is not None:
        targets["x5_le_400B_user_plus_16B_event"] = five["rss_growth"] <= five["users"] * (
            400 + 16 * 5
        )
    if soak is not None:
        targets["soak_rss_3x_within_20pct_of_1x"] = abs(soak["rss_3x_over_1x"] - 1) <= 0.2
    config = {
        "model": "mf",
        "fit": "synthetic 2,000 users x 10 clicks, 2,000 items",
        "sizes": args.sizes,
        "batch": args.batch,
        "baseline": args.baseline,
        "baseline_size": args.baseline_size,
        "soak_max_users": args.soak_max_users,
        "soak_minutes": args.soak_minutes,
    }
    emit(
        "memory",
        config,
        {"growth": growth, "fits": fits, "compare": compare, "soak": soak, "targets": targets},
    )
    return 0


def plot(soak: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [s["users_seen"] for s in soak["samples"]]
    ys = [s["rss"] / 2**20 for s in soak["samples"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(xs, ys, marker="o", ms=3)
    ax.axvline(soak["max_users"], color="grey", ls=":", lw=1)
    ax.set_xlabel("new users seen")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"mf, max_users={soak['max_users']:,}: RSS sampled every 10 s")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
