from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import aio_pika
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool
from services.kit.messagebus import MessageBus
from services.kit.messaging import EventBus, new_broker
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.telemetry import setup_tracing
from services.kit.unit_of_work import UnitOfWork
from services.kit.wakeups import Wakeups
from tests.support.broker import tapped


@dataclass
class KitService:
    """The kit's pieces for one service, as build_service wires them, without any service code."""

    pool: object
    bus: EventBus
    outbox: Outbox
    messagebus: MessageBus | None = None

    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.pool, self.outbox, self.bus.publish, poll_seconds=0.2)

    def uow(self, **kw) -> UnitOfWork:
        """A unit of work over this service's pool and outbox (`conn=`, `cause=` for an event handler's);
        also the factory a MessageBus takes."""
        return UnitOfWork(self.pool, self.outbox, **kw)


@pytest.fixture
def kit_service(fresh):
    @contextlib.asynccontextmanager
    async def make(service: str, handlers: dict | None = None, locks: dict | None = None, *, batch_size: int = 1,
                   prefetch: int | None = None, together: dict | None = None, min_batch_seconds: float = 0.0,
                   messagebus: Callable[[KitService], MessageBus] | None = None, url: str | None = None,
                   local: bool = True):
        """`messagebus`: builds the service's MessageBus from its kit pieces; its consumers are subscribed
        before the bus starts, as a service's setup does. `url`: connect as another broker user than
        guest (tests.support.infra.Infra.broker_users); `local`: AVATAR_ENV=local's trust in guest."""
        pool = await create_pool(fresh.postgres_url, service)
        await apply_migrations(pool, service, {"kit": KIT_MIGRATIONS})
        outbox = Outbox(service, Wakeups(pool, service))
        bus = EventBus(new_broker(url or fresh.rabbitmq_url, service), service, pool,
                       backoff_cap=0.2, batch_size=batch_size, prefetch=prefetch,
                       batch_min_interval=min_batch_seconds, local=local)
        kit = KitService(pool, bus, outbox)
        for event_type, handler in (handlers or {}).items():
            bus.on(event_type, handler, lock=(locks or {}).get(event_type), together=(together or {}).get(event_type))
        if messagebus is not None:
            kit.messagebus = messagebus(kit)
            kit.messagebus.subscribe(bus)
        await bus.start()
        try:
            yield kit
        finally:
            await bus.stop()
            await outbox.wakeups.close()
            await pool.close()

    return make


@pytest.fixture
async def tap(fresh):
    """Every message published on avatar.events during the test."""
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with tapped(fresh.rabbitmq_url, seen.append):
        yield seen


@pytest.fixture
def spans():
    """Every span the process records from here on (the services' tracer provider, with a memory exporter)."""
    setup_tracing("test")
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
