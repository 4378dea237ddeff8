"""Prometheus metrics, served at `GET /metrics` on the top-level app.

What is counted (all prefixed `platform_`):

    requests_total{endpoint,model,status}            every /api/v1 request, rejected ones too
    request_duration_seconds{endpoint,model,status}  latency histogram (same clock as the log row)
    upstream_errors_total{kind}                      provider_error answers: kind = timeout | error
    credits_debited_total, credits_refunded_total    by this process's requests
    log_queue_depth                                  request-log rows waiting for the writer
    log_rows_written_total                           rows the writer has committed
    log_rows_set_aside_total                         rows the database refused (each logged)
    log_rows_dropped_total                           rows refused because the queue was full

`endpoint` is the route template (`/api/v1/images/generations/{task_id}`, or `unmatched`)
and `model` a registry id (`other` for an unknown one, empty when none was given), so
callers cannot blow up the label sets with made-up paths or model names.

Several processes (`uvicorn --workers N`, Reflex's workers) share one view when
PROMETHEUS_MULTIPROC_DIR names a directory they all see: prometheus-client then keeps
the values in files there and each scrape adds them up. Empty that directory before
the processes start (docs/production.md). Without it each process answers for itself.

The endpoint is off unless METRICS_TOKEN is set: without it `/metrics` is 404 (it does
not exist); with it, a request without `Authorization: Bearer <METRICS_TOKEN>` gets 401.
"""

from __future__ import annotations

import hmac
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class Metrics:
    """One set of metrics per Runtime (its own registry, so test apps do not share counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("endpoint", "model", "status")
        self.requests = Counter(
            "platform_requests", "API requests by endpoint, model and status", labels, registry=self.registry
        )
        self.latency = Histogram(
            "platform_request_duration_seconds",
            "API request latency in seconds",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "platform_upstream_errors", "Requests answered provider_error, by kind", ("kind",), registry=self.registry
        )
        self.credits_debited = Counter(
            "platform_credits_debited", "Credits held at admission for requests", registry=self.registry
        )
        self.credits_settled_back = Counter(
            "platform_credits_settled_back",
            "Credits given back when a request settled below its hold",
            registry=self.registry,
        )
        self.credits_refunded = Counter(
            "platform_credits_refunded", "Credits given back after upstream failures", registry=self.registry
        )
        self.log_queue = Gauge(
            "platform_log_queue_depth",
            "Request-log rows waiting to be written",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.log_rows = Counter("platform_log_rows_written", "Request-log rows written", registry=self.registry)
        self.log_rows_set_aside = Counter(
            "platform_log_rows_set_aside", "Request-log rows the database refused", registry=self.registry
        )
        self.log_rows_dropped = Counter(
            "platform_log_rows_dropped",
            "Request-log rows refused because LOG_QUEUE_MAX rows were waiting",
            registry=self.registry,
        )
        self.unauthenticated = Counter(
            "platform_unauthenticated_requests", "/api/v1 requests without a valid key", registry=self.registry
        )
        self.unauthenticated_unlogged = Counter(
            "platform_unauthenticated_requests_unlogged",
            "Requests without a valid key past UNAUTHENTICATED_LOG_ROWS_PER_MINUTE: counted, no log row",
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, str], tuple] = {}

    def observe(self, *, endpoint: str, model: str, status: int, seconds: float, error_code: str | None) -> None:
        key = (endpoint, model, str(status))
        series = self._series.get(key)
        if series is None:  # .labels() costs a lock and a lookup: keep the children
            series = self._series[key] = (self.requests.labels(*key), self.latency.labels(*key))
        series[0].inc()
        series[1].observe(seconds)
        if error_code == "provider_error":
            self.upstream_errors.labels("timeout" if status == 504 else "error").inc()

    def render(self) -> bytes:
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def process_exited(self) -> None:
        """Drop this process's live gauges from the shared directory (multi-process mode)."""
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())


def metrics_endpoint(metrics: Metrics, token: str | None):
    """`GET /metrics`: 404 when METRICS_TOKEN is unset, 401 without that bearer token."""
    expected = f"Bearer {token}".encode() if token else None

    async def serve_metrics(request: Request) -> Response:
        if expected is None:
            return PlainTextResponse("Not Found", status_code=404)
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return PlainTextResponse("Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return serve_metrics
