"""Deliveries handled in batches: one transaction and one inbox claim for many events, each event still
handled once, a bad one dead-lettered alone, and what a rolled-back batch counted not counted."""
import asyncio

from opentelemetry import trace

from contracts.events import make_event
from services.kit import inbox, metrics
from services.kit.messaging import REASON_HEADER, PermanentError
from tests.integration.kit.test_outbox import record, spec_created
from tests.support.broker import dead_letters, publish
from tests.support.infra import wait_until

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2))"
HANDLED = metrics.Counter("avatar_test_batch_handled_total", "Events a test handler counted", ["test"])


def _event(app_id: str):
    return make_event("app.spec_created", spec_created(app_id), producer="test", correlation_id=app_id)


def _value(counter, *labels) -> float:
    return counter.labels(*labels)._value.get()


async def _backlog(kit_service, fresh, events) -> None:
    """The events waiting in the library's queue before its consumer starts (a restart under load)."""
    async with kit_service("library") as library:  # declares the topology
        await library.pool.execute("CREATE TABLE handled (seq bigserial, app_id text PRIMARY KEY)")
    for event in events:
        await publish(fresh.rabbitmq_url, "app.spec_created", event)


async def _handled_rows(pool) -> list[str]:
    return [r["app_id"] for r in await pool.fetch("SELECT app_id FROM handled ORDER BY seq")]


async def test_a_backlog_is_handled_in_batches_each_event_once_in_delivery_order(kit_service, fresh):
    events = [_event(f"APP-{i:06d}") for i in range(60)]
    await _backlog(kit_service, fresh, [*events[:30], events[5], *events[30:]])  # one delivered twice
    committed = _value(metrics.BATCHED_EVENTS, "library")
    duplicates = _value(metrics.EVENTS_CONSUMED, "library", "app.spec_created", "duplicate")

    async def on_spec_created(event, ctx):
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)
        HANDLED.labels("backlog").inc()

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16) as library:
        async def all_handled():
            return await library.pool.fetchval("SELECT count(*) FROM inbox") == 60
        await wait_until(all_handled, message="the backlog handled")
        await wait_until(lambda: _value(metrics.EVENTS_CONSUMED, "library", "app.spec_created", "duplicate")
                         > duplicates, message="the second delivery skipped")
        handled = await _handled_rows(library.pool)
    assert sorted(handled) == sorted(e.correlation_id for e in events)  # a duplicate key would have failed
    assert _value(metrics.BATCHED_EVENTS, "library") - committed >= 2, "no batch was committed"
    assert _value(HANDLED, "backlog") == 60


async def test_a_bad_event_in_a_batch_is_dead_lettered_alone_and_counted_once(kit_service, fresh):
    events = [_event(f"APP-{i:06d}") for i in range(40)]
    bad = events[17].event_id
    await _backlog(kit_service, fresh, events)
    handled_before = _value(metrics.EVENTS_CONSUMED, "library", "app.spec_created", "handled")
    rolled_back = _value(metrics.BATCHES, "library", "rolled_back")

    async def on_spec_created(event, ctx):
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)
        HANDLED.labels("bad").inc()
        if event.event_id == bad:
            raise PermanentError("this App refers to nothing we know")

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16) as library:
        letters = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "library"), message="the dead letter")

        async def rest_handled():
            return await library.pool.fetchval("SELECT count(*) FROM inbox") == 39
        await wait_until(rest_handled, message="the other events handled")
        handled = await _handled_rows(library.pool)
    assert sorted(handled) == sorted(e.correlation_id for e in events if e.event_id != bad)
    assert [letter.headers[REASON_HEADER] for letter in letters] == [
        f"app.spec_created {bad}: this App refers to nothing we know"]
    assert _value(metrics.BATCHES, "library", "rolled_back") > rolled_back, "the bad event was never in a batch"
    # the rolled-back batch's counts were dropped: each good event counted once, the bad one never
    assert _value(metrics.EVENTS_CONSUMED, "library", "app.spec_created", "handled") - handled_before == 39
    assert _value(HANDLED, "bad") == 39


async def test_a_batch_claim_holds_each_claimed_events_lock_until_commit(kit_service):
    first, second, seen = _event("APP-000001"), _event("APP-000002"), _event("APP-000003")
    async with kit_service("library") as library:
        async with library.pool.acquire() as conn:
            await inbox.claim(conn, seen)  # handled before
        async with library.pool.acquire() as conn, library.pool.acquire() as other:
            async with conn.transaction():
                claimed = await inbox.claim_many(conn, [
                    inbox.Claim(second, {"traceparent": "00-" + "b" * 32 + "-" + "c" * 16 + "-01"}, ("test.app", "k2")),
                    inbox.Claim(first, None, ("test.app", "k1")),
                    inbox.Claim(second, None, ("test.app", "k2")),
                    inbox.Claim(seen, None, ("test.app", "k3"))])
                assert claimed == {first.event_id, second.event_id}
                async with other.transaction():
                    assert [await other.fetchval(TRY_LOCK, "test.app", key) for key in ("k1", "k2", "k3")] == [
                        False, False, True]  # a duplicate takes no lock
            async with other.transaction():
                assert await other.fetchval(TRY_LOCK, "test.app", "k1"), "the lock outlived the transaction"
            assert await conn.fetchval("SELECT headers->>'traceparent' FROM trace_context WHERE correlation_id = $1",
                                       "APP-000002") == "00-" + "b" * 32 + "-" + "c" * 16 + "-01"
            assert await conn.fetchval("SELECT count(*) FROM inbox") == 3


async def test_events_delivered_one_at_a_time_are_handled_at_once(kit_service, fresh):
    """Nothing waits to fill a batch: a lone event is handled as soon as it arrives."""
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.correlation_id)

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16):
        for i in range(3):
            await publish(fresh.rabbitmq_url, "app.spec_created", _event(f"APP-{i:06d}"))
            await wait_until(lambda: len(handled) == i + 1, timeout=2, message=f"event {i}")
            await asyncio.sleep(0.05)
    assert handled == ["APP-000000", "APP-000001", "APP-000002"]


async def test_a_handler_cancelled_inside_a_batch_does_not_stop_batching(kit_service, fresh):
    """A handler's own CancelledError hands its batch back; it does not end the worker that ran it."""
    events = [_event(f"APP-{i:06d}") for i in range(30)]
    cancelled_once = events[20].event_id  # deep in the backlog: delivered with others, not alone
    await _backlog(kit_service, fresh, events)
    seen: list = []
    rolled_back = _value(metrics.BATCHES, "library", "rolled_back")

    async def on_spec_created(event, ctx):
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)
        if event.event_id == cancelled_once and event.event_id not in seen:
            seen.append(event.event_id)
            raise asyncio.CancelledError()

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16) as library:
        async def all_handled():
            return await library.pool.fetchval("SELECT count(*) FROM inbox") == 30
        await wait_until(all_handled, message="the backlog")
        assert sorted(await _handled_rows(library.pool)) == sorted(e.correlation_id for e in events)
        workers = library.bus._batches._tasks
        assert len(workers) == 2 and not any(worker.done() for worker in workers), "a batch worker ended"
    assert seen == [cancelled_once]
    assert _value(metrics.BATCHES, "library", "rolled_back") > rolled_back, "the cancel was not inside a batch"


async def test_an_event_without_its_lock_key_is_dead_lettered_and_consuming_goes_on(kit_service, fresh):
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.correlation_id)

    def lock(event):
        if event.correlation_id == "APP-NOKEY1":
            raise AttributeError("no workload_id")
        return "test.app", event.correlation_id

    async with kit_service("library", {"app.spec_created": on_spec_created}, {"app.spec_created": lock},
                           batch_size=16):
        await publish(fresh.rabbitmq_url, "app.spec_created", _event("APP-NOKEY1"))
        await publish(fresh.rabbitmq_url, "app.spec_created", _event("APP-000001"))
        await wait_until(lambda: handled == ["APP-000001"], message="the next event")
        letters = await wait_until(lambda: dead_letters(fresh.rabbitmq_url, "library"), message="the dead letter")
    assert "no lock key: AttributeError('no workload_id')" in letters[0].headers[REASON_HEADER]


async def test_a_batch_claim_is_a_span_linked_to_each_events_consumer_span(kit_service, spans):
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.correlation_id)

    async with kit_service("library"):  # the topology, so the events wait in the queue
        pass
    origins = set()
    async with kit_service("builder") as builder:
        for i in range(20):
            with trace.get_tracer("test").start_as_current_span("POST /apps/{app_id}/spec") as request_span:
                origins.add(request_span.get_span_context().trace_id)
                await record(builder, f"APP-{i:06d}")
        await builder.relay().relay_once()
    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16):
        await wait_until(lambda: len(handled) == 20, message="the events")
    finished = spans.get_finished_spans()
    consumers = {s.context.span_id: s for s in finished if s.name == "process avatar.events" and s.context.trace_id in origins}
    claims = [s for s in finished if s.name == "claim batch"]
    assert claims, "no batch was claimed"
    for claim in claims:
        linked = [link.context.span_id for link in claim.links]
        assert len(linked) == claim.attributes["avatar.batch_size"] > 1
        assert set(linked) <= set(consumers), "a link to something other than the batch's consumer spans"
        assert [s.name for s in finished if s.parent is not None and s.parent.span_id == claim.context.span_id] == [
            "INSERT inbox"], "the claim statement is the claim span's child"


async def test_a_batch_handler_takes_a_batchs_events_in_one_call_and_a_failing_call_hands_them_back(kit_service, fresh):
    """`together`: the events of a batch in one call, in delivery order; when that call fails, the batch
    is handed back and each event goes to the event's own handler."""
    events = [_event(f"APP-{i:06d}") for i in range(60)]
    poisoned = events[40].event_id
    await _backlog(kit_service, fresh, events)
    calls: list[list[str]] = []
    alone: list[str] = []

    async def on_spec_created(event, ctx):
        alone.append(event.correlation_id)
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)

    async def on_specs_created(contexts):
        calls.append([ctx.event.correlation_id for ctx in contexts])
        await contexts[0].conn.executemany("INSERT INTO handled (app_id) VALUES ($1)",
                                           [(ctx.event.correlation_id,) for ctx in contexts])
        if any(ctx.event.event_id == poisoned for ctx in contexts):
            raise RuntimeError("a bad batch")

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16,
                           together={"app.spec_created": on_specs_created}) as library:
        async def all_handled():
            return await library.pool.fetchval("SELECT count(*) FROM inbox") == 60
        await wait_until(all_handled, message="the backlog")
        handled = await _handled_rows(library.pool)
    assert sorted(handled) == sorted(e.correlation_id for e in events)  # each once: a second insert would fail
    assert any(len(call) > 1 for call in calls), "no batch went to the batch handler"
    assert sum(len(call) for call in calls) > len(alone), "the batch handler handled less than the single one"
    assert events[40].correlation_id in alone, "the failed batch was not handed back to the single handler"
    assert all(call == sorted(call) for call in calls), "a batch's events were not given in delivery order"


async def test_under_a_trickle_a_floor_gathers_events_into_batches_and_an_idle_worker_answers_at_once(kit_service, fresh):
    """Events arriving one by one each got a transaction of their own; a worker that starts a batch at
    most every 0.3 s lets those arriving meanwhile join it. A lone event on an idle worker waits for
    nothing."""
    times: dict[str, float] = {}

    async def on_spec_created(event, ctx):
        await ctx.conn.execute("SELECT 1")
        times[event.correlation_id] = asyncio.get_running_loop().time()

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16,
                           min_batch_seconds=0.3):
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await publish(fresh.rabbitmq_url, "app.spec_created", _event("APP-LONE00"))
        await wait_until(lambda: "APP-LONE00" in times, message="the lone event")
        assert times["APP-LONE00"] - sent < 0.25, "a lone event on an idle worker waited for the floor"

        await asyncio.sleep(0.4)  # idle again
        committed = _value(metrics.BATCHES, "library", "committed")
        batched = _value(metrics.BATCHED_EVENTS, "library")
        trickle = [f"APP-T{i:05d}" for i in range(30)]
        for app_id in trickle:  # one every 20 ms, as a moderate rate delivers them
            await publish(fresh.rabbitmq_url, "app.spec_created", _event(app_id))
            await asyncio.sleep(0.02)
        await wait_until(lambda: all(a in times for a in trickle), message="the trickle handled")
        batches = _value(metrics.BATCHES, "library", "committed") - committed
        together = _value(metrics.BATCHED_EVENTS, "library") - batched
    # 30 events over ~0.6 s with two workers starting a batch at most every 0.3 s: a handful of batches
    # held most of them (with no floor each event of a trickle is a batch of one, handled on its own)
    assert batches >= 1, "no batch: every event of the trickle was handled on its own"
    assert batches <= 10, f"{batches} batches for 30 events"
    assert together >= 20, f"only {together} of 30 events were handled in batches"


async def test_a_floor_never_caps_a_backlog_full_batches_start_at_once(kit_service, fresh):
    """The floor gathers partial batches; it must not limit a busy service to a batch per worker per
    interval. 160 events waiting, batches of 16, a floor of 2 s: capped, two workers would need ~8 s;
    starting each full batch at once they take well under that."""
    events = [_event(f"APP-{i:06d}") for i in range(160)]
    await _backlog(kit_service, fresh, events)

    async def on_spec_created(event, ctx):
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)

    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=16, prefetch=32,
                           min_batch_seconds=2.0) as library:
        started = asyncio.get_running_loop().time()
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) = 160 FROM handled"), timeout=20,
                         message="the backlog handled")
        took = asyncio.get_running_loop().time() - started
        assert sorted(await _handled_rows(library.pool)) == sorted(e.correlation_id for e in events)
    assert took < 4.0, f"the backlog took {took:.1f} s: the floor held back full batches"


async def test_a_handler_cancelling_itself_outside_a_batch_is_retried_and_consuming_goes_on(kit_service, fresh):
    """A CancelledError the handler raised itself (not the consumer being stopped) is a failure like any
    other: the event is tried again. Let through, it left the message unacknowledged for ever."""
    events = [_event(f"APP-{i:06d}") for i in range(3)]
    seen: list = []

    async def on_spec_created(event, ctx):
        if event.event_id == events[0].event_id and not seen:
            seen.append(event.event_id)
            raise asyncio.CancelledError()
        await ctx.conn.execute("INSERT INTO handled (app_id) VALUES ($1)", event.correlation_id)

    await _backlog(kit_service, fresh, [])
    async with kit_service("library", {"app.spec_created": on_spec_created}, batch_size=1) as library:
        for event in events:
            await publish(fresh.rabbitmq_url, "app.spec_created", event)
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) = 3 FROM handled"), message="all three handled")
    assert seen == [events[0].event_id]
