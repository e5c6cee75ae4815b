"""The service's Prometheus metrics, in a registry of each app (two apps in one process count apart).

``facelivt_requests_total{route,method,status}``, ``facelivt_request_seconds{route}`` (latency),
``facelivt_batch_size`` (crops per model call), ``facelivt_model_seconds_per_image`` (each model call's
seconds divided by its crops), ``facelivt_errors_total{code}``, ``facelivt_queue_depth`` (crops waiting
for the model)."""
from __future__ import annotations

from typing import Callable

from facelivt.extras import require
from facelivt.serve.batcher import BatchStats

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PER_IMAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.25, 0.5, 1.0)


class Metrics:
    """The metrics of one app. ``queue_depth``: a callable giving the crops waiting for the model."""

    def __init__(self, queue_depth: Callable[[], float] | None = None) -> None:
        prom = require("prometheus_client", "the service's metrics")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("facelivt_requests", "HTTP requests answered", ["route", "method", "status"],
                                     registry=r)
        self.latency = prom.Histogram("facelivt_request_seconds", "time to answer a request", ["route"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = prom.Histogram("facelivt_batch_size", "face crops per model call", buckets=BATCH_BUCKETS,
                                         registry=r)
        self.per_image = prom.Histogram("facelivt_model_seconds_per_image",
                                        "seconds of a model call divided by its crops", buckets=PER_IMAGE_BUCKETS,
                                        registry=r)
        self.model_seconds = prom.Counter("facelivt_model_seconds", "seconds spent in model calls", registry=r)
        self.model_images = prom.Counter("facelivt_model_images", "face crops embedded", registry=r)
        self.errors = prom.Counter("facelivt_errors", "error responses by code", ["code"], registry=r)
        self.queue = prom.Gauge("facelivt_queue_depth", "face crops waiting for the model", registry=r)
        if queue_depth is not None:
            self.queue.set_function(queue_depth)

    def batch(self, stats: BatchStats) -> None:
        """Record one model call."""
        self.batch_size.observe(stats.crops)
        self.per_image.observe(stats.seconds / max(stats.crops, 1))
        self.model_seconds.inc(stats.seconds)
        self.model_images.inc(stats.crops)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def text(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
