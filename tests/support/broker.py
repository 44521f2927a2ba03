"""Talking to the real broker from tests the way another system would: plain aio-pika, no project code paths."""
from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aio_pika

from contracts.events import Event
from contracts.topology import EXCHANGE, dead_letter_queue

Message = aio_pika.abc.AbstractIncomingMessage


_CONNECTING_USER = object()


async def publish(url: str, routing_key: str, body: bytes | dict[str, Any] | Event,
                  headers: dict[str, Any] | None = None, user_id: Any = _CONNECTING_USER) -> None:
    """Put one message straight onto avatar.events (persistent, with publisher confirms), its `user_id`
    the connecting user's as a well-behaved publisher sets it (None: no user_id at all). Only guest
    declares the exchange: any other user looks it up (an outside publisher may not declare it)."""
    if isinstance(body, Event):
        body = body.to_wire()
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    if user_id is _CONNECTING_USER:
        user_id = urlsplit(url).username or "guest"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = (await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
                    if (urlsplit(url).username or "guest") == "guest" else await channel.get_exchange(EXCHANGE, ensure=False))
        await exchange.publish(aio_pika.Message(body, content_type="application/json", headers=headers or {},
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user_id),
                               routing_key)


async def dead_letters(url: str, service: str) -> list[Message]:
    """Drain and return what waits in a service's dead-letter queue."""
    connection = await aio_pika.connect(url)
    found = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue(service), durable=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            found.append(message)
    return found


@contextlib.asynccontextmanager
async def tapped(url: str, on_message: Callable[[Message], Awaitable[None] | None]) -> AsyncIterator[None]:
    """See every message published on avatar.events while the block runs (an exclusive queue bound to '#')."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")

        async def deliver(message: Message) -> None:
            result = on_message(message)
            if result is not None:
                await result
            await message.ack()

        await queue.consume(deliver)
        yield
