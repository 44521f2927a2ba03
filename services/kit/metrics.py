"""The Prometheus metrics every service exposes at /metrics (names shared with the dashboards)."""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Callable, Iterator

import prometheus_client
from prometheus_client import Gauge


log = logging.getLogger(__name__)


class _Pending(list):
    closed = False


_deferred: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("avatar_deferred_metrics", default=None)


class Deferred:
    """What is counted (and any after-commit callback) from here on lands only once `release()` is
    called, i.e. after the transaction committed; `discard()` drops it (rolled back)."""

    def __init__(self) -> None:
        self._pending = _Pending()
        self._token = _deferred.set(self._pending)

    def release(self) -> None:
        self._close()
        for record, value, exemplar in self._pending:
            try:
                record(value, exemplar)
            except Exception:  # the work is committed: a bad count must not turn it into a failure
                log.exception("could not record a metric after commit")

    def discard(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._pending.closed:
            return
        self._pending.closed = True
        try:
            _deferred.reset(self._token)
        except ValueError:  # released from another context (a task that copied this one): nothing to reset
            pass


@contextlib.contextmanager
def counted_on_commit() -> Iterator[None]:
    """Counts and observations made inside land only if the block ends normally, i.e. after the
    transaction it wraps committed: a handler retried after a rolled-back attempt is counted once."""
    block = Deferred()
    try:
        yield
    except BaseException:
        block.discard()  # rolled back: so is what it counted
        raise
    block.release()


def on_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the innermost open `counted_on_commit()` block commits (at once outside one)."""
    pending = open_block()
    if pending is None:
        callback()
    else:
        pending.append((lambda _value, _exemplar: callback(), None, None))


def open_block() -> _Pending | None:
    """The innermost `counted_on_commit()` block open here (None: counts land at once)."""
    pending = _deferred.get()
    return None if pending is None or pending.closed else pending


def count_into(block: _Pending | None) -> None:
    """Make counts in this context land with `block` (another context's, e.g. a batch's transaction)."""
    _deferred.set(block)


class Counter(prometheus_client.Counter):
    """prometheus_client's Counter whose increments inside `counted_on_commit()` wait for the commit."""

    def inc(self, amount: float = 1, exemplar: Any = None) -> None:
        pending = open_block()
        if pending is None:
            super().inc(amount, exemplar)
        else:
            pending.append((super().inc, amount, exemplar))


class Histogram(prometheus_client.Histogram):
    """prometheus_client's Histogram whose observations inside `counted_on_commit()` wait for the commit."""

    def observe(self, amount: float, exemplar: Any = None) -> None:
        pending = open_block()
        if pending is None:
            super().observe(amount, exemplar)
        else:
            pending.append((super().observe, amount, exemplar))


EVENTS_CONSUMED = Counter("avatar_events_consumed_total", "Events handled by a consumer", ["service", "type", "outcome"])
EVENTS_PUBLISHED = Counter("avatar_events_published_total", "Outbox rows published to the broker", ["service", "type"])
CONSUMER_RETRIES = Counter("avatar_consumer_retries_total", "Handler attempts retried after an error", ["service"])
DEAD_LETTERED = Counter("avatar_dead_lettered_total", "Messages sent to the service's DLQ", ["service"])
EVENTS_REFUSED = Counter("avatar_events_refused_total", "Events dead-lettered because their publisher is not "
                         "believed (producer not the validated user_id, or no user_id)", ["service", "type"])
OUTBOX_PENDING = Gauge("avatar_outbox_pending", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge("avatar_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"])
RETENTION_DELETED = Counter("avatar_retention_deleted_total",
                            "Old outbox/inbox/trace-context rows deleted by the retention sweep", ["service", "table"])
BATCHES = Counter("avatar_consumer_batches_total", "Batches of events handled in one transaction, by outcome",
                  ["service", "outcome"])
BATCHED_EVENTS = Counter("avatar_consumer_batched_events_total", "Events handled in committed batches", ["service"])
RUNTIME = Gauge("avatar_runtime_info", "The event loop and HTTP parser this service process runs on (always 1)",
                ["service", "event_loop", "http_parser"])
WAKEUPS = prometheus_client.Counter(
    "avatar_wakeups_total", "Listeners (outbox relay, scheduler engine, models store worker) woken after a commit: in "
    "this process (local), by a NOTIFY of its own (notify), or not reached (lost: their polling finds the work)",
    ["service", "channel", "delivery"])
DLQ_DEPTH = Gauge("avatar_dlq_depth", "Messages waiting in the service's dead-letter queue", ["service"])
WORKLOADS = Counter("avatar_workloads_total", "Workload saga transitions seen by the owning service", ["service", "event"])
WORKLOADS_FAILED = Counter("avatar_workloads_failed_total", "Failed workloads by reason", ["reason"])
EVENT_LOOP_LAG = prometheus_client.Histogram(
    "avatar_event_loop_lag_seconds", "How late the event loop ran a timer: the wait a request or event had "
    "before this process got to it", ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
HTTP_REQUEST_SECONDS = prometheus_client.Histogram(
    "avatar_http_request_duration_seconds", "Time an HTTP request spent inside the service, from the app being "
    "called to the response's last byte", ["service", "method", "route", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SAGA_STEP_SECONDS = Histogram(
    "avatar_saga_step_seconds", "Time between consecutive saga steps of a workload", ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)

DEPENDENCIES = ("postgresql", "redis", "rabbitmq", "s3")  # the servers a request may find away
DEPENDENCY_UNAVAILABLE = prometheus_client.Counter(
    "avatar_dependency_unavailable_total", "Requests answered 503 because a server they need (postgresql, redis, "
    "rabbitmq, s3) was away", ["service", "dependency"])


def initialise(service: str) -> None:
    """Create this service's series at start, so dashboards and alerts see 0 instead of no data."""
    for family in (CONSUMER_RETRIES, DEAD_LETTERED, OUTBOX_PENDING, OUTBOX_OLDEST_AGE, DLQ_DEPTH):
        family.labels(service)
    for dependency in DEPENDENCIES:
        DEPENDENCY_UNAVAILABLE.labels(service, dependency)
