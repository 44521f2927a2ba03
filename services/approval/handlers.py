"""The approval service's handlers: one small function per command and per consumed event.

HTTP routes (api.py), the broker (through the message bus) and the overdue-test sweep all come here;
each handler loads what it changes through its unit of work, lets the domain decide, and commits:
the commit publishes what the approval request recorded.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Iterable

from contracts.events import Event, LoopTestCompleted, WorkloadCancelRequested
from contracts.workload import Workload
from services.approval import commands, domain
from services.approval.domain import ApprovalRequest, Conflict
from services.approval.settings import ApprovalSettings
from services.approval.unit_of_work import ApprovalUnitOfWork
from services.kit import metrics
from services.kit.audit import record_decision
from services.kit.errors import Forbidden, Invalid, NotFound
from services.kit.messagebus import MessageBus
from services.kit.messaging import PermanentError

log = logging.getLogger(__name__)
SERVICE = "approval"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def count(published: Iterable[Event]) -> None:
    """avatar_workloads_total{service="approval"}: received, approval_required, approved, auto_approved, …
    (`submitted` is counted once, by the trainer, which owns the request)."""
    for event in published:
        name = {"approval.required": "approval_required", "workload.rejected": "rejected",
                "workload.cancelled": "cancelled", "looptest.requested": "looptest_requested",
                "looptest.passed": "looptest_passed", "looptest.failed": "looptest_failed"}.get(event.type)
        if event.type == "workload.approved":
            name = "auto_approved" if event.data.auto else "approved"
        if name:
            metrics.WORKLOADS.labels(SERVICE, name).inc()


async def _commit(uow: ApprovalUnitOfWork) -> None:
    """Commit, then count and log what went out (counts land once the transaction has committed)."""
    published = await uow.commit()
    count(published)
    for event in published:
        log.info("%s: %s", event.correlation_id, event.type)


async def _request(uow: ApprovalUnitOfWork, workload_id: str) -> ApprovalRequest:
    request = await uow.requests.get(workload_id, lock=True)
    if request is None:
        raise NotFound(f"approval request {workload_id} not found")
    return request


def _require_developer(request: ApprovalRequest, user: str, is_admin: bool, action: str) -> None:
    if not request.may_act(user, is_admin):
        raise Forbidden(f"only an admin or the requester ({request.workload.requester}) may {action}")


def _loop_test_state(request: ApprovalRequest) -> dict:
    """What an audit record shows of a request's loop test: its status and run, not its results."""
    return {"loop_test_status": request.loop_test.status if request.loop_test else None,
            "test_run_id": request.test_run_id}


async def _decide(uow: ApprovalUnitOfWork, request: ApprovalRequest) -> None:
    """A person's decision: the request is written and its events published only when it changed."""
    if request.events:
        await uow.requests.save(request)
    await _commit(uow)


# ---------------------------------------------------------------------- commands (people, sweeps)

async def set_thresholds(command: commands.SetThresholds, uow: ApprovalUnitOfWork) -> None:
    async with uow:
        before = await uow.thresholds.get()
        after = domain.Thresholds(gpu_count=command.gpu_count, memory=command.memory)
        await uow.thresholds.set(after, command.by)
        if after != before:
            record_decision(uow, action="approval.threshold_change", actor=command.by, actor_role=command.role,
                            target_type="threshold", target_id="approval",
                            before={"gpu_count": before.gpu_count, "memory": before.memory},
                            after={"gpu_count": after.gpu_count, "memory": after.memory})
        await uow.commit()


# Each decision is a span `approval <action>` in the workload's own trace (a child of the consumer span
# of the last event about it here), so the events it publishes continue the request's trace; the
# person's HTTP request keeps its own trace and the two spans link to each other.

async def run_loop_test(command: commands.RunLoopTest, uow: ApprovalUnitOfWork,
                        settings: ApprovalSettings) -> ApprovalRequest:
    async with uow, uow.continue_trace("approval loop-test", command.workload_id):
        request = await _request(uow, command.workload_id)
        _require_developer(request, command.by, command.is_admin, "run its loop test")
        before = _loop_test_state(request)
        rl = domain.loop_test_mode(request.workload) == "rl"
        episodes = command.episodes or (settings.loop_test_rl_episodes if rl else settings.loop_test_general_runs)
        if rl and episodes < 3:
            raise Invalid("an RL loop test needs at least 3 episodes to judge convergence", code="too_few_episodes")
        run = request.start_loop_test(test_run_id="LT-" + secrets.token_hex(4).upper(), episodes=episodes,
                                      by=command.by, now=_now())
        await uow.test_runs.add(run)
        record_decision(uow, action="approval.loop_test_run", actor=command.by, actor_role=command.role,
                        target_type="workload", target_id=request.workload_id, before=before,
                        after={**_loop_test_state(request), "mode": run.mode, "episodes": episodes})
        await _decide(uow, request)
    return request


async def attach_test_run(command: commands.AttachTestRun, uow: ApprovalUnitOfWork) -> ApprovalRequest:
    async with uow, uow.continue_trace("approval attach", command.workload_id):
        request = await _request(uow, command.workload_id)
        _require_developer(request, command.by, command.is_admin, "attach a test result")
        run = await uow.test_runs.get(command.test_run_id)
        if run is None:
            raise NotFound(f"test run {command.test_run_id} not found")
        before = _loop_test_state(request)
        request.attach(run)
        record_decision(uow, action="approval.loop_test_attach", actor=command.by, actor_role=command.role,
                        target_type="workload", target_id=request.workload_id, before=before,
                        after=_loop_test_state(request))
        await _decide(uow, request)
    return request


async def approve_request(command: commands.ApproveRequest, uow: ApprovalUnitOfWork) -> ApprovalRequest:
    async with uow, uow.continue_trace("approval approve", command.workload_id):
        request = await _request(uow, command.workload_id)
        before = request.status
        if request.approve(command.by, _now()):  # approving twice is one decision, recorded once
            record_decision(uow, action="approval.approve", actor=command.by, actor_role=command.role,
                            target_type="workload", target_id=request.workload_id,
                            before={"status": before}, after={"status": request.status})
        await _decide(uow, request)
    return request


async def reject_request(command: commands.RejectRequest, uow: ApprovalUnitOfWork) -> ApprovalRequest:
    async with uow, uow.continue_trace("approval reject", command.workload_id):
        request = await _request(uow, command.workload_id)
        before = request.status
        if request.reject(command.by, command.comment, _now()):
            record_decision(uow, action="approval.reject", actor=command.by, actor_role=command.role,
                            target_type="workload", target_id=request.workload_id, comment=command.comment,
                            before={"status": before}, after={"status": request.status})
        await _decide(uow, request)
    return request


async def fail_overdue_tests(command: commands.FailOverdueTests, uow: ApprovalUnitOfWork) -> int:
    """One unit per overdue test: a request stuck on one cannot hold back the others."""
    now = _now()
    async with uow.statement():
        overdue = await uow.test_runs.overdue(now - timedelta(seconds=command.timeout_seconds))
    failed = 0
    for stale in overdue:
        async with uow, uow.continue_trace("approval loop-test timeout", stale.workload_id):
            # lock order everywhere: the request, then its test run
            request = await uow.requests.get(stale.workload_id, lock=True)
            run = await uow.test_runs.get(stale.test_run_id, lock=True)
            if run is None or not run.time_out(command.timeout_seconds, now):
                continue
            await uow.test_runs.save(run)
            if request is not None and request.record_outcome(run):
                await uow.requests.save(request)
            await _commit(uow)
        failed += 1
        log.warning("loop test %s of %s timed out after %ss", run.test_run_id, run.workload_id,
                    command.timeout_seconds)
    return failed


# ---------------------------------------------------------------------- events (the broker)

async def on_training_requested(event: Event, uow: ApprovalUnitOfWork) -> None:
    if event.producer != "trainer":
        return  # another system's request: the trainer checks it and publishes what it accepts as its own
    workload: Workload = event.data  # type: ignore[assignment]
    if not workload.spec.components():
        raise PermanentError(f"workload {workload.workload_id} has no components to run")
    async with uow:
        request = ApprovalRequest.receive(workload, await uow.thresholds.get(), _now())
        if not await uow.requests.add(request):
            log.info("training request %s is already known; duplicate ignored", workload.workload_id)
            return
        metrics.WORKLOADS.labels(SERVICE, "received").inc()
        if workload.test_run_ref and request.needs_approval:
            await _attach_reference(uow, request, workload.test_run_ref)
        await _commit(uow)


async def _attach_reference(uow: ApprovalUnitOfWork, request: ApprovalRequest, test_run_id: str) -> None:
    """A test result named at submission is attached under the same rules as the attach endpoint."""
    run = await uow.test_runs.get(test_run_id)
    try:
        if run is None:
            raise Conflict(f"test run {test_run_id} does not exist")
        request.attach(run)
    except Conflict as exc:
        log.warning("testRunRef of %s not attached: %s", request.workload_id, exc)
        return
    await uow.requests.save(request)


async def on_loop_test_completed(event: Event, uow: ApprovalUnitOfWork) -> None:
    data: LoopTestCompleted = event.data  # type: ignore[assignment]
    async with uow:
        run = await uow.test_runs.get(data.test_run_id)
        if run is None or run.workload_id != data.workload_id:
            raise PermanentError(f"no test run {data.test_run_id} of workload {data.workload_id} was requested")
        # lock order everywhere: the request, then its test run
        request = await uow.requests.get(run.workload_id, lock=True)
        run = await uow.test_runs.get(data.test_run_id, lock=True)
        try:
            judged = run.complete(data, _now())  # type: ignore[union-attr]
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        if not judged:
            log.info("test run %s was already judged; result ignored", data.test_run_id)
            return
        await uow.test_runs.save(run)  # type: ignore[arg-type]
        if request is not None and request.record_outcome(run):  # type: ignore[arg-type]
            await uow.requests.save(request)
        await _commit(uow)


async def on_cancel_requested(event: Event, uow: ApprovalUnitOfWork) -> None:
    data: WorkloadCancelRequested = event.data  # type: ignore[assignment]
    async with uow:
        request = await uow.requests.get(data.workload_id, lock=True)
        if request is None or not request.cancel(data.requested_by, _now()):
            return  # not ours to end: unknown here, already decided, or approved (the scheduler cancels it)
        await uow.requests.save(request)
        await _commit(uow)


COMMANDS = {
    commands.SetThresholds: set_thresholds,
    commands.RunLoopTest: run_loop_test,
    commands.AttachTestRun: attach_test_run,
    commands.ApproveRequest: approve_request,
    commands.RejectRequest: reject_request,
    commands.FailOverdueTests: fail_overdue_tests,
}
EVENTS = {
    "training.requested": on_training_requested,
    "looptest.completed": on_loop_test_completed,
    "workload.cancel_requested": on_cancel_requested,
}


async def sweep_overdue_tests(bus: MessageBus, timeout_seconds: int, every_seconds: float) -> None:
    while True:
        try:
            await bus.handle(commands.FailOverdueTests(timeout_seconds))
        except Exception as exc:  # the database may be away for a moment; the next round tries again
            log.warning("loop test sweep failed: %s", exc)
        await asyncio.sleep(every_seconds)
