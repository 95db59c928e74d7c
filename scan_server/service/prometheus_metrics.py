"""Prometheus metrics of one server (its own registry: nothing global at import)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Bucket edges in seconds: a step on a GPU takes milliseconds, on a CPU up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram("scan_server_stage_seconds", "wall time of each stage of a step",
                                       ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.step_seconds = Histogram("scan_server_step_seconds", "batch received → reply ready",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.sessions_opened = Counter("scan_server_sessions_opened", "sessions opened", ["strategy"], registry=r)
        self.sessions_closed = Counter("scan_server_sessions_closed", "sessions finished or expired",
                                       ["status"], registry=r)
        self.open_sessions = Gauge("scan_server_open_sessions", "sessions open now", registry=r)
        self.errors = Counter("scan_server_errors", "error replies", ["code", "plane"], registry=r)
        self.retries = Counter("scan_server_retries", "repeated seq answered from the cache", registry=r)
        self.fallbacks = Counter("scan_server_fallbacks", "late decisions answered with Halton points", registry=r)
        self.batched_sessions = Histogram("scan_server_reconstruction_sessions", "sessions stepped in one batched "
                                          "reconstruction call", buckets=(1, 2, 3, 4, 6, 8, 12, 16), registry=r)

    def observe(self, stage: str, seconds: float) -> None:
        """One stage of a step: decode, persist, reconstruct or decide (the latter two as they
        complete, also when the reply did not wait for them)."""
        self.stage_seconds.labels(stage).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
