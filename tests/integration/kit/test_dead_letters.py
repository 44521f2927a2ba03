import json

from services.kit import metrics
from services.kit.messaging import REASON_HEADER, PermanentError
from tests.integration.kit.test_outbox import spec_created
from tests.support.broker import dead_letters, publish as publish_raw
from tests.support.infra import wait_until
from contracts.events import make_event


async def test_malformed_message_goes_to_the_dlq_with_its_reason_and_consuming_goes_on(kit_service, fresh):
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.correlation_id)

    async with kit_service("library", {"app.spec_created": on_spec_created}):
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", b'{"type": "app.spec_created", "data": 42}')
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", b"\xff not json")
        good = make_event("app.spec_created", spec_created("APP-GOOD01"), producer="test", correlation_id="APP-GOOD01")
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", json.dumps(good.to_wire()).encode())
        await wait_until(lambda: handled == ["APP-GOOD01"], message="the good event")
    letters = await dead_letters(fresh.rabbitmq_url, "library")
    reasons = [m.headers[REASON_HEADER] for m in letters]
    assert len(reasons) == 2
    assert all(reason.startswith("invalid event:") for reason in reasons)
    assert "validation error" in reasons[0]
    assert letters[0].body == b'{"type": "app.spec_created", "data": 42}'
    assert letters[0].headers["x-avatar-original-routing-key"] == "app.spec_created"


async def test_event_a_handler_can_never_process_is_dead_lettered_once(kit_service, fresh):
    calls = []

    async def refuse(event, ctx):
        calls.append(event.event_id)
        raise PermanentError("app refers to nothing we know")

    async with kit_service("library", {"app.spec_created": refuse}):
        event = make_event("app.spec_created", spec_created(), producer="test", correlation_id="APP-A1B2C3")
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", json.dumps(event.to_wire()).encode())
        await wait_until(lambda: calls, message="the handler")
        letters = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "library"), message="the dead letter")
    assert calls == [event.event_id]
    assert "app refers to nothing we know" in letters[0].headers[REASON_HEADER]


async def test_handler_bug_is_retried_then_dead_lettered(kit_service, fresh):
    calls = []

    async def broken(event, ctx):
        calls.append(1)
        raise KeyError("missing")

    async with kit_service("library", {"app.spec_created": broken}) as library:
        event = make_event("app.spec_created", spec_created(), producer="test", correlation_id="APP-A1B2C3")
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", json.dumps(event.to_wire()).encode())
        letters = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "library"), timeout=20,
                                   message="the dead letter")
        # the failed attempts rolled back: the inbox does not claim the event
        assert await library.pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert len(calls) == library.bus.max_attempts
    assert "gave up after 5 attempts" in letters[0].headers[REASON_HEADER]


async def test_a_retried_handler_counts_once(kit_service, fresh):
    # the first attempt counts, then fails after its transaction did work: that count is rolled back too
    counted = metrics.WORKLOADS.labels("library", "retry-test")
    before = counted._value.get()
    calls = []

    async def flaky(event, ctx):
        calls.append(1)
        counted.inc()
        await ctx.conn.execute("SELECT 1")
        if len(calls) == 1:
            raise ConnectionResetError("the database went away mid-handler")

    async with kit_service("library", {"app.spec_created": flaky}) as library:
        event = make_event("app.spec_created", spec_created(), producer="test", correlation_id="APP-A1B2C3")
        await publish_raw(fresh.rabbitmq_url, "app.spec_created", json.dumps(event.to_wire()).encode())
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) FROM inbox"), message="the handled event")
    assert len(calls) == 2
    assert counted._value.get() - before == 1
