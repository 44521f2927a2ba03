"""The scheduler's handlers: one per command and per consumed event, each in a unit of work.

Accepting work and cancelling it change PostgreSQL only; Redis (the queue mirror) is brought in
line afterwards by the engine (engine/recovery.py), so a Redis outage never loses an approval.
An event handler runs in the consumer's transaction (inbox claim, state and outbox commit together).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from contracts.events import (ComponentChanged, Event, LoopTestRequested, NodeStatusChanged, QueueChanged,
                             WorkloadApproved, WorkloadCancelRequested)
from contracts.topology import NODE_STATUS_CHANGED, QUEUE_CHANGED
from services.kit import metrics
from services.kit.audit import record_decision
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.telemetry import inject_headers
from services.scheduler import domain
from services.scheduler.commands import (AcceptLoopTest, AcceptWorkload, CancelResult, CancelWorkload, RecordComponent,
                                         ReorderQueue, SetNodeStatus)
from services.scheduler.core.queue import QueueEntry
from services.scheduler.domain import Job
from services.scheduler.settings import SchedulerSettings
from services.scheduler.unit_of_work import JobRepository, SchedulerUnitOfWork

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- accepting work

async def accept_workload(command: AcceptWorkload, uow: SchedulerUnitOfWork, settings: SchedulerSettings) -> None:
    workload = command.workload
    # the current span's context (the consume span) is kept with the job, so its component runs join this trace
    job = Job.accept_workload(workload, staging_bucket=settings.staging_bucket, trace_headers=inject_headers())
    async with uow:
        if await uow.jobs.add(job):
            uow.track(job)
            if job.may_run:
                uow.wake_engine()
                metrics.WORKLOADS.labels("scheduler", "queued").inc()
            else:
                metrics.WORKLOADS.labels("scheduler", "failed").inc()
                metrics.WORKLOADS_FAILED.labels("empty_spec").inc()
        else:
            existing = await uow.jobs.get(job.job_id, lock=True)
            if existing is not None and existing.is_tombstone:
                existing.approve_after_cancel(workload)  # the cancel overtook the approval
                if await uow.jobs.approve_after_cancel(existing):
                    uow.track(existing)
                    metrics.WORKLOADS.labels("scheduler", "cancelled").inc()
            else:
                log.info("workload %s is already known (%s); approval ignored", workload.workload_id,
                         existing.status if existing is not None else "since removed")
        await uow.commit()


async def accept_looptest(command: AcceptLoopTest, uow: SchedulerUnitOfWork, settings: SchedulerSettings) -> None:
    request = command.request
    job = Job.accept_looptest(request, command.requested_at, staging_bucket=settings.staging_bucket,
                              trace_headers=inject_headers())
    async with uow:
        if await uow.jobs.add(job):
            uow.track(job)
            if job.may_run:
                uow.wake_engine()
        else:
            log.info("loop test %s of %s is already known; request ignored", request.test_run_id, request.workload_id)
        await uow.commit()


# ---------------------------------------------------------------- cancelling

async def cancel_workload(command: CancelWorkload, uow: SchedulerUnitOfWork, queue: Any) -> CancelResult:
    """A person's cancel: only the requester or an admin, only of a workload that is known."""
    workload_id = command.workload_id
    async with uow:
        job = await uow.jobs.get(domain.workload_job_id(workload_id))
        if job is None or job.state.workload is None:
            raise NotFound(f"workload {workload_id} not found")
        if not command.is_admin and command.by != job.state.requester:
            raise Forbidden(f"only the requester ({job.state.requester}) or an admin may cancel workload {workload_id}")
        async with uow.continue_trace("scheduler cancel", workload_id):
            result = await _cancel(uow, workload_id, command.by, remember_unknown=False)
            if result.outcome in ("cancelled", "stopping") and job.status != "stopping":  # a repeat decides nothing
                record_decision(uow, action="scheduler.cancel", actor=command.by, actor_role=command.role,
                                target_type="workload", target_id=workload_id,
                                before={"status": job.status}, after={"status": result.status})
            await uow.commit()
    if result.outcome == "terminal":
        raise Conflict(f"workload {workload_id} is already {result.status}; it cannot be cancelled")
    if result.outcome == "unknown":
        raise NotFound(f"workload {workload_id} not found")
    if result.outcome == "cancelled":
        await queue.remove(domain.workload_job_id(workload_id))  # the engine's sync would too, later
    return result


async def _cancel(uow: SchedulerUnitOfWork, workload_id: str, by: str, *, remember_unknown: bool) -> CancelResult:
    """Waiting work ends at once; running work is marked stopping, and the engine stops its runs,
    releases its allocations and then publishes the outcome. `remember_unknown`: a cancel for a
    workload not approved yet is kept, so a later approval ends cancelled instead of running."""
    reason = f"cancelled by {by}"
    for test in await uow.jobs.looptests_of(workload_id):
        if not test.may_run:
            continue
        waiting = test.status == "waiting"
        test.begin_stopping("cancelled", stage="cancel", reason=reason, cancelled_by=by)
        if await uow.jobs.begin_stopping(test) and waiting:  # nothing live: it ends here
            test.finish(await uow.jobs.skip_pending(test), {})
            if await uow.jobs.finish(test):
                uow.track(test)
    job = await uow.jobs.get(domain.workload_job_id(workload_id), lock=True)
    result: CancelResult
    if job is None:
        if remember_unknown:
            await uow.jobs.add(Job.cancelled_before_approval(workload_id, by, uow.now()))
            result = CancelResult("recorded", "cancelled")
        else:
            result = CancelResult("unknown")
    elif job.status == "waiting":
        job.cancel_waiting(by)
        await uow.jobs.cancel_waiting(job)
        uow.track(job)
        await uow.jobs.skip_round(job.job_id, None, reason)
        metrics.WORKLOADS.labels("scheduler", "cancelled").inc()
        metrics.WORKLOADS_FAILED.labels("cancelled").inc()
        result = CancelResult("cancelled", job.status)
    elif job.status == "running":
        job.begin_stopping("cancelled", stage="cancel", reason=reason, cancelled_by=by)
        await uow.jobs.begin_stopping(job)
        result = CancelResult("stopping", "stopping")
    elif job.status == "stopping":  # already ending: a cancel only joins a cancellation
        result = CancelResult("stopping" if job.state.outcome == "cancelled" else "terminal", job.state.outcome)
    else:
        result = CancelResult("terminal", job.status)
    uow.wake_engine()
    return result


# ---------------------------------------------------------------- the queue and the nodes

async def reorder_queue(command: ReorderQueue, uow: SchedulerUnitOfWork, queue: Any,
                        sync_queue: Callable[[], Awaitable[None]]) -> tuple[QueueEntry, int]:
    """Move a waiting workload in Redis, then keep every rank of its class in PostgreSQL, so a rebuilt
    queue has the same order. Returns its entry and position."""
    workload_id = command.workload_id
    target = command.before or command.after
    async with uow.statement():  # reads only: no transaction held across Redis and the mirror's own
        await _require_waiting(uow.jobs, workload_id)
        if target == workload_id:
            raise Invalid("a workload cannot be placed before or after itself")
        if target is not None:
            await _require_waiting(uow.jobs, target)
    await sync_queue()  # the entry may not be mirrored into Redis yet
    was = _place(await queue.list(), workload_id)
    if command.priority is not None and not await queue.reprioritise(workload_id, command.priority):
        raise Conflict(f"workload {workload_id} is no longer waiting")
    if target is not None and not await queue.move(workload_id, before=command.before, after=command.after):
        raise Conflict(f"workload {workload_id} or {target} is no longer waiting")
    entries = await queue.list()
    entry = next((e for e in entries if e.workload_id == workload_id), None)
    if entry is None:
        raise Conflict(f"workload {workload_id} is no longer waiting")
    async with uow:
        await uow.tables.set_queue_positions(
            (other.workload_id, other.priority.value, other.rank) for other in entries if other.priority == entry.priority)
        now = _place(entries, workload_id)
        if command.by is not None and now != was:
            after = {**now, **({"placed_before": command.before} if command.before else {}),
                     **({"placed_after": command.after} if command.after else {})}
            record_decision(uow, action="scheduler.queue_move" if target is not None else "scheduler.priority_change",
                            actor=command.by, actor_role=command.role, target_type="workload",
                            target_id=workload_id, before=was, after=after)
            uow.record(QUEUE_CHANGED, QueueChanged(workload_id=workload_id, priority=entry.priority.value,
                                                   action="move" if target is not None else "priority",
                                                   position=now["position"], changed_by=command.by),
                       correlation_id=workload_id)  # the console's queue redraws live
        uow.wake_engine()
        await uow.commit()
    return entry, now["position"]


def _place(entries: list[QueueEntry], workload_id: str) -> dict[str, Any]:
    """A waiting workload's priority class and 1-based position in the whole queue (for the audit record)."""
    for position, entry in enumerate(entries, start=1):
        if entry.workload_id == workload_id:
            return {"priority": entry.priority.value, "position": position}
    return {"priority": None, "position": None}


async def _require_waiting(jobs: JobRepository, workload_id: str) -> None:
    job = await jobs.get(domain.workload_job_id(workload_id))
    if job is None or job.state.workload is None:
        raise NotFound(f"workload {workload_id} not found")
    if job.status != "waiting":
        raise Conflict(f"workload {workload_id} is {job.status}: only waiting work can be reordered "
                       "(running work is never preempted)")


NODE_ACTIONS = {"Active": "scheduler.node_activate", "Drain": "scheduler.node_drain", "Down": "scheduler.node_down"}


async def set_node_status(command: SetNodeStatus, uow: SchedulerUnitOfWork, allocator: Any) -> None:
    """Durable in PostgreSQL (a rebuilt Redis inventory keeps it), applied to the allocator at once."""
    snapshot = await allocator.snapshot()
    node = next((n for n in snapshot.nodes if n.name == command.name), None)
    if node is None:
        raise NotFound(f"node {command.name} not found")
    async with uow:
        await uow.tables.set_node_override(command.name, command.status, command.by)
        await allocator.set_node_status(command.name, command.status)
        before = getattr(node.status, "value", node.status)
        if before != command.status:
            record_decision(uow, action=NODE_ACTIONS[command.status], actor=command.by, actor_role=command.role,
                            target_type="node", target_id=command.name,
                            before={"status": before}, after={"status": command.status})
            uow.record(NODE_STATUS_CHANGED, NodeStatusChanged(name=command.name, status=command.status, previous=before,
                                                              changed_by=command.by),
                       correlation_id=command.name)  # the console's resource screen redraws live
        uow.wake_engine()
        await uow.commit()


async def record_component(command: RecordComponent, uow: SchedulerUnitOfWork) -> None:
    async with uow:
        await uow.tables.record_component(command.component, command.published_at)
        await uow.commit()


# ---------------------------------------------------------------- consumed events

async def on_workload_approved(event: Event, uow: SchedulerUnitOfWork, settings: SchedulerSettings) -> None:
    approved: WorkloadApproved = event.data
    await accept_workload(AcceptWorkload(approved.workload), uow, settings)


async def on_looptest_requested(event: Event, uow: SchedulerUnitOfWork, settings: SchedulerSettings) -> None:
    request: LoopTestRequested = event.data
    await accept_looptest(AcceptLoopTest(request, event.occurred_at), uow, settings)


async def on_cancel_requested(event: Event, uow: SchedulerUnitOfWork) -> None:
    requested: WorkloadCancelRequested = event.data
    async with uow:
        await _cancel(uow, requested.workload_id, requested.requested_by, remember_unknown=True)
        await uow.commit()


async def on_component_changed(event: Event, uow: SchedulerUnitOfWork) -> None:
    changed: ComponentChanged = event.data
    await record_component(RecordComponent(changed.component, event.occurred_at), uow)


COMMANDS = {
    AcceptWorkload: accept_workload,
    AcceptLoopTest: accept_looptest,
    CancelWorkload: cancel_workload,
    ReorderQueue: reorder_queue,
    SetNodeStatus: set_node_status,
    RecordComponent: record_component,
}
EVENTS = {
    "workload.approved": on_workload_approved,
    "looptest.requested": on_looptest_requested,
    "workload.cancel_requested": on_cancel_requested,
    "component.registered": on_component_changed,
    "component.updated": on_component_changed,
}
