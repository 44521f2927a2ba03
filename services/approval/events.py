"""The approval service's consumers, and the sweep that ends loop tests nobody answered."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from pydantic import BaseModel

from contracts.events import Event, LoopTestCompleted, WorkloadCancelRequested
from contracts.workload import Workload
from services.approval import store
from services.approval.domain import ApprovalRequest, Conflict
from services.kit import metrics
from services.kit.messaging import EventBus, HandlerContext, PermanentError
from services.kit.service import Platform
from services.kit.telemetry import continue_workload_trace

log = logging.getLogger(__name__)
SERVICE = "approval"
Emit = Callable[[str, BaseModel, str], Awaitable[object]]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def count(event_type: str, payload: BaseModel) -> None:
    """avatar_workloads_total{service="approval"}: received, approval_required, approved, auto_approved, …
    (`submitted` is counted once, by the trainer, which owns the request)."""
    name = {"approval.required": "approval_required", "workload.rejected": "rejected",
            "workload.cancelled": "cancelled", "looptest.requested": "looptest_requested",
            "looptest.passed": "looptest_passed", "looptest.failed": "looptest_failed"}.get(event_type)
    if event_type == "workload.approved":
        name = "auto_approved" if payload.auto else "approved"  # type: ignore[attr-defined]
    if name:
        metrics.WORKLOADS.labels(SERVICE, name).inc()


async def emit_recorded(request: ApprovalRequest, emit: Emit) -> list[tuple[str, BaseModel]]:
    """Hand the events the request recorded to the outbox (in the caller's transaction)."""
    recorded, request.events = request.events, []
    for event_type, payload in recorded:
        await emit(event_type, payload, request.workload_id)
    return recorded


def _handler_emit(ctx: HandlerContext) -> Emit:
    return lambda event_type, payload, workload_id: ctx.emit(event_type, payload, correlation_id=workload_id)


async def on_training_requested(event: Event, ctx: HandlerContext) -> None:
    workload: Workload = event.data  # type: ignore[assignment]
    if not workload.spec.components():
        raise PermanentError(f"workload {workload.workload_id} has no components to run")
    request = ApprovalRequest.receive(workload, await store.thresholds(ctx.conn), _now())
    if not await store.insert_request(ctx.conn, request):
        log.info("training request %s is already known; duplicate ignored", workload.workload_id)
        return
    metrics.WORKLOADS.labels(SERVICE, "received").inc()
    if workload.test_run_ref and request.needs_approval:
        await _attach_reference(ctx, request, workload.test_run_ref)
    for event_type, payload in await emit_recorded(request, _handler_emit(ctx)):
        count(event_type, payload)


async def _attach_reference(ctx: HandlerContext, request: ApprovalRequest, test_run_id: str) -> None:
    """A test result named at submission is attached under the same rules as the attach endpoint."""
    run = await store.find_test_run(ctx.conn, test_run_id)
    try:
        if run is None:
            raise Conflict(f"test run {test_run_id} does not exist")
        request.attach(run)
    except Conflict as exc:
        log.warning("testRunRef of %s not attached: %s", request.workload_id, exc)
        return
    await store.save_request(ctx.conn, request)


async def on_loop_test_completed(event: Event, ctx: HandlerContext) -> None:
    data: LoopTestCompleted = event.data  # type: ignore[assignment]
    run = await store.find_test_run(ctx.conn, data.test_run_id)
    if run is None or run.workload_id != data.workload_id:
        raise PermanentError(f"no test run {data.test_run_id} of workload {data.workload_id} was requested")
    # lock order everywhere: the request, then its test run
    request = await store.find_request(ctx.conn, run.workload_id, for_update=True)
    run = await store.find_test_run(ctx.conn, data.test_run_id, for_update=True)
    try:
        judged = run.complete(data, _now())
    except ValueError as exc:
        raise PermanentError(str(exc)) from None
    if not judged:
        log.info("test run %s was already judged; result ignored", run.test_run_id)
        return
    await store.save_test_run(ctx.conn, run)
    if request is not None and request.record_outcome(run):
        await store.save_request(ctx.conn, request)
        for event_type, payload in await emit_recorded(request, _handler_emit(ctx)):
            count(event_type, payload)


async def on_cancel_requested(event: Event, ctx: HandlerContext) -> None:
    data: WorkloadCancelRequested = event.data  # type: ignore[assignment]
    request = await store.find_request(ctx.conn, data.workload_id, for_update=True)
    if request is None or not request.cancel(data.requested_by, _now()):
        return  # not ours to end: unknown here, already decided, or approved (the scheduler cancels it)
    await store.save_request(ctx.conn, request)
    for event_type, payload in await emit_recorded(request, _handler_emit(ctx)):
        count(event_type, payload)


def register(bus: EventBus) -> None:
    bus.on("training.requested", on_training_requested)
    bus.on("looptest.completed", on_loop_test_completed)
    bus.on("workload.cancel_requested", on_cancel_requested)


async def fail_overdue_tests(platform: Platform, timeout_seconds: int) -> int:
    """Fail every loop test still running after the timeout, so a lost result never blocks a request."""
    now = _now()
    async with platform.pool.acquire() as conn:
        overdue = await store.overdue_test_runs(conn, now - timedelta(seconds=timeout_seconds))
    failed = 0
    for stale in overdue:
        async with platform.transaction() as conn, continue_workload_trace(
                conn, "approval loop-test timeout", stale.workload_id):
            request = await store.find_request(conn, stale.workload_id, for_update=True)
            run = await store.find_test_run(conn, stale.test_run_id, for_update=True)
            if run is None or not run.time_out(timeout_seconds, now):
                continue
            await store.save_test_run(conn, run)
            emitted: list[tuple[str, BaseModel]] = []
            if request is not None and request.record_outcome(run):
                await store.save_request(conn, request)
                emitted = await emit_recorded(request, lambda t, p, w: platform.outbox.emit(
                    conn, t, p, correlation_id=w))
        failed += 1
        for event_type, payload in emitted:
            count(event_type, payload)
        log.warning("loop test %s of %s timed out after %ss", run.test_run_id, run.workload_id, timeout_seconds)
    return failed


async def sweep_overdue_tests(platform: Platform, timeout_seconds: int, every_seconds: float) -> None:
    while True:
        try:
            await fail_overdue_tests(platform, timeout_seconds)
        except Exception as exc:  # the database may be away for a moment; the next round tries again
            log.warning("loop test sweep failed: %s", exc)
        await asyncio.sleep(every_seconds)
