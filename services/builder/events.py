"""The Builder's read model of the component library, kept from the library's events."""
from __future__ import annotations

from contracts.events import Event
from services.builder import store
from services.kit.messaging import EventBus, HandlerContext


async def component_changed(event: Event, ctx: HandlerContext) -> None:
    await store.remember_component(ctx.conn, event.data.component, event.occurred_at)


def subscribe(bus: EventBus) -> None:
    bus.on("component.registered", component_changed)
    bus.on("component.updated", component_changed)
