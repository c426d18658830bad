"""Durability benchmark: ``POST /events`` with the event log off, on (``process``) and on
(``fsync``), side by side in one run, and recovery speed.

    .venv/bin/python bench/durability.py [--duration 4] [--rounds 2]
                                         [--recovery-events 200000] [--markdown FILE]
    # the issue's 1M-event restart:
    .venv/bin/python bench/durability.py --recovery-events 1000000

One run:

1. fits ``Recommender(model="mf", seed=0)`` on a synthetic set (2,000 users, 500 items) and
   saves it;
2. for each round and each mode (off, process, fsync, interleaved), starts a fresh
   ``recloop serve --model DIR [--data-dir DATA --durability MODE]`` and loads it over
   127.0.0.1 with ``bench/serving.py``'s keep-alive client: batched events (1,000 per
   request, concurrency 2) and single events (concurrency 8), with an automatic snapshot
   every ``--snapshot-every`` events meanwhile; every answer is checked
   (a non-200 counts as an error); the median round is reported;
3. recovery: writes a log of ``--recovery-events`` events (20% from users the model
   has never seen) through ``recloop.storage``, then (a) replays it in this process
   (``recloop.engine.durable.recover``: events/s) and (b) times a ``recloop serve
   --data-dir`` start with that log behind its model until ``/health`` answers ``ok``.

Prints one JSON object (config, machine, versions, results) and appends it to
bench/results/durability.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import emit, markdown  # noqa: E402
from serving import HOST, free_port, load, post  # noqa: E402

MODES = ("off", "process", "fsync")


def fit_model(folder: Path, seed: int = 0) -> tuple[list[str], list[str]]:
    import pandas as pd

    from recloop import Recommender

    rng = np.random.default_rng(seed)
    n = 40_000
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 2000, n),
            "item_id": rng.zipf(1.3, n) % 500,
            "timestamp": np.arange(n),
        }
    )
    rec = Recommender(model="mf", seed=seed).fit(df, epochs=3)
    rec.save(folder)
    return rec.users_.to_list(), rec.items_.to_list()


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
            return dict(json.loads(r.read()))
    except OSError:
        return None


def start(
    model: Path, port: int, mode: str, data: Path | None, snapshot_every: int = 100_000
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "recloop.cli", "serve", "--model", str(model)]
    args += ["--port", str(port), "--log-level", "warning"]
    if mode != "off" and data is not None:
        args += ["--data-dir", str(data), "--durability", mode]
    env = {**os.environ, "RECLOOP_SNAPSHOT_EVERY_EVENTS": str(snapshot_every)}
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env
    )


def wait_ok(proc: subprocess.Popen[bytes], port: int, timeout: float = 900) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            raise RuntimeError(f"server exited: {err}")
        h = health(port)
        if h is not None and h.get("status") == "ok":
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise RuntimeError("server did not become healthy")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bodies(users: list[str], items: list[str], size: int, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        events = [
            {
                "user_id": rng.choice(users)
                if rng.random() < 0.8
                else f"new{rng.randrange(10**6)}",
                "item_id": rng.choice(items),
                "type": "click",
            }
            for _ in range(size)
        ]
        out.append(post("/events", events[0] if size == 1 else {"events": events}))
    return out


def measure_mode(
    model: Path, mode: str, users: list[str], items: list[str], args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"recloop-dur-{mode}-"))
    port = free_port()
    proc = start(model, port, mode, data, args.snapshot_every)
    try:
        wait_ok(proc, port)
        batch_pool = bodies(users, items, 1000, 40, seed)
        single_pool = bodies(users, items, 1, 4000, seed + 1)

        def cycle(pool: list[bytes]) -> Any:
            it = iter(range(10**9))
            return lambda rng: pool[next(it) % len(pool)]

        asyncio.run(load(port, cycle(single_pool), 8, 0.5, 400, seed))  # warm-up
        batched = asyncio.run(load(port, cycle(batch_pool), 2, args.duration, 10**6, seed))
        single = asyncio.run(load(port, cycle(single_pool), 8, args.duration, 10**6, seed))
        h = health(port) or {}
        return {
            "mode": mode,
            "batch_events_per_s": round(batched["rps"] * 1000),
            "batch_p99_ms": batched["p99_ms"],
            "single_c8_rps": single["rps"],
            "single_c8_p50_ms": single["p50_ms"],
            "single_c8_p99_ms": single["p99_ms"],
            "errors": batched["errors"] + single["errors"],
            "log_offset": h.get("log_offset"),
            "snapshots": len(list((data / "snapshots").glob("snap-*")))
            if (data / "snapshots").exists()
            else 0,
        }
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def write_log(url: str, n: int, users: list[str], items: list[str], seed: int) -> float:
    from recloop.events import EventColumns
    from recloop.storage import open_log

    rng = np.random.default_rng(seed)
    log = open_log(url)
    known = np.asarray(users, dtype=object)
    t0 = time.perf_counter()
    for s in range(0, n, 20_000):
        k = min(20_000, n - s)
        new = rng.random(k) < 0.2
        u = np.where(
            new,
            [f"new{x}" for x in rng.integers(0, n // 10 + 1, k)],
            known[rng.integers(0, len(known), k)],
        )
        i = [items[x] for x in rng.integers(0, len(items), k)]
        ts = (1.8e9 + np.arange(s, s + k) / 100).tolist()
        log.append(EventColumns(u.tolist(), i, ["click"] * k, [1.0] * k, ts))
    seconds = time.perf_counter() - t0
    log.close()
    return seconds


def measure_recovery(
    model: Path, n: int, users: list[str], items: list[str], seed: int
) -> dict[str, Any]:
    from recloop.engine.durable import recover
    from recloop.storage import open_log

    data = Path(tempfile.mkdtemp(prefix="recloop-dur-recovery-"))
    try:
        url = f"sqlite://{data}/events.db"
        write_s = write_log(url, n, users, items, seed)
        log = open_log(url)
        t0 = time.perf_counter()
        rec = recover(log, None, model)
        replay_s = time.perf_counter() - t0
        assert rec.log_offset_ == n
        log.close()
        del rec
        port = free_port()
        proc = start(model, port, "process", data)
        try:
            serving_s = wait_ok(proc, port)
        finally:
            stop(proc)
        return {
            "events": n,
            "log_write_events_per_s": round(n / write_s),
            "log_bytes": sum(p.stat().st_size for p in data.glob("events.db*")),
            "replay_seconds": round(replay_s, 2),
            "replay_events_per_s": round(n / replay_s),
            "restart_to_ok_seconds": round(serving_s, 2),
        }
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per load scenario")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of off/process/fsync")
    ap.add_argument("--recovery-events", type=int, default=200_000)
    ap.add_argument(
        "--snapshot-every",
        type=int,
        default=20_000,
        help="the servers' automatic snapshot interval in events (snapshots run during the load)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="recloop-dur-"))
    try:
        model = work / "mf"
        users, items = fit_model(model, args.seed)
        rounds: list[list[dict[str, Any]]] = []
        for r in range(args.rounds):
            rounds.append(
                [measure_mode(model, m, users, items, args, args.seed + r) for m in MODES]
            )
        rows = []
        for k in range(len(MODES)):
            runs = sorted((rd[k] for rd in rounds), key=lambda x: x["batch_events_per_s"])
            rows.append(runs[(len(runs) - 1) // 2])  # the median round (the slower of two)
        off = rows[0]["batch_events_per_s"]
        for row in rows:
            row["batch_vs_off"] = round(row["batch_events_per_s"] / off, 3) if off else None
        recovery = measure_recovery(model, args.recovery_events, users, items, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    config = {
        "model": "mf",
        "duration": args.duration,
        "rounds": args.rounds,
        "batch_size": 1000,
        "batch_concurrency": 2,
        "single_concurrency": 8,
        "recovery_events": args.recovery_events,
        "snapshot_every_events": args.snapshot_every,
        "seed": args.seed,
    }
    out = emit("durability", config, {"modes": rows, "all_rounds": rounds, "recovery": recovery})
    if args.markdown:
        cols = ["mode", "batch_events_per_s", "batch_vs_off", "single_c8_rps"]
        cols += ["single_c8_p50_ms", "single_c8_p99_ms", "errors", "snapshots"]
        text = markdown(out["modes"], cols) + "\n" + markdown([recovery], list(recovery))
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
