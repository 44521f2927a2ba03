"""Helpers shared by the library and builder integration tests."""
from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any, AsyncIterator

import aio_pika

from tests.support import broker
import httpx
import pytest

from contracts.topology import EXCHANGE

from services.builder.main import create_app as create_builder
from services.kit.settings import Settings
from services.library.main import create_app as create_library
from services.library.settings import LibrarySettings
from tests.support.services import RunningService, purge_queues, running_service


def unseeded(settings: Settings) -> LibrarySettings:
    """Tests register their own components: no reference catalog on start."""
    return LibrarySettings(**{**settings.model_dump(), "library_seed_catalog": ""})


def component_body(name: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = {"name": name or f"comp-{uuid.uuid4().hex[:8]}",
            "image": {"registry": "registry.avatar.io/env-sim", "tag": "1.0"},
            "description": "simulates the furnace", "version": "1.0.0", "type": "trainer",
            "resources": {"gpu_type": "A100", "gpu_count": 2, "memory": "64GB"},
            "params": {}, "command": ["python", "-m", "components.env_simulator"]}
    body.update(overrides)
    return body


async def register(library: RunningService, name: str | None = None, **overrides: Any) -> dict[str, Any]:
    response = await library.client.post("/components", json=component_body(name, **overrides),
                                         headers=library.headers("researcher"))
    assert response.status_code == 201, response.text
    return response.json()


@contextlib.asynccontextmanager
async def library_and_builder(settings: Settings) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """Both services on one database (each its own schema); the builder looks components up in-process."""
    async with running_service(create_library, unseeded(settings)) as library:
        transport = httpx.ASGITransport(app=library.app)
        async with running_service(lambda s: create_builder(s, library_transport=transport), settings) as builder:
            yield library, builder


@contextlib.asynccontextmanager
async def watching(rabbitmq_url: str, *routing_keys: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the events published on `avatar.events` with these routing keys while the block runs."""
    seen: list[dict[str, Any]] = []
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                seen.append(json.loads(message.body))

        await queue.consume(collect)
        yield seen


async def publish(rabbitmq_url: str, event) -> None:
    """Put one event straight onto the exchange, as another system would."""
    await broker.publish(rabbitmq_url, event.type, event)


@pytest.fixture(scope="module")
async def library(infra):
    """One library without the seed catalog for a whole module."""
    await infra.fresh_database()
    await purge_queues(infra.rabbitmq_url)
    async with running_service(create_library, unseeded(infra.settings())) as svc:
        yield svc


@pytest.fixture(scope="module")
async def stack(infra):
    """One library and one builder for a whole module: each test works on Apps and components of its own.
    (Never beside a second builder or library on the same broker: they would compete for its queue.)"""
    await infra.fresh_database()
    await purge_queues(infra.rabbitmq_url)
    async with library_and_builder(infra.settings()) as pair:
        yield pair
