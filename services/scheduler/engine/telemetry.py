"""The engine's spans (each in the trace of the job it works on) and metrics."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from services.kit import metrics as kit_metrics
from services.kit.telemetry import correlation_id, start_workload_span, workload_span
from services.scheduler import metrics as m
from services.scheduler.core.allocator import ClusterSnapshot
from services.scheduler.records import JobRecord

FAILURE_LABEL = {"run": "component_failed", "timeout": "timeout", "allocation": "unplaceable",
                 "cancel": "cancelled", "loop_test": "loop_test", "queue": "queue"}


def job_span(name: str, job: JobRecord, *, attributes: Mapping[str, Any] | None = None):
    """A span of the engine's work on one job, in the trace of the event that created the job."""
    return workload_span(name, job.workload_id, parent=job.trace_headers or {},
                         attributes=_job_attributes(job, attributes))


def start_job_span(name: str, job: JobRecord, *, attributes: Mapping[str, Any] | None = None) -> Span:
    """The same span for one job of a round's batch: not current (the round works on many jobs at
    once); the caller ends it."""
    return start_workload_span(name, job.workload_id, parent=job.trace_headers or {},
                               attributes=_job_attributes(job, attributes))


@contextlib.contextmanager
def in_job_span(span: Span, job: JobRecord) -> Iterator[None]:
    """Make a round's span of one job current (and the job's workload bound), so the calls made for
    that job are its children."""
    token = correlation_id.set(job.workload_id)
    try:
        with trace.use_span(span, end_on_exit=False):
            yield
    finally:
        correlation_id.reset(token)


def _job_attributes(job: JobRecord, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"avatar.job_id": job.job_id, "avatar.job_kind": job.kind, **(extra or {})}


def describe_outcome(span: Any, job: JobRecord) -> None:
    span.set_attribute("avatar.outcome", job.status)
    if job.failure_stage:
        span.set_attribute("avatar.failure_stage", job.failure_stage)
    if job.status == "failed":
        span.set_status(Status(StatusCode.ERROR, (job.failure_reason or "failed")[:300]))


def count_end(job: JobRecord) -> None:
    if job.started_at and job.finished_at:
        kit_metrics.SAGA_STEP_SECONDS.labels("run").observe((job.finished_at - job.started_at).total_seconds())
    if job.kind == "looptest":
        m.LOOP_TESTS.labels(job.status).inc()
        return
    kit_metrics.WORKLOADS.labels("scheduler", job.status).inc()
    if job.status in ("failed", "cancelled"):
        kit_metrics.WORKLOADS_FAILED.labels(FAILURE_LABEL.get(job.failure_stage or "", "other")).inc()


def export_gauges(snapshot: ClusterSnapshot, entries: Iterable[Any]) -> None:
    depth = {"high": 0, "normal": 0, "low": 0}
    for entry in entries:
        depth[entry.priority.value] += 1
    for priority, count in depth.items():
        m.QUEUE_DEPTH.labels(priority).set(count)
    for gpu_type, totals in snapshot.gpu_types.items():
        m.GPUS.labels(gpu_type, "allocated").set(totals.allocated)
        m.GPUS.labels(gpu_type, "idle").set(totals.free)
