"""What one app serves: the settings, the recommender, metrics, keys.

Routes read ``state.rec`` once per request, so ``POST /admin/reload`` can swap in a
new recommender while requests that already hold the old one finish with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from recloop.config import Settings
from recloop.engine import Recommender
from recloop.engine.durable import Durable
from recloop.serving.auth import KeyChecker
from recloop.serving.batching import Batcher
from recloop.serving.errors import ApiError
from recloop.serving.live import LiveStats
from recloop.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


class ServingState:
    """The mutable core of one app.

    Parameters
    ----------
    settings
        The service's settings.
    rec
        A fitted recommender, or ``None`` (every model route then answers 503 until
        ``POST /admin/reload`` loads ``settings.model_path``).
    """

    def __init__(self, settings: Settings, rec: Recommender | None) -> None:
        self.settings = settings
        self.keys = KeyChecker(settings.key_bytes(), settings.read_requires_key)
        self.metrics = ServingMetrics()
        self.live = LiveStats()
        self.admin_lock = threading.Lock()
        self.batcher = Batcher() if settings.micro_batching else None
        self.rec: Recommender | None = None
        self.durable: Durable | None = None  # the event log and snapshots, when configured
        #: while recovering: ``{"log_offset", "target"}``, plus ``"error"`` if recovery failed
        self.recovery: dict[str, Any] | None = None
        self.replace(rec, start_index=False)
        self.metrics.watch_engine(self.figures)

    def engine(self) -> Recommender:
        """The recommender served, or a 503 ``ApiError`` when none is loaded."""
        rec = self.rec
        if rec is None:
            if self.recovery is not None:
                raise ApiError(503, "model", "recovering: replaying the event log; retry shortly")
            raise ApiError(
                503, "model", "no model is loaded: set model_path and POST /admin/reload"
            )
        return rec

    def start_recovery(self, recover: Callable[[Callable[[int, int], None]], Durable]) -> None:
        """Serve nothing but ``/health`` (``"recovering"``) until ``recover(progress)`` returns
        the engine, attached to its log, in a background thread."""
        self.recovery = {"log_offset": 0, "target": 0}

        def progress(done: int, target: int) -> None:
            self.recovery = {"log_offset": done, "target": target}

        def run() -> None:
            try:
                durable = recover(progress)
            except Exception as exc:  # /health reports it; nothing is served
                log.exception("recovery failed")
                self.recovery = {**(self.recovery or {}), "error": str(exc)}
                return
            self.durable = durable
            self.replace(durable.rec)
            self.recovery = None
            log.info("recovered: serving at log offset %d", durable.rec.log_offset)

        threading.Thread(target=run, name="recloop-recovery", daemon=True).start()

    def replace(self, rec: Recommender | None, start_index: bool = True) -> None:
        """Serve ``rec`` from now on; the previous recommender's online worker is stopped."""
        old = self.rec
        if rec is not None:
            s = self.settings
            rec.use_retrieval(s.faiss_threshold, nprobe=s.faiss_nprobe, threads=s.threads)
            rec.limit_users(s.max_users or None)
        self.rec = rec
        if start_index:
            self.start_index()
        if old is not None and old is not rec:
            _close(old)

    def start_index(self, background: bool = True) -> None:
        """Build the faiss index when the catalogue is over the threshold."""
        if self.rec is not None:
            self.rec.build_retrieval_index(background=background)

    def retrieval_status(self) -> str:
        return self.rec.retrieval_status if self.rec is not None else "exact"

    def figures(self) -> dict[str, Any]:
        """The engine's figures for ``/metrics``."""
        rec = self.rec
        if rec is None:
            return {}
        durable = self.durable
        log_figures: dict[str, Any] = {}
        if durable is not None:  # the dashboard shows these only where a log exists
            applied = rec.log_offset
            log_figures = {"log_offset": applied, "log_lag": durable.log.last_offset() - applied}
        return {
            **log_figures,
            "model_version": rec.model_version,
            "events_applied": rec.events_applied,
            "users": rec.n_users,
            "items": rec.n_items,
            "retrieval_index_items": rec.retrieval_info()["items"],
            **rec.memory_status(),
            "update_latency_ms": rec.learner_status().step_ms,
            "online_hit_rate": self.live.hit_rate(),
            "online_hit_window_events": self.live.hit_window_events(),
        }

    def close(self) -> None:
        """Stop the scoring worker, apply queued online steps and stop the online worker."""
        if self.batcher is not None:
            self.batcher.close()
        if self.durable is not None:
            self.durable.close()
        if self.rec is not None:
            _close(self.rec)


def _close(rec: Recommender) -> None:
    try:
        rec.close()
    except Exception:  # shutting down: log and go on
        log.exception("closing the recommender failed")
