"""Accepting work and cancelling it: PostgreSQL writes plus the events they cause, in the
caller's transaction (an event handler's or an HTTP request's). Redis is brought in line
afterwards by the engine (see engine/recovery.py), so a Redis outage never loses an approval.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable, Literal

import asyncpg
from pydantic import BaseModel

from contracts.events import LoopTestRequested, WorkloadApproved, WorkloadCancelled, WorkloadFailed, WorkloadQueued
from services.kit import metrics
from services.kit.wakeups import Wakeups
from services.scheduler import domain, store
from services.scheduler.outcomes import looptest_completed
from services.scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)
Emit = Callable[[str, BaseModel], Awaitable[object]]


async def accept_workload(conn: asyncpg.Connection, emit: Emit, approved: WorkloadApproved,
                          settings: SchedulerSettings, trace_headers: dict, wakeups: Wakeups) -> None:
    workload = approved.workload
    job_id = domain.workload_job_id(workload.workload_id)
    wire = workload.to_wire()
    limit = domain.max_runtime_seconds(workload)
    empty = not workload.spec.components()
    created = await store.insert_job(
        conn, job_id=job_id, kind="workload", workload_id=workload.workload_id, workload=wire,
        priority=workload.priority, queue_rank=workload.submitted_at.timestamp(), requester=workload.requester,
        name=workload.name or workload.spec.name, status="failed" if empty else "waiting",
        submitted_at=workload.submitted_at, max_runtime_s=limit, trace_headers=trace_headers)
    if not created:
        existing = await store.get_job(conn, job_id, lock=True)
        if existing is not None and existing["workload"] is None and existing["status"] == "cancelled":
            # the cancel overtook the approval: the workload ends here, cancelled, exactly once
            await store.fill_tombstone(conn, job_id, workload=wire, priority=workload.priority,
                                       requester=workload.requester, name=workload.name or workload.spec.name,
                                       submitted_at=workload.submitted_at, max_runtime_s=limit)
            await emit("workload.cancelled", WorkloadCancelled(
                workload_id=workload.workload_id, cancelled_by=existing["cancelled_by"] or "unknown",
                was_running=False))
            metrics.WORKLOADS.labels("scheduler", "cancelled").inc()
        else:
            log.info("workload %s is already known (%s); approval ignored", workload.workload_id,
                     existing["status"] if existing is not None else "since removed")
        return
    if empty:
        await conn.execute("UPDATE jobs SET outcome = 'failed', failure_stage = 'queue', failure_reason = $2"
                           " WHERE job_id = $1", job_id, "the App spec has no components to run")
        await emit("workload.failed", WorkloadFailed(workload_id=workload.workload_id, stage="queue",
                                                      reason="the App spec has no components to run"))
        metrics.WORKLOADS.labels("scheduler", "failed").inc()
        metrics.WORKLOADS_FAILED.labels("empty_spec").inc()
        return
    await store.insert_runs(conn, job_id, domain.plan_runs(
        workload.spec, job_id=job_id, workload_id=workload.workload_id, staging_bucket=settings.staging_bucket))
    wakeups.after_commit(conn, store.WAKE_CHANNEL)
    await emit("workload.queued", WorkloadQueued(workload_id=workload.workload_id, priority=workload.priority))
    metrics.WORKLOADS.labels("scheduler", "queued").inc()


async def accept_looptest(conn: asyncpg.Connection, emit: Emit, request: LoopTestRequested, requested_at: datetime,
                          settings: SchedulerSettings, trace_headers: dict, wakeups: Wakeups) -> None:
    workload = request.workload
    job_id = domain.looptest_job_id(request.workload_id, request.test_run_id)
    rounds = request.episodes if request.mode == "general" else 1
    created = await store.insert_job(
        conn, job_id=job_id, kind="looptest", workload_id=request.workload_id, workload=workload.to_wire(),
        priority="high", queue_rank=domain.looptest_rank(requested_at.timestamp()), requester=request.requested_by,
        name=workload.name or workload.spec.name, status="waiting", submitted_at=requested_at,
        max_runtime_s=domain.job_runtime_limit(workload, rounds), trace_headers=trace_headers,
        test_run_id=request.test_run_id, mode=request.mode, rounds=rounds,
        episodes=request.episodes if request.mode == "rl" else None)
    if not created:
        log.info("loop test %s of %s is already known; request ignored", request.test_run_id, request.workload_id)
        return
    if not workload.spec.components():
        await store.begin_stopping(conn, job_id, outcome="failed", stage="loop_test",
                                   reason="the App spec has no components to run")
        job = await store.finalize(conn, job_id)
        await emit("looptest.completed", looptest_completed(job, [], {}))
        return
    await store.insert_runs(conn, job_id, domain.plan_runs(
        workload.spec, job_id=job_id, workload_id=request.workload_id, staging_bucket=settings.staging_bucket,
        rounds=rounds, test_run_id=request.test_run_id))
    wakeups.after_commit(conn, store.WAKE_CHANNEL)
    await emit("workload.queued", WorkloadQueued(workload_id=request.workload_id, priority="high", loop_test=True))


@dataclass(frozen=True)
class CancelResult:
    outcome: Literal["cancelled", "stopping", "terminal", "unknown", "recorded"]
    status: str | None = None


async def cancel(conn: asyncpg.Connection, emit: Emit, workload_id: str, by: str, *,
                 remember_unknown: bool, wakeups: Wakeups) -> CancelResult:
    """Cancel a workload (and any loop test of it still going). Waiting work ends at once;
    running work is marked stopping and the engine stops its runs, releases its allocations
    and then publishes workload.cancelled. `remember_unknown`: a cancel for a workload not
    approved yet is kept, so a later approval ends cancelled instead of running."""
    for test in await store.looptests_of(conn, workload_id):
        if test["status"] == "waiting":
            await store.begin_stopping(conn, test["job_id"], outcome="cancelled", stage="cancel",
                                       reason=f"cancelled by {by}", cancelled_by=by)
            await store.skip_runs(conn, test["job_id"], reason=f"cancelled by {by}")
            job = await store.finalize(conn, test["job_id"])
            runs = (await store.runs_of(conn, [test["job_id"]]))[test["job_id"]]
            await emit("looptest.completed", looptest_completed(job, runs, {}))
        elif test["status"] == "running":
            await store.begin_stopping(conn, test["job_id"], outcome="cancelled", stage="cancel",
                                       reason=f"cancelled by {by}", cancelled_by=by)
    job_id = domain.workload_job_id(workload_id)
    job = await store.get_job(conn, job_id, lock=True)
    result: CancelResult
    if job is None:
        if remember_unknown:
            await store.insert_job(
                conn, job_id=job_id, kind="workload", workload_id=workload_id, workload=None, priority="normal",
                queue_rank=0, requester="", name="", status="cancelled", submitted_at=datetime.now().astimezone(),
                max_runtime_s=1, trace_headers={}, cancelled_by=by)
            result = CancelResult("recorded", "cancelled")
        else:
            result = CancelResult("unknown")
    elif job["status"] == "waiting":
        row = await store.cancel_waiting(conn, job_id, by)
        await emit("workload.cancelled", WorkloadCancelled(workload_id=workload_id, cancelled_by=by, was_running=False))
        await store.skip_runs(conn, job_id, reason=f"cancelled by {by}")
        metrics.WORKLOADS.labels("scheduler", "cancelled").inc()
        metrics.WORKLOADS_FAILED.labels("cancelled").inc()
        result = CancelResult("cancelled", row["status"])
    elif job["status"] == "running":
        await store.begin_stopping(conn, job_id, outcome="cancelled", stage="cancel", reason=f"cancelled by {by}",
                                   cancelled_by=by)
        result = CancelResult("stopping", "stopping")
    elif job["status"] == "stopping":  # already ending: a cancel only joins a cancellation
        result = CancelResult("stopping" if job["outcome"] == "cancelled" else "terminal", job["outcome"])
    else:
        result = CancelResult("terminal", job["status"])
    wakeups.after_commit(conn, store.WAKE_CHANNEL)
    return result
