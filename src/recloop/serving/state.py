"""What one app serves: the settings, the recommender, its retrieval index, metrics, keys.

Routes read ``state.rec`` once per request, so ``POST /admin/reload`` can swap in a
new recommender while requests that already hold the old one finish with it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from recloop.config import Settings
from recloop.engine import Recommender
from recloop.serving.auth import KeyChecker
from recloop.serving.batching import Batcher
from recloop.serving.errors import ApiError
from recloop.serving.live import LiveStats
from recloop.serving.metrics import ServingMetrics
from recloop.serving.retrieval import Retriever
from recloop.serving.similar import SimilarItems

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
        self.retriever: Retriever | None = None
        self.similar: SimilarItems | None = None
        self.replace(rec, start_index=False)
        self.metrics.watch_engine(self.figures)

    def engine(self) -> Recommender:
        """The recommender served, or a 503 ``ApiError`` when none is loaded."""
        rec = self.rec
        if rec is None:
            raise ApiError(
                503, "model", "no model is loaded: set model_path and POST /admin/reload"
            )
        return rec

    def replace(self, rec: Recommender | None, start_index: bool = True) -> None:
        """Serve ``rec`` from now on; the previous recommender's online worker is stopped."""
        old = self.rec
        retriever = None
        if rec is not None:
            s = self.settings
            retriever = Retriever(rec, s.faiss_threshold, nprobe=s.faiss_nprobe, threads=s.threads)
        self.rec, self.retriever = rec, retriever
        self.similar = SimilarItems(rec) if rec is not None else None
        if start_index:
            self.start_index()
        if old is not None and old is not rec:
            _close(old)

    def start_index(self, background: bool = True) -> None:
        """Build the faiss index when the catalogue is over the threshold."""
        if self.retriever is not None:
            self.retriever.start(background=background)

    def retrieval_status(self) -> str:
        return self.retriever.status if self.retriever is not None else "exact"

    def figures(self) -> dict[str, Any]:
        """The engine's figures for ``/metrics``."""
        rec = self.rec
        if rec is None:
            return {}
        index = self.retriever.index if self.retriever is not None else None
        return {
            "model_version": rec.model_version_,
            "events_applied": rec.events_applied_,
            "users": rec.n_users,
            "items": rec.n_items,
            "retrieval_index_items": index.n_items if index is not None else 0,
            "update_latency_ms": rec.update_latency_ms(),
            "online_hit_rate": self.live.hit_rate(),
            "online_hit_window_events": self.live.hit_window_events(),
        }

    def close(self) -> None:
        """Stop the scoring worker, apply queued online steps and stop the online worker."""
        if self.batcher is not None:
            self.batcher.close()
        if self.rec is not None:
            _close(self.rec)


def _close(rec: Recommender) -> None:
    # Recommender has no public close() yet (see report): stop its learner's worker thread.
    learner = getattr(rec, "_learner", None)
    close = getattr(learner, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # shutting down: log and go on
            log.exception("closing the online learner failed")
