"""The trainer's consumers: the ready-apps read model and the saga timeline of every workload."""
from __future__ import annotations

import logging
from typing import Sequence

from contracts.events import AppDeleted, AppSpecCreated, Event
from contracts.topology import SAGA_EVENTS
from contracts.workload import Workload
from services.kit import metrics
from services.kit.inbox import lock_per_workload
from services.kit.messaging import EventBus, HandlerContext
from services.trainer import domain, store

log = logging.getLogger(__name__)
SERVICE = "trainer"


async def on_spec_created(event: Event, ctx: HandlerContext) -> None:
    data: AppSpecCreated = event.data  # type: ignore[assignment]
    await store.record_spec(ctx.conn, data.spec)


async def on_app_deleted(event: Event, ctx: HandlerContext) -> None:
    data: AppDeleted = event.data  # type: ignore[assignment]
    await store.record_deleted(ctx.conn, data.app_id)


async def on_saga_event(event: Event, ctx: HandlerContext) -> None:
    """Append the event to its workload's timeline and fold it into the request's status.

    Runs holding the workload's timeline lock, taken with the inbox claim (`register`)."""
    workload_id: str = event.data.workload_id  # type: ignore[attr-defined]
    recorded = event.type == "training.requested" and event.producer != SERVICE and await _record_request(event, ctx)
    entry = _entry(event)
    [appended] = await store.append(ctx.conn, [(workload_id, entry, domain.transitions(entry))])
    await _folded(ctx, entry, appended, recorded=recorded)


async def on_saga_events(contexts: Sequence[HandlerContext]) -> None:
    """`on_saga_event` for the events of one delivered batch: the first event of each workload appended
    and folded in one statement, the rest in turn after it (a workload's events fold in order)."""
    together: list[tuple[HandlerContext, domain.TimelineEntry]] = []
    after: list[HandlerContext] = []
    workloads: set[str] = set()
    for ctx in contexts:
        workload_id = ctx.event.data.workload_id  # type: ignore[attr-defined]
        foreign_request = ctx.event.type == "training.requested" and ctx.event.producer != SERVICE
        if workload_id in workloads or foreign_request:
            after.append(ctx)
        else:
            together.append((ctx, _entry(ctx.event)))
        workloads.add(workload_id)
    if together:
        appended = await store.append(contexts[0].conn, [
            (ctx.event.data.workload_id, entry, domain.transitions(entry))  # type: ignore[attr-defined]
            for ctx, entry in together])
        for (ctx, entry), result in zip(together, appended):
            await _folded(ctx, entry, result, recorded=False)
    for ctx in after:
        await on_saga_event(ctx.event, ctx)


def _entry(event: Event) -> domain.TimelineEntry:
    summary, details = domain.describe(event)
    return domain.TimelineEntry(type=event.type, producer=event.producer, occurred_at=event.occurred_at,
                                summary=summary, details=details, event_id=str(event.event_id))


async def _folded(ctx: HandlerContext, entry: domain.TimelineEntry, appended: store.Appended, *,
                  recorded: bool) -> None:
    """What follows an append: re-derive the status when the event could not simply be folded in, and
    time the saga step it ends."""
    workload_id: str = ctx.event.data.workload_id  # type: ignore[attr-defined]
    if not appended.known or not (appended.added or recorded):
        return  # the request is not known yet (it is folded when recorded), or the event was seen before
    previous = appended.previous
    if recorded or not appended.folded:  # events before this one arrived first, or this one is late
        entries = await store.timeline(ctx.conn, workload_id)
        await store.set_status(ctx.conn, workload_id, domain.derive_status(entries),
                               max((item.occurred_at for item in entries), default=None))
        previous = max((item.occurred_at for item in entries if item.event_id != entry.event_id), default=None)
    if appended.added and previous is not None and entry.occurred_at >= previous:
        metrics.SAGA_STEP_SECONDS.labels(entry.type).observe((entry.occurred_at - previous).total_seconds())


async def _record_request(event: Event, ctx: HandlerContext) -> bool:
    # A request another system published is recorded here (ours were stored with their event's outbox row).
    workload: Workload = event.data  # type: ignore[assignment]
    if not await store.insert_request(ctx.conn, workload, source=event.producer):
        return False
    metrics.WORKLOADS.labels(SERVICE, "submitted").inc()
    log.info("recorded training request %s published by %s", workload.workload_id, event.producer)
    return True


def register(bus: EventBus) -> None:
    bus.on("app.spec_created", on_spec_created)
    bus.on("app.deleted", on_app_deleted)
    for event_type in SAGA_EVENTS:
        bus.on(event_type, on_saga_event, lock=lock_per_workload(store.WORKLOAD_LOCK), together=on_saga_events)
