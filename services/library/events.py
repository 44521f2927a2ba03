"""Where components are used (CL-03 `used_in`), kept from the builder's events."""
from __future__ import annotations

from contracts.events import Event
from services.kit.messaging import EventBus, HandlerContext
from services.library import store


async def spec_created(event: Event, ctx: HandlerContext) -> None:
    await store.record_spec(ctx.conn, event.data.spec)


async def app_deleted(event: Event, ctx: HandlerContext) -> None:
    await store.forget_app(ctx.conn, event.data.app_id, event.occurred_at)


def subscribe(bus: EventBus) -> None:
    bus.on("app.spec_created", spec_created)
    bus.on("app.deleted", app_deleted)
