"""The compiled SASRec state against the numpy one, side by side in one run.

    .venv/bin/python bench/jit.py [--model hybrid] [--max-events N] [--rounds 2]

Fits MODEL (``seed=0``) once on the MovieLens-100K replay's history and saves it; then
replays the stream online from that snapshot, alternating the compiled state (numba, the
default) and ``numpy_state`` (the path a machine without numba takes), ``--rounds`` times
each. Prints one JSON object: events/s and HR@10 per replay, and the ratio of the medians. The maths is the same, so the hit rates agree up to
the learner's micro-batch timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from common import emit

_KERNEL: Any = None  # the compiled kernel, kept while a numpy replay unsets it


def _use_jit(rec: Any, jit: bool) -> None:
    """Compiled state or ``numpy_state`` for every sasrec in ``rec``, from now on (weights
    rebuilt after a table grows included): the module's kernel, set or unset, is what each
    ``_NumpyWeights`` reads when it is built."""
    from recloop.models import _sasrec_jit
    from recloop.models.sasrec import SASRec

    _sasrec_jit.STATE = _KERNEL if jit else None
    parts = getattr(rec.model_, "parts", {"model": rec.model_})
    for part in parts.values():
        if isinstance(part, SASRec):
            part._np_weights = None  # rebuilt on the next request, with or without the kernel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hybrid")
    ap.add_argument("--max-events", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)

    global _KERNEL
    from recloop import Recommender
    from recloop.data.movielens import load_movielens_100k
    from recloop.evaluation.replay import replay, split_history
    from recloop.models import _sasrec_jit

    _KERNEL = _sasrec_jit.STATE
    if _KERNEL is None:
        print(
            "numba is not available (or RECLOOP_NO_JIT is set): nothing to compare", file=sys.stderr
        )
        return 2
    events = load_movielens_100k().interactions
    history, _ = split_history(events, 0.8)
    t = time.perf_counter()
    fitted = Recommender(model=args.model, seed=0).fit(history)
    fit_s = time.perf_counter() - t
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        snap = fitted.save(Path(tmp) / "model")
        del fitted

        class Loaded:  # replay() fits what make() returns: here, a load of the snapshot
            def __init__(self, jit: bool) -> None:
                self.jit = jit

            def fit(self, _df: Any) -> Any:
                rec = Recommender.load(snap)
                _use_jit(rec, self.jit)
                return rec

        for n in range(args.rounds):
            for jit in (True, False):
                r = replay(
                    lambda jit=jit: Loaded(jit), events, mode="online", max_events=args.max_events
                )
                rows.append(
                    {
                        "state": "compiled" if jit else "numpy",
                        "round": n,
                        "HR@10": round(r.hr, 4),
                        "NDCG@10": round(r.ndcg, 4),
                        "events/s": round(r.events_per_second),
                        "update p99 ms": round(r.update_ms_p99, 3),
                    }
                )
                print(rows[-1], file=sys.stderr)
    eps = {
        s: statistics.median(r["events/s"] for r in rows if r["state"] == s)
        for s in ("compiled", "numpy")
    }
    emit(
        "jit",
        {"model": args.model, "max_events": args.max_events, "rounds": args.rounds},
        {
            "fit_s": round(fit_s, 1),
            "rows": rows,
            "median_events_per_s": eps,
            "speedup": round(eps["compiled"] / max(eps["numpy"], 1e-9), 3),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
