"""The scheduler service on real PostgreSQL, RabbitMQ, Redis and S3, running real components."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest
import redis.asyncio as aioredis

from contracts.events import make_event, parse_event
from contracts.topology import EXCHANGE
from services.scheduler.main import create_app
from services.scheduler.settings import SchedulerSettings
from tests.support.broker import tapped
from tests.support.infra import wait_until
from tests.support.services import running_service

NODES = """
nodes:
  - name: node-a
    cpu: 8
    memory: 64GB
    gpus:
      A100: {count: 2, memory: 80GB}
  - name: node-b
    cpu: 8
    memory: 64GB
    gpus:
      V100: {count: 1, memory: 32GB}
"""


@dataclass
class Tap:
    """Every event published on avatar.events during the test."""

    events: list = field(default_factory=list)

    def of(self, event_type: str, workload_id: str | None = None) -> list:
        return [e for e in self.events if e.type == event_type
                and (workload_id is None or getattr(e.data, "workload_id", None) == workload_id)]

    def emitted(self, workload_id: str) -> list[str]:
        """The types the scheduler published about a workload, in order."""
        return [e.type for e in self.events
                if e.producer == "scheduler" and getattr(e.data, "workload_id", None) == workload_id]

    async def wait_for(self, event_type: str, workload_id: str | None = None, timeout: float = 20.0):
        found = await wait_until(lambda: self.of(event_type, workload_id), timeout=timeout,
                                 message=f"{event_type} of {workload_id}")
        return found[0]


@pytest.fixture
async def tap(fresh):
    seen = Tap()

    def collect(message) -> None:
        event = parse_event(message.body)
        # delivery is at least once (an outbox row may be published again after a restart)
        if all(e.event_id != event.event_id for e in seen.events):
            seen.events.append(event)

    async with tapped(fresh.rabbitmq_url, collect):
        yield seen


@pytest.fixture
async def publish(fresh):
    connection = await aio_pika.connect(fresh.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)

    async def send(event_type: str, payload, correlation_id: str = "test", headers: dict | None = None):
        event = make_event(event_type, payload, producer="test", correlation_id=correlation_id)
        await exchange.publish(aio_pika.Message(json.dumps(event.to_wire()).encode(), content_type="application/json",
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                                headers=headers or {}), routing_key=event_type)
        return event

    yield send
    await connection.close()


@pytest.fixture
def nodes_file(tmp_path) -> Path:
    path = tmp_path / "nodes.yaml"
    path.write_text(NODES)
    return path


@pytest.fixture
async def redis_client(infra):
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def scheduler_settings(fresh, nodes_file, tmp_path, redis_client):
    """Settings for one test: its own Redis prefix (dropped afterwards), a small inventory, fast loops."""
    prefix = f"avatar-test-{uuid.uuid4().hex[:8]}:"

    def make(**overrides):
        values = dict(redis_prefix=prefix, scheduler_nodes_file=nodes_file, scheduler_tick_seconds=0.5,
                      scheduler_reconcile_seconds=0.5, scheduler_lease_seconds=5, scheduler_stop_grace_seconds=1.0,
                      scheduler_state_dir=tmp_path / "state")
        values.update(overrides)
        return SchedulerSettings(**{**fresh.settings().model_dump(), **values})

    yield make
    await _drop_keys(redis_client, prefix)


@pytest.fixture
async def scheduler(scheduler_settings):
    async with running_service(create_app, scheduler_settings()) as service:
        await wait_until(lambda: service.app.state.scheduler.leadership.leading, message="leadership")
        yield service


async def _drop_keys(client, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)
