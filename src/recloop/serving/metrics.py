"""Prometheus metrics, one ``CollectorRegistry`` per app (two apps in one process never mix).

Request latency and counts are observed by a small ASGI middleware, labelled by route
template (``/users/{user_id}/history``, never the raw path, so labels stay bounded);
the engine's figures (model version, events applied, online update latency, table
sizes) are read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    """The app's metrics and the registry that holds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "recloop_http_request_duration_seconds",
            "Request latency by route",
            ("method", "route"),
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.requests = Counter(
            "recloop_http_requests",
            "Requests by route and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.events = Counter(
            "recloop_http_events_accepted",
            "Events accepted by POST /events",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:  # label lookups cost more than the observation: cache the children
            pair = (
                self.latency.labels(method, route),
                self.requests.labels(method, route, str(status)),
            )
            self._children[key] = pair
        pair[0].observe(seconds)
        pair[1].inc()

    def watch_engine(self, engine_figures: Callable[[], dict[str, Any]]) -> None:
        """Report the figures returned by ``engine_figures()`` at each scrape."""
        self.registry.register(_EngineCollector(engine_figures))


class _EngineCollector(Collector):
    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures()
        for name, doc in (
            ("model_version", "Model version (bumped by each fit)"),
            ("events_applied", "Online events applied since the fit"),
            ("users", "Users known to the engine"),
            ("items", "Items known to the engine"),
            ("retrieval_index_items", "Items in the faiss retrieval index (0: exact scoring)"),
            ("users_resident", "Users whose state the engine holds"),
            ("users_evicted", "Users evicted past max_users since the model was loaded"),
            ("state_bytes", "Bytes of the engine's per-user and per-item arrays"),
        ):
            yield GaugeMetricFamily(f"recloop_{name}", doc, value=float(f.get(name, 0)))
        steps = np.asarray(f.get("update_latency_ms", ()), np.float64)
        g = GaugeMetricFamily(
            "recloop_online_update_latency_ms",
            "Online parameter step latency over the recent window (ms)",
            labels=("quantile",),
        )
        for q in (0.5, 0.9, 0.99):
            g.add_metric((str(q),), float(np.quantile(steps, q)) if len(steps) else 0.0)
        yield g
        yield GaugeMetricFamily(
            "recloop_online_update_window_steps",
            "Online steps in the latency window",
            value=float(len(steps)),
        )
        for name, doc in (
            ("log_offset", "The event log's offset of the last event applied"),
            ("log_lag", "Events in the log not yet applied"),
        ):
            if name in f:  # only with a durable event log
                yield GaugeMetricFamily(f"recloop_{name}", doc, value=float(f[name]))
        rate = f.get("online_hit_rate")
        yield GaugeMetricFamily(
            "recloop_online_hit_rate",
            "Share of recent positive events whose item was in the top-10 last served to"
            " that user (NaN before any)",
            value=float("nan") if rate is None else float(rate),
        )
        yield GaugeMetricFamily(
            "recloop_online_hit_window_events",
            "Events the online hit rate is computed over",
            value=float(f.get("online_hit_window_events", 0)),
        )


class MetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request (cheaper than ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], label, status, time.perf_counter() - start)
