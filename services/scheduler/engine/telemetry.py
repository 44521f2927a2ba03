"""The engine's spans and metrics, and events published in the trace of the job they are about."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping, Sequence

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from pydantic import BaseModel

from contracts.events import make_event
from services.kit import metrics as kit_metrics
from services.kit.outbox import Outbox
from services.kit.telemetry import (correlation_id, extract_context, in_trace, inject_headers, start_workload_span,
                                   workload_span)
from services.scheduler import metrics as m
from services.scheduler.core.allocator import ClusterSnapshot

FAILURE_LABEL = {"run": "component_failed", "timeout": "timeout", "allocation": "unplaceable",
                 "cancel": "cancelled", "loop_test": "loop_test", "queue": "queue"}


async def emit(outbox: Outbox, conn: asyncpg.Connection, job: Mapping[str, Any], event_type: str,
               payload: BaseModel) -> None:
    """Publish in the current span (a job span), else with the job's trace context, so the event
    joins the request's trace."""
    if in_trace():
        await outbox.emit(conn, event_type, payload, correlation_id=job["workload_id"])
        return
    token = otel_context.attach(extract_context(job["trace_headers"]))
    try:
        await outbox.emit(conn, event_type, payload, correlation_id=job["workload_id"])
    finally:
        otel_context.detach(token)


def job_span(name: str, job: Mapping[str, Any], *, attributes: Mapping[str, Any] | None = None):
    """A span of the engine's work on one job, in the trace of the event that created the job."""
    return workload_span(name, job["workload_id"], parent=job["trace_headers"] or {},
                         attributes=_job_attributes(job, attributes))


def start_job_span(name: str, job: Mapping[str, Any], *, attributes: Mapping[str, Any] | None = None) -> Span:
    """The same span for one job of a round's batch: not current (the round works on many jobs at
    once); the caller ends it."""
    return start_workload_span(name, job["workload_id"], parent=job["trace_headers"] or {},
                               attributes=_job_attributes(job, attributes))


@contextlib.contextmanager
def in_job_span(span: Span, job: Mapping[str, Any]) -> Iterator[None]:
    """Make a round's span of one job current (and the job's workload bound), so the calls made for
    that job are its children."""
    token = correlation_id.set(job["workload_id"])
    try:
        with trace.use_span(span, end_on_exit=False):
            yield
    finally:
        correlation_id.reset(token)


def _job_attributes(job: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"avatar.job_id": job["job_id"], "avatar.job_kind": job["kind"], **(extra or {})}


async def emit_many(outbox: Outbox, conn: asyncpg.Connection,
                    events: Sequence[tuple[Mapping[str, Any], Span, str, BaseModel]]) -> None:
    """Publish one event per (job, its span, type, payload) in one statement; each event joins its
    job's trace as a child of the job's span."""
    await outbox.add_many(conn, [
        (make_event(event_type, payload, producer=outbox.service, correlation_id=job["workload_id"]),
         inject_headers(span=span)) for job, span, event_type, payload in events])


def describe_outcome(span: Any, job: Mapping[str, Any]) -> None:
    span.set_attribute("avatar.outcome", job["status"])
    if job["failure_stage"]:
        span.set_attribute("avatar.failure_stage", job["failure_stage"])
    if job["status"] == "failed":
        span.set_status(Status(StatusCode.ERROR, (job["failure_reason"] or "failed")[:300]))


def count_end(job: Mapping[str, Any]) -> None:
    if job["started_at"] and job["finished_at"]:
        kit_metrics.SAGA_STEP_SECONDS.labels("run").observe((job["finished_at"] - job["started_at"]).total_seconds())
    if job["kind"] == "looptest":
        m.LOOP_TESTS.labels(job["status"]).inc()
        return
    kit_metrics.WORKLOADS.labels("scheduler", job["status"]).inc()
    if job["status"] in ("failed", "cancelled"):
        kit_metrics.WORKLOADS_FAILED.labels(FAILURE_LABEL.get(job["failure_stage"] or "", "other")).inc()


def export_gauges(snapshot: ClusterSnapshot, entries: Iterable[Any]) -> None:
    depth = {"high": 0, "normal": 0, "low": 0}
    for entry in entries:
        depth[entry.priority.value] += 1
    for priority, count in depth.items():
        m.QUEUE_DEPTH.labels(priority).set(count)
    for gpu_type, totals in snapshot.gpu_types.items():
        m.GPUS.labels(gpu_type, "allocated").set(totals.allocated)
        m.GPUS.labels(gpu_type, "idle").set(totals.free)
