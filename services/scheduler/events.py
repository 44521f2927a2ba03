"""Event handlers: each runs in the kit's transaction (inbox + state + outbox commit together)."""
from __future__ import annotations

from contracts.events import ComponentChanged, Event, LoopTestRequested, WorkloadApproved, WorkloadCancelRequested
from services.kit.messaging import EventBus, HandlerContext
from services.kit.telemetry import inject_headers
from services.kit.wakeups import Wakeups
from services.scheduler import commands, store
from services.scheduler.settings import SchedulerSettings


def register(bus: EventBus, settings: SchedulerSettings, wakeups: Wakeups) -> None:
    async def on_workload_approved(event: Event, ctx: HandlerContext) -> None:
        approved: WorkloadApproved = event.data
        # the consume span's context is kept with the job, so its component runs join this trace
        await commands.accept_workload(ctx.conn, _emitter(ctx), approved, settings, inject_headers(), wakeups)

    async def on_looptest_requested(event: Event, ctx: HandlerContext) -> None:
        request: LoopTestRequested = event.data
        await commands.accept_looptest(ctx.conn, _emitter(ctx), request, event.occurred_at, settings,
                                       inject_headers(), wakeups)

    async def on_cancel_requested(event: Event, ctx: HandlerContext) -> None:
        requested: WorkloadCancelRequested = event.data
        await commands.cancel(ctx.conn, _emitter(ctx), requested.workload_id, requested.requested_by,
                              remember_unknown=True, wakeups=wakeups)

    async def on_component_changed(event: Event, ctx: HandlerContext) -> None:
        changed: ComponentChanged = event.data
        await store.upsert_component(ctx.conn, changed.component)

    bus.on("workload.approved", on_workload_approved)
    bus.on("looptest.requested", on_looptest_requested)
    bus.on("workload.cancel_requested", on_cancel_requested)
    bus.on("component.registered", on_component_changed)
    bus.on("component.updated", on_component_changed)


def _emitter(ctx: HandlerContext) -> commands.Emit:
    async def emit(event_type, payload):
        return await ctx.emit(event_type, payload)

    return emit
