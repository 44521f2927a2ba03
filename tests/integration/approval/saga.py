"""Talking to the real broker as other systems do: publish raw events, watch every event, read a DLQ."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator

import aio_pika
from pydantic import BaseModel

from contracts.events import Event, make_event, parse_event
from contracts.topology import EXCHANGE, dead_letter_queue
from services.approval.main import create_app as create_approval
from services.approval.settings import ApprovalSettings
from services.trainer.main import create_app as create_trainer
from tests.support.infra import Infra, wait_until
from tests.support.services import RunningService, running_service


async def publish(url: str, routing_key: str, body: bytes | dict[str, Any] | Event) -> None:
    if isinstance(body, Event):
        body = body.to_wire()
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        await exchange.publish(aio_pika.Message(body, content_type="application/json",
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)


async def emit(url: str, event_type: str, payload: BaseModel, *, producer: str = "scheduler") -> Event:
    """Publish an event as the service that owns it would (used to play the scheduler's or builder's part)."""
    correlation_id = getattr(payload, "workload_id", None) or getattr(payload, "app_id")
    event = make_event(event_type, payload, producer=producer, correlation_id=correlation_id)
    await publish(url, event_type, event)
    return event


async def dead_letters(url: str, service: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    found = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue(service), durable=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            found.append(message)
    return found


class Tap:
    """Every event published on avatar.events during a test, parsed."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def of(self, event_type: str, workload_id: str | None = None) -> list[Event]:
        return [e for e in self.events
                if e.type == event_type and (workload_id is None or e.correlation_id == workload_id)]

    async def one(self, event_type: str, workload_id: str | None = None, timeout: float = 10.0) -> Event:
        found = await wait_until(lambda: self.of(event_type, workload_id), timeout=timeout,
                                 message=f"{event_type} for {workload_id}")
        return found[0]

    async def settled_count(self, event_type: str, workload_id: str | None = None, quiet: float = 1.2) -> int:
        """The count after the outbox relays had time to publish anything more."""
        await asyncio.sleep(quiet)
        return len(self.of(event_type, workload_id))


@contextlib.asynccontextmanager
async def tapped(url: str) -> AsyncIterator[Tap]:
    tap = Tap()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            with contextlib.suppress(ValueError):  # malformed test messages are not events
                tap.events.append(parse_event(message.body))
            await message.ack()

        await queue.consume(on_message)
        yield tap


def approval_service(infra: Infra, **overrides: Any):
    settings = ApprovalSettings(**{**infra.settings().model_dump(), "loop_test_sweep_seconds": 0.2, **overrides})
    return running_service(create_approval, settings)


def trainer_service(infra: Infra):
    return running_service(create_trainer, infra.settings())


async def approval_status(service: RunningService, workload_id: str, status: str, timeout: float = 10.0) -> dict:
    async def reached():
        response = await service.client.get(f"/approvals/{workload_id}", headers=service.headers("viewer"))
        return response.status_code == 200 and response.json()["status"] == status and response.json()

    return await wait_until(reached, timeout=timeout, message=f"approval {workload_id} to be {status}")
