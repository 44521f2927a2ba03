"""A service split in two (AVATAR_ROLE): the "api" part answers HTTP and consumes nothing, the "events" part
consumes, relays the outbox and serves only its probes; together they are the one service."""
from __future__ import annotations

import aio_pika

from contracts.events import WorkloadQueued
from contracts.topology import queue_name
from services.trainer.main import create_app as create_trainer
from tests.integration.approval.saga import emit, tapped
from tests.integration.trainer.test_trainer_service import ready, request_status, spec_created
from tests.support.services import running_service
from tests.unit.approval.factory import small_spec


async def consumers_of(rabbitmq_url: str, service: str) -> int:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name(service), passive=True)
        return queue.declaration_result.consumer_count


async def test_a_trainer_split_into_its_api_and_its_event_side_is_still_one_trainer(fresh):
    # the event side polls its outbox only every 30 s: a submission published within seconds was
    # announced to it by the API part's NOTIFY
    events_settings = fresh.settings(role="events", outbox_poll_seconds=30)
    async with running_service(create_trainer, events_settings) as event_side, \
            running_service(create_trainer, fresh.settings(role="api")) as api, tapped(fresh.rabbitmq_url) as tap:
        kim = api.headers("researcher", user="kim")
        assert (await api.client.get("/readyz")).status_code == 200
        assert (await event_side.client.get("/readyz")).status_code == 200
        assert (await event_side.client.get("/metrics")).status_code == 200
        refused = await event_side.client.post("/training-requests", json={"app_id": "APP-5MA11A"}, headers=kim)
        assert refused.status_code == 404  # the event side has no routes of the service
        assert await consumers_of(fresh.rabbitmq_url, "trainer") == 1  # the event side's; the API consumes nothing

        await spec_created(fresh.rabbitmq_url, small_spec())  # consumed by the event side, read through the API
        await ready(api, "APP-5MA11A", "1.0.0")
        submitted = await api.client.post("/training-requests", json={"app_id": "APP-5MA11A"}, headers=kim)
        assert submitted.status_code == 202, submitted.text
        workload_id = submitted.json()["workload_id"]
        requested = await tap.one("training.requested", workload_id, timeout=5)
        assert requested.producer == "trainer"
        await request_status(api, workload_id, "waiting")
        await emit(fresh.rabbitmq_url, "workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal"))
        view = await request_status(api, workload_id, "queued")
    assert [entry["type"] for entry in view["timeline"]] == ["training.requested", "workload.queued"]
