"""The Prometheus metrics every service exposes at /metrics (names shared with the dashboards)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("avatar_events_consumed_total", "Events handled by a consumer", ["service", "type", "outcome"])
EVENTS_PUBLISHED = Counter("avatar_events_published_total", "Outbox rows published to the broker", ["service", "type"])
CONSUMER_RETRIES = Counter("avatar_consumer_retries_total", "Handler attempts retried after an error", ["service"])
DEAD_LETTERED = Counter("avatar_dead_lettered_total", "Messages sent to the service's DLQ", ["service"])
OUTBOX_PENDING = Gauge("avatar_outbox_pending", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge("avatar_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"])
RETENTION_DELETED = Counter("avatar_retention_deleted_total",
                            "Old outbox/inbox/trace-context rows deleted by the retention sweep", ["service", "table"])
DLQ_DEPTH = Gauge("avatar_dlq_depth", "Messages waiting in the service's dead-letter queue", ["service"])
WORKLOADS = Counter("avatar_workloads_total", "Workload saga transitions seen by the owning service", ["service", "event"])
WORKLOADS_FAILED = Counter("avatar_workloads_failed_total", "Failed workloads by reason", ["reason"])
SAGA_STEP_SECONDS = Histogram(
    "avatar_saga_step_seconds", "Time between consecutive saga steps of a workload", ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)


def initialise(service: str) -> None:
    """Create this service's series at start, so dashboards and alerts see 0 instead of no data."""
    for family in (CONSUMER_RETRIES, DEAD_LETTERED, OUTBOX_PENDING, OUTBOX_OLDEST_AGE, DLQ_DEPTH):
        family.labels(service)
