"""HTTP serving benchmark: throughput and latency of recloop's routes against a constant-JSON ceiling.

    .venv/bin/python bench/serving.py [--duration 4] [--rounds 3] [--million-items 1000000]
                                      [--markdown docs/serving_bench.md]
    # only the batched events route (and the ceiling) at concurrency 8, reusing a fit:
    .venv/bin/python bench/serving.py --routes events_batch --concurrency 8 --million-items 0 \
                                      --trials 0 --fit-cache /tmp/recloop-bench-mf

One run:

1. fits ``Recommender(model="mf", seed=0)`` on MovieLens-100K and saves it;
2. starts the server as ``recloop serve`` does (uvicorn, one process, online learning on),
   with one extra route, ``GET /bench/constant``, a trivial FastAPI endpoint returning a
   constant JSON through the same app, middleware and server: the ceiling;
3. loads it from this process over 127.0.0.1 with a small asyncio HTTP/1.1 keep-alive
   client at concurrency 1, 8 and 32 (bounded: ``--duration`` seconds and
   ``--max-requests`` per scenario), rounds interleaved, the median round reported;
   ``POST /events`` bodies come from a pool encoded before timing (``--pool``), so the
   client, on the same cores, spends little per request;
4. measures event-to-effect latency (``POST /events`` answered → the next ``/recommend``
   for that user reflects it);
5. serves a synthetic 1,000,000-item dot-product catalogue and measures ``/recommend``
   at concurrency 1 and recall@10 of faiss retrieval against exact scoring.

Prints one JSON object (config, machine, versions, results) and appends it to
bench/results/serving.jsonl; ``--markdown PATH`` also writes the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
HOST = "127.0.0.1"  # loopback only


# ---------------------------------------------------------------- the load client
class Connection:
    """One keep-alive HTTP/1.1 connection (responses always carry Content-Length here)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def post(path: str, payload: Any) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def load(
    port: int,
    make: Callable[[random.Random], bytes],
    concurrency: int,
    duration: float,
    max_requests: int,
    seed: int,
) -> dict[str, Any]:
    """Closed-loop load: ``concurrency`` connections each send the next request when answered."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    sent = 0
    conns = [await Connection.open(port) for _ in range(concurrency)]
    stop = time.perf_counter() + duration

    async def worker(n: int) -> None:
        nonlocal errors, sent
        rng = random.Random(seed * 1000 + n)
        conn = conns[n]
        while time.perf_counter() < stop and sent < max_requests:
            sent += 1
            raw = make(rng)
            t0 = time.perf_counter()
            try:
                status, _ = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                conn.close()
                conn = conns[n] = await Connection.open(port)
                continue
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    lat = np.asarray(latencies) * 1000
    bad = sum(v for k, v in statuses.items() if k >= 400)
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "errors": bad + errors,
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
    }


# ---------------------------------------------------------------- servers (child processes)
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_child(args: list[str], port: int, timeout: float = 900) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode()[-3000:] if proc.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
                if json.loads(r.read()).get("retrieval") != "building":
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_child(proc)
            raise RuntimeError("server did not start in time")
        time.sleep(0.3)


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve(app: Any, port: int, **settings: Any) -> None:
    from starlette.responses import Response

    from recloop.cli.serve_cmd import serve
    from recloop.config import load_settings
    from recloop.serving.responses import OrjsonResponse

    async def constant() -> Response:
        return OrjsonResponse({"status": "ok", "value": 42})

    app.add_api_route("/bench/constant", constant, methods=["GET"])
    serve(app, load_settings(env={}, port=port, host=HOST, log_level="warning", **settings))


def child_serve(model_dir: str, port: int, micro_batching: bool) -> None:
    import torch

    from recloop import Recommender
    from recloop.config import load_settings
    from recloop.serving import create_app

    torch.set_num_threads(1)
    rec = Recommender.load(model_dir)
    _serve(
        create_app(load_settings(env={}, micro_batching=micro_batching), rec),
        port,
        micro_batching=micro_batching,
    )


def synthetic_catalogue(n_items: int, kind: str, seed: int = 0) -> Any:
    """An ``mf`` Recommender over ``n_items`` items whose vectors are then made random.

    ``clustered``: item and user vectors drawn around 2,000 random centres (as learned
    embeddings are); ``isotropic``: plain Gaussian vectors, the worst case for any
    inverted-file index. Every item enters the vocabulary through ``fit`` (a catalogue
    user viewed each once; one large-batch epoch, online learning off): going through
    ``update`` item by item is quadratic in the engine today (see docs/serving.md).
    """
    import pandas as pd
    import torch

    from recloop import Recommender
    from recloop.online import OnlineConfig

    rng = np.random.default_rng(seed)
    n_users, per_user, dim = 2000, 20, 64
    users_col = [f"u{u}" for u in range(n_users) for _ in range(per_user)] + ["catalogue"] * n_items
    items_col = [
        f"i{int(i)}" for _ in range(n_users) for i in rng.choice(5000, per_user, replace=False)
    ]
    items_col += [f"i{j}" for j in range(n_items)]
    df = pd.DataFrame(
        {
            "user_id": users_col,
            "item_id": items_col,
            "timestamp": np.arange(len(users_col), dtype=np.int64) + 1_000_000,
        }
    )
    rec = Recommender(
        model="mf",
        seed=seed,
        online=OnlineConfig(enabled=False),
        epochs=1,
        dim=dim,
        n_negatives=1,
        batch_size=65_536,
    )
    rec.fit(df, validation=False)
    if kind == "clustered":
        centres = rng.normal(size=(2000, dim)).astype(np.float32)
        items = centres[rng.integers(0, 2000, rec.n_items)] + 0.5 * rng.normal(
            size=(rec.n_items, dim)
        ).astype(np.float32)
        users = centres[rng.integers(0, 2000, n_users)] + 0.5 * rng.normal(
            size=(n_users, dim)
        ).astype(np.float32)
    else:
        items = rng.normal(size=(rec.n_items, dim)).astype(np.float32)
        users = rng.normal(size=(n_users, dim)).astype(np.float32)
    tables = rec.model_.factors_  # mf's serving tables: user and item vectors, item biases
    with torch.no_grad():
        tables.item.copy_(torch.from_numpy(0.1 * items.astype(np.float32)))
        tables.bias.copy_(
            torch.from_numpy((0.05 * rng.normal(size=rec.n_items)).astype(np.float32))
        )
        rows = torch.as_tensor(rec.users_.lookup([f"u{u}" for u in range(n_users)]))
        tables.user[rows] = torch.from_numpy(users.astype(np.float32))
    return rec


def child_million(port: int, n_items: int, kind: str, report: str, nprobe: int) -> None:
    import torch

    from recloop.config import load_settings
    from recloop.serving import create_app

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rec = synthetic_catalogue(n_items, kind)
    build_model = time.perf_counter() - t0
    app = create_app(load_settings(env={}, faiss_nprobe=nprobe), rec)
    state = app.state.serving
    t0 = time.perf_counter()
    state.start_index(background=False)
    info = rec.retrieval_info()
    build_index = time.perf_counter() - t0
    users = [f"u{u}" for u in range(0, 2000, 10)]
    hits, exact_ms, ann_ms = 0, [], []
    for u in users:
        t = time.perf_counter()
        ann = rec.recommend_with_scores(u, 10, True)
        ann_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        exact = rec.recommend_batch_with_scores([u], 10, True, exact=True)[0]
        exact_ms.append((time.perf_counter() - t) * 1000)
        hits += len({i for i, _ in ann or []} & {i for i, _ in exact})
    Path(report).write_text(
        json.dumps(
            {
                "items": rec.n_items,
                "vectors": kind,
                "dim": 64,
                "nlist": info["nlist"],
                "nprobe": info["nprobe"],
                "recall@10": hits / (10 * len(users)),
                "users_checked": len(users),
                "build_model_s": round(build_model, 1),
                "build_index_s": round(build_index, 1),
                "in_process_faiss_ms": {
                    "p50": round(float(np.percentile(ann_ms, 50)), 3),
                    "p99": round(float(np.percentile(ann_ms, 99)), 3),
                },
                "in_process_exact_ms": {
                    "p50": round(float(np.percentile(exact_ms, 50)), 3),
                    "p99": round(float(np.percentile(exact_ms, 99)), 3),
                },
            }
        )
    )
    _serve(app, port, faiss_nprobe=nprobe)


# ---------------------------------------------------------------- scenarios
def scenarios(
    users: list[str],
    event_users: list[str],
    items: list[str],
    batch: int,
    pool: int = 0,
    seed: int = 0,
) -> dict[str, Callable[[random.Random], bytes]]:
    """Request makers by route. With ``pool`` > 0 the ``POST /events`` requests are drawn
    from ``pool`` requests encoded here, before any timing, so the load client (on the
    same cores as the server) does not pay random choices and JSON encoding per request."""

    def recommend(r: random.Random) -> bytes:
        return get(f"/recommend?user_id={r.choice(users)}&k=10")

    def predict(r: random.Random) -> bytes:
        return post(
            "/predict",
            {
                "user_id": r.choice(users),
                "item_id": r.choice(items),
                "behavior": round(r.random(), 3),
            },
        )

    def event(r: random.Random) -> dict[str, Any]:
        return {"user_id": r.choice(event_users), "item_id": r.choice(items), "type": "click"}

    def one(r: random.Random) -> bytes:
        return post("/events", event(r))

    def many(r: random.Random) -> bytes:
        return post("/events", {"events": [event(r) for _ in range(batch)]})

    def pooled(make: Callable[[random.Random], bytes]) -> Callable[[random.Random], bytes]:
        if pool <= 0:
            return make
        gen = random.Random(seed)
        bodies = [make(gen) for _ in range(pool)]
        return lambda r: bodies[r.randrange(len(bodies))]

    return {
        "constant": lambda r: get("/bench/constant"),
        "recommend": recommend,
        "predict": predict,
        "events": pooled(one),
        "events_batch": pooled(many),
    }


async def event_to_effect(port: int, users: list[str], trials: int) -> dict[str, Any]:
    conn = await Connection.open(port)
    ack_to_seen, post_to_seen, reflected = [], [], 0
    for n in range(trials):
        user = users[n % len(users)]
        _, body = await conn.request(get(f"/recommend?user_id={user}&k=10"))
        top = json.loads(body)["items"][0]["item_id"]
        t0 = time.perf_counter()
        await conn.request(post("/events", {"user_id": user, "item_id": top, "type": "click"}))
        t1 = time.perf_counter()
        _, body = await conn.request(get(f"/recommend?user_id={user}&k=10"))
        t2 = time.perf_counter()
        if top not in [x["item_id"] for x in json.loads(body)["items"]]:
            reflected += 1
        ack_to_seen.append((t2 - t1) * 1000)
        post_to_seen.append((t2 - t0) * 1000)
    conn.close()

    def q(v: list[float]) -> dict[str, float]:
        return {
            "p50": round(float(np.percentile(v, 50)), 3),
            "p99": round(float(np.percentile(v, 99)), 3),
        }

    return {
        "trials": trials,
        "reflected_on_next_read": reflected / trials,
        "ack_to_effect_ms": q(ack_to_seen),
        "post_to_effect_ms": q(post_to_seen),
    }


def measure_routes(
    port: int,
    make: dict[str, Callable[[random.Random], bytes]],
    levels: list[int],
    args: argparse.Namespace,
    label: str,
) -> list[dict[str, Any]]:
    """Every scenario at every concurrency, ``args.rounds`` interleaved rounds; median round."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        for c in levels:
            for name, fn in make.items():
                r = asyncio.run(load(port, fn, c, args.duration, args.max_requests, seed=rnd))
                runs.setdefault((name, c), []).append(r)
                print(
                    f"[batching {label}] round {rnd} c={c} {name}: {r['rps']} req/s p50 {r['p50_ms']} "
                    f"p99 {r['p99_ms']} errors {r['errors']}",
                    file=sys.stderr,
                )
    rows = []
    for (name, c), rs in runs.items():
        med = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        ceiling = sorted(runs[("constant", c)], key=lambda r: r["rps"])[len(rs) // 2]
        row = {
            "route": name,
            "concurrency": c,
            **med,
            "rps_rounds": [r["rps"] for r in rs],
            "rps_vs_ceiling": round(med["rps"] / ceiling["rps"], 3),
            "p99_vs_ceiling": round(med["p99_ms"] / ceiling["p99_ms"], 3)
            if med["p99_ms"]
            else None,
        }
        if name == "events_batch":
            row["events_per_s"] = round(med["rps"] * args.batch)
        rows.append(row)
    return rows


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as r:
        return r.read().decode()


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for pkg in (
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "pydantic",
        "orjson",
        "faiss-cpu",
        "prometheus-client",
        "torch",
        "numpy",
    ):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "absent"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per scenario and round")
    ap.add_argument(
        "--max-requests", type=int, default=50_000, help="requests per scenario and round at most"
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the median round is reported"
    )
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--batch", type=int, default=1000, help="events per batched POST /events")
    ap.add_argument(
        "--routes",
        default="constant,recommend,predict,events,events_batch",
        help="routes to load, comma-separated (constant, the ceiling, is always measured)",
    )
    ap.add_argument(
        "--pool",
        type=int,
        default=64,
        help="POST /events bodies encoded before timing and drawn at random (0: build each request in the loop)",
    )
    ap.add_argument("--trials", type=int, default=200, help="event-to-effect trials (0: skip)")
    ap.add_argument(
        "--fit-cache",
        default=None,
        help="folder of a saved fit to reuse (written there when absent) instead of fitting every run",
    )
    ap.add_argument(
        "--million-items", type=int, default=1_000_000, help="synthetic catalogue size (0: skip)"
    )
    ap.add_argument("--million-vectors", choices=("clustered", "isotropic"), default="clustered")
    ap.add_argument("--million-duration", type=float, default=10.0)
    ap.add_argument("--nprobe", type=int, default=48)
    ap.add_argument(
        "--no-micro-batching", action="store_true", help="serve with micro_batching off"
    )
    ap.add_argument(
        "--compare-off",
        action="store_true",
        help="also measure the routes with micro_batching off, on the same model",
    )
    ap.add_argument("--markdown", default=None, help="write the tables to this file")
    ap.add_argument("--child", choices=("serve", "million"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--report", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "serve":
        child_serve(args.model_dir, args.port, not args.no_micro_batching)
        return 0
    if args.child == "million":
        child_million(args.port, args.million_items, args.million_vectors, args.report, args.nprobe)
        return 0

    import torch

    torch.set_num_threads(1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from common import emit, markdown
    from recloop import Recommender
    from recloop.data.movielens import load_movielens_100k

    levels = [int(c) for c in args.concurrency.split(",")]
    known = ("constant", "recommend", "predict", "events", "events_batch")
    routes = ["constant"] + [
        r for r in (x.strip() for x in args.routes.split(",")) if r and r != "constant"
    ]
    bad = [r for r in routes if r not in known]
    if bad:
        ap.error(f"--routes: unknown {', '.join(bad)}; known: {', '.join(known)}")
    config = {
        "model": "mf",
        "data": "movielens-100k",
        "server": "uvicorn, 1 process (as recloop serve)",
        "client": "asyncio HTTP/1.1 keep-alive, closed loop, same machine",
        "duration_s": args.duration,
        "max_requests": args.max_requests,
        "rounds": args.rounds,
        "concurrency": levels,
        "batch": args.batch,
        "trials": args.trials,
        "million_items": args.million_items,
        "million_vectors": args.million_vectors,
        "nprobe": args.nprobe,
        "k": 10,
        "micro_batching": not args.no_micro_batching,
        "routes": routes,
        "pool": args.pool,
    }
    results: dict[str, Any] = {"versions": versions()}
    tmp = tempfile.TemporaryDirectory(prefix="recloop-bench-")
    model_dir = Path(tmp.name) / "mf"
    if args.fit_cache and (Path(args.fit_cache) / "meta.json").exists():
        rec = Recommender.load(args.fit_cache)
        results["fit_seconds"] = None  # reused
    else:
        df = load_movielens_100k().interactions
        t0 = time.perf_counter()
        rec = Recommender(model="mf", seed=0).fit(df)
        results["fit_seconds"] = round(time.perf_counter() - t0, 1)
        if args.fit_cache:
            rec.save(args.fit_cache)
    rec.save(model_dir)
    all_users = sorted(rec.users_.to_list(), key=lambda x: int(x) if x.isdigit() else 0)
    event_users, users = all_users[:100], all_users[100:]
    items = rec.items_.to_list()
    make = {
        k: v
        for k, v in scenarios(users, event_users, items, args.batch, args.pool).items()
        if k in routes
    }
    # what one engine call costs without HTTP (the part the ceiling does not pay)
    eng: dict[str, float] = {}
    for name, call in (
        ("recommend_with_scores", lambda u: rec.recommend_with_scores(u, 10, True)),
        ("predict_proba", lambda u: rec.predict_proba(u, items[0], 0.5)),
    ):
        t0 = time.perf_counter()
        for n in range(2000):
            call(users[n % len(users)])
        eng[name] = round((time.perf_counter() - t0) / 2000 * 1e6, 1)
    results["engine_in_process_us"] = eng

    modes = [not args.no_micro_batching] + ([args.no_micro_batching] if args.compare_off else [])
    for batching_on in modes:
        key = (
            "routes" if batching_on == (not args.no_micro_batching) else "routes_micro_batching_off"
        )
        port = free_port()
        proc = start_child(
            [
                "--child",
                "serve",
                "--model-dir",
                str(model_dir),
                *([] if batching_on else ["--no-micro-batching"]),
            ],
            port,
        )
        try:
            results[key] = measure_routes(
                port, make, levels, args, label="on" if batching_on else "off"
            )
            if key == "routes":
                if args.trials > 0:
                    results["event_to_effect"] = asyncio.run(
                        event_to_effect(port, event_users, args.trials)
                    )
                health = json.loads(fetch(port, "/health"))
                metrics = fetch(port, "/metrics")
                results["server_after"] = {
                    "events_applied": health["events_applied"],
                    "n_users": health["n_users"],
                    "online_update_ms": {
                        line.split("quantile=")[1].split('"')[1]: float(line.split()[-1])
                        for line in metrics.splitlines()
                        if line.startswith("recloop_online_update_latency_ms{")
                    },
                }
        finally:
            stop_child(proc)

    if args.million_items:
        report = Path(tmp.name) / "million.json"
        port = free_port()
        t0 = time.perf_counter()
        proc = start_child(
            [
                "--child",
                "million",
                "--million-items",
                str(args.million_items),
                "--million-vectors",
                args.million_vectors,
                "--report",
                str(report),
                "--nprobe",
                str(args.nprobe),
            ],
            port,
        )
        try:
            million = json.loads(report.read_text())
            million["startup_s"] = round(time.perf_counter() - t0, 1)
            million["retrieval"] = json.loads(fetch(port, "/health"))["retrieval"]
            musers = [f"u{u}" for u in range(2000)]
            million["http_c1"] = asyncio.run(
                load(
                    port,
                    lambda r: get(f"/recommend?user_id={r.choice(musers)}&k=10"),
                    1,
                    args.million_duration,
                    args.max_requests,
                    seed=0,
                )
            )
        finally:
            stop_child(proc)
        results["million"] = million
    tmp.cleanup()

    targets = {}
    by = {(r["route"], r["concurrency"]): r for r in results["routes"]}
    for route in ("recommend", "predict"):
        r = by.get((route, 8))
        if r:
            targets[f"{route}_c8_rps_ge_50pct_ceiling"] = r["rps_vs_ceiling"] >= 0.5
            targets[f"{route}_c8_p99_le_2x_ceiling"] = (
                r["p99_vs_ceiling"] is not None and r["p99_vs_ceiling"] <= 2.0
            )
    if "events_batch" in routes:
        batch_best = max(
            (r.get("events_per_s", 0) for r in results["routes"] if r["route"] == "events_batch"),
            default=0,
        )
        targets["events_batch_ge_20k_per_s"] = batch_best >= 20_000
    if "million" in results:
        m = results["million"]
        targets["million_p99_le_20ms"] = (m["http_c1"]["p99_ms"] or 1e9) <= 20
        targets["million_recall_ge_0.95"] = m["recall@10"] >= 0.95
    targets["zero_5xx"] = all(
        r["5xx"] == 0 for r in results["routes"] + results.get("routes_micro_batching_off", [])
    ) and ("million" not in results or results["million"]["http_c1"]["5xx"] == 0)
    results["targets_met"] = targets

    if args.markdown:
        cols = [
            "route",
            "concurrency",
            "rps",
            "p50_ms",
            "p99_ms",
            "errors",
            "rps_vs_ceiling",
            "p99_vs_ceiling",
            "events_per_s",
        ]
        text = "### Routes (MovieLens-100K `mf`, k=10; median of rounds)\n\n" + markdown(
            results["routes"], cols
        )
        if "routes_micro_batching_off" in results:
            text += "\n### Routes with micro-batching off (same model, same run)\n\n" + markdown(
                results["routes_micro_batching_off"], cols
            )
        e = results.get("event_to_effect")
        if e:
            text += "\n### Event to effect\n\n" + markdown(
                [
                    {
                        "trials": e["trials"],
                        "reflected on next read": e["reflected_on_next_read"],
                        "ack→effect p50 ms": e["ack_to_effect_ms"]["p50"],
                        "ack→effect p99 ms": e["ack_to_effect_ms"]["p99"],
                        "post→effect p50 ms": e["post_to_effect_ms"]["p50"],
                        "post→effect p99 ms": e["post_to_effect_ms"]["p99"],
                    }
                ],
                [
                    "trials",
                    "reflected on next read",
                    "ack→effect p50 ms",
                    "ack→effect p99 ms",
                    "post→effect p50 ms",
                    "post→effect p99 ms",
                ],
            )
        if "million" in results:
            m = results["million"]
            text += "\n### 1,000,000-item catalogue\n\n" + markdown(
                [
                    {
                        "items": m["items"],
                        "vectors": m["vectors"],
                        "nlist/nprobe": f"{m['nlist']}/{m['nprobe']}",
                        "recall@10": m["recall@10"],
                        "HTTP c=1 p50 ms": m["http_c1"]["p50_ms"],
                        "HTTP c=1 p99 ms": m["http_c1"]["p99_ms"],
                        "HTTP req/s": m["http_c1"]["rps"],
                        "in-process faiss p99 ms": m["in_process_faiss_ms"]["p99"],
                        "in-process exact p50 ms": m["in_process_exact_ms"]["p50"],
                        "index build s": m["build_index_s"],
                    }
                ],
                [
                    "items",
                    "vectors",
                    "nlist/nprobe",
                    "recall@10",
                    "HTTP c=1 p50 ms",
                    "HTTP c=1 p99 ms",
                    "HTTP req/s",
                    "in-process faiss p99 ms",
                    "in-process exact p50 ms",
                    "index build s",
                ],
            )
        text += (
            "\n### Targets\n\n"
            + "\n".join(f"- {k}: {'met' if v else 'NOT met'}" for k, v in targets.items())
            + "\n"
        )
        Path(args.markdown).write_text(text)
    emit("serving", config, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
