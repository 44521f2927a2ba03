"""Which broker messages a consumer believes, over real RabbitMQ users with the permissions deploy/ gives
them: the producer must be what the validated `user_id` may publish as, or the event is dead-lettered
with the reason (and counted)."""
from __future__ import annotations

import aio_pika
import aiormq
import pytest

from contracts.events import WorkloadApproved, WorkloadCancelled, make_event
from services.kit import metrics
from services.kit.messaging import REASON_HEADER, USER_HEADER, EventBus, new_broker
from tests.integration.kit.test_outbox import spec_created
from tests.support.broker import dead_letters, publish
from tests.support.infra import wait_until
from tests.unit.approval.factory import small_spec, workload


def _spec_event(producer: str):
    return make_event("app.spec_created", spec_created("APP-A1B2C3"), producer=producer, correlation_id="APP-A1B2C3")


def _cancelled(producer: str, workload_id: str = "WL-0E47C001"):
    return make_event("workload.cancelled", WorkloadCancelled(workload_id=workload_id, cancelled_by="ada",
                                                               was_running=False),
                      producer=producer, correlation_id=workload_id)


async def test_a_forged_producer_from_another_services_user_is_dead_lettered_with_the_reason(kit_service, fresh):
    urls = fresh.broker_users(services=("trainer", "approval", "scheduler"))
    refused = metrics.EVENTS_REFUSED.labels("trainer", "workload.cancelled")
    before = refused._value.get()
    handled = []

    async def on_cancelled(event, ctx):
        handled.append(event.producer)

    async with kit_service("trainer", {"workload.cancelled": on_cancelled}, url=urls["trainer"], local=False):
        # both may publish workload.cancelled; the scheduler poses as approval
        await publish(urls["scheduler"], "workload.cancelled", _cancelled("approval"))
        await publish(urls["approval"], "workload.cancelled", _cancelled("approval", "WL-0E47C002"))
        await wait_until(lambda: handled, message="approval's own event")
        [letter] = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "trainer"), message="the dead letter")
    assert handled == ["approval"]
    assert letter.headers[REASON_HEADER] == (f"untrusted event: producer 'approval' is forged: user "
                                             f"{fresh.user_prefix}scheduler publishes as 'scheduler'")
    assert letter.headers[USER_HEADER] == f"{fresh.user_prefix}scheduler"
    assert refused._value.get() - before == 1


async def test_a_service_user_may_publish_only_the_events_its_service_produces(fresh):
    """The library's credentials cannot approve a workload, register a model or rewrite an App: RabbitMQ
    refuses those routing keys from its user (its topic permission)."""
    urls = fresh.broker_users(services=("library",))
    approved = make_event("workload.approved", WorkloadApproved(workload_id="WL-0E47C003", auto=True,
                                                                 workload=workload(small_spec((1, "8GB")),
                                                                                   workload_id="WL-0E47C003")),
                          producer="library", correlation_id="WL-0E47C003")
    for routing_key, event in (("workload.approved", approved), ("app.spec_created", _spec_event("library"))):
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await publish(urls["library"], routing_key, event)


async def test_without_a_user_id_or_as_guest_nothing_is_believed_outside_local(kit_service, fresh):
    urls = fresh.broker_users(services=("library", "builder"))
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.event_id)

    async with kit_service("library", {"app.spec_created": on_spec_created}, url=urls["library"], local=False):
        await publish(urls["builder"], "app.spec_created", _spec_event("builder"), user_id=None)
        await publish(fresh.rabbitmq_url, "app.spec_created", _spec_event("builder"))  # guest
        letters = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "library"), message="the dead letters")
        while len(letters) < 2:
            letters += await dead_letters(fresh.rabbitmq_url, "library")
    assert handled == []
    assert sorted(letter.headers[REASON_HEADER] for letter in letters) == [
        "untrusted event: no user_id: the publisher is unknown (set the AMQP user_id property)",
        "untrusted event: user guest is believed only with AVATAR_ENV=local"]


async def test_an_outside_publisher_may_publish_only_training_requested_as_itself(kit_service, fresh):
    urls = fresh.broker_users(services=("approval",), outside=("mes",))
    handled = []

    async def on_requested(event, ctx):
        handled.append(event.producer)

    wl = workload(small_spec((1, "8GB")), workload_id="WL-0E47A001", requester="mes")
    async with kit_service("approval", {"training.requested": on_requested}, url=urls["approval"], local=False):
        await publish(urls["ext-mes"], "training.requested",
                      make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id))
        await publish(urls["ext-mes"], "training.requested",
                      make_event("training.requested", wl, producer="mes", correlation_id=wl.workload_id))
        await wait_until(lambda: handled, message="the request as itself")
        [letter] = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "approval"), message="the dead letter")
        # the broker itself refuses any other routing key from it (its topic permission)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await publish(urls["ext-mes"], "workload.approved", b"{}")
    assert handled == ["mes"]
    assert letter.headers[REASON_HEADER] == (f"untrusted event: producer 'trainer' is forged: user "
                                             f"{fresh.user_prefix}ext-mes publishes as 'mes'")


async def test_the_bus_publishes_with_its_own_user_id_and_rabbitmq_refuses_anyone_elses(kit_service, fresh, tap):
    urls = fresh.broker_users(services=("library", "builder"))
    async with kit_service("builder", url=urls["builder"], local=False) as builder:
        await builder.bus.publish("app.spec_created", _spec_event("builder").to_json().encode(), {})
        [message] = await wait_until(lambda: [m for m in tap if m.routing_key == "app.spec_created"],
                                     message="the published event")
    assert message.user_id == f"{fresh.user_prefix}builder"
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):  # a routing key it may write, as another
        await publish(urls["library"], "component.updated", _spec_event("builder"),
                      user_id=f"{fresh.user_prefix}builder")


async def test_a_service_user_reads_and_configures_only_its_own_queues(fresh):
    urls = fresh.broker_users(services=("library",))
    connection = await aio_pika.connect(urls["library"])
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await channel.declare_queue("trainer.events", durable=True, passive=False)


def test_guest_is_for_local_runs_only(fresh):
    with pytest.raises(ValueError, match="guest is for AVATAR_ENV=local only"):
        EventBus(new_broker(fresh.rabbitmq_url, "library"), "library", None, local=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="its user is named <prefix>library"):
        EventBus(new_broker(fresh.broker_users(services=("builder",))["builder"], "library"), "library", None)  # type: ignore[arg-type]
