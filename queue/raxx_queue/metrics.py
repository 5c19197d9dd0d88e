"""Prometheus metrics of the service (names documented in docs/runbooks/metrics.md)."""

from __future__ import annotations

import functools
import os
from typing import TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

Metric = TypeVar("Metric", bound=MetricWrapperBase)

HTTP_REQUESTS = Counter(
    "queue_http_requests_total", "HTTP requests by route and status", ["route", "status"]
)
WEBHOOK_EVENTS = Counter(
    "queue_webhook_events_total", "Stripe events by type and outcome", ["type", "outcome"]
)
WEBHOOK_SECONDS = Histogram(
    "queue_webhook_processing_seconds",
    "Time to verify and apply one Stripe event",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WEBHOOK_STATEMENT_EVENTS = Histogram(
    "queue_webhook_statement_events",
    "Stripe events applied per statement (more than one when deliveries arrive together)",
    buckets=(1, 2, 4, 8, 16, 32),
)
WEBHOOK_BATCH_SPLITS = Counter(
    "queue_webhook_batch_splits_total",
    "Statements of several events rolled back by an error, their events then applied one by one",
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "queue_webhook_signature_failures_total", "Webhook deliveries rejected", ["reason"]
)
WEBHOOK_SECRET_MATCHES = Counter(
    "queue_webhook_secret_matches_total",
    "Verified deliveries by which configured secret matched (0 = first)",
    ["secret_index"],
)
MIRROR_PENDING = Gauge(
    "queue_mirror_pending_rows", "Mirror rows not yet pushed to Raptor", multiprocess_mode="max"
)
MIRROR_OLDEST_AGE = Gauge(
    "queue_mirror_oldest_pending_age_seconds",
    "Age of the oldest unpushed mirror change",
    multiprocess_mode="max",
)
MIRROR_PUSHES = Counter("queue_mirror_pushes_total", "Pushes to Raptor by outcome", ["outcome"])
MIRROR_DISABLED = Gauge(
    "queue_mirror_destination_disabled",
    "1 while Raptor's mirror endpoint is disabled (it answered 410 Gone); pushes are held",
    multiprocess_mode="max",
)
AUDIT_UNSEALED = Gauge(
    "queue_audit_unsealed_rows", "Audit rows waiting to be sealed", multiprocess_mode="max"
)
AUDIT_SEALED = Counter("queue_audit_sealed_rows_total", "Audit rows sealed into the chain")
# Set by whichever process ran the last catch-up: the most recent value is the truth.
STRIPE_EVENT_LAG = Gauge(
    "queue_stripe_event_lag_seconds",
    "Newest event at Stripe (of the types Queue handles) minus the newest event Queue "
    "applied, as of the last catch-up run",
    multiprocess_mode="mostrecent",
)
CATCHUP_APPLIED = Counter(
    "queue_catchup_applied_total", "Events the catch-up applied (none had arrived)", ["type"]
)
# every event applied (webhook, replay, catch-up, reconcile) by the API version it was
# rendered in: a version still arriving after an upgrade is visible here
STRIPE_EVENTS_BY_API_VERSION = Counter(
    "queue_stripe_events_by_api_version_total",
    "Stripe events applied, by the API version of their payload and how they arrived",
    ["api_version", "source"],
)
CATCHUP_RUNS = Counter("queue_catchup_runs_total", "Catch-up runs by outcome", ["outcome"])
SUPPRESSED = Counter(
    "queue_log_suppressed_total",
    "Log lines of refused requests and Sentry security events left out by their caps",
    ["kind"],
)
THIN_EVENTS = Counter(
    "queue_thin_events_total",
    "Thin event notifications by kind (snapshot, health, unknown) and outcome",
    ["kind", "outcome"],
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text; aggregates all workers when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def labelled(metric: Metric, *values: str) -> Metric:
    """`metric.labels(*values)`, each child looked up once per process.

    prometheus-client checks and converts the label values and takes the metric's lock
    on every `labels()` call (1.2-1.8 µs); a webhook counts four such children, whose
    values are few (routes and statuses, event types and outcomes, secret indexes, API
    versions). The child is the same object either way: the metric keeps it too.
    """
    return cast(Metric, _child(metric, values))


@functools.cache
def _child(metric: MetricWrapperBase, values: tuple[str, ...]) -> MetricWrapperBase:
    return metric.labels(*values)
