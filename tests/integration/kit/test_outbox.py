import asyncio
import contextlib
import json

import pytest

from contracts.events import AppSpecCreated
from contracts.spec import AppSpec
from services.kit.outbox import OutboxRelay
from services.kit.telemetry import inject_headers, start_workload_span
from services.kit.unit_of_work import Statement
from tests.support.infra import wait_until
from tests.unit.contracts.test_spec import seed_example


@contextlib.asynccontextmanager
async def notifications(service):
    """The NOTIFYs on the service's outbox channel, heard while the block runs."""
    heard = []

    def hear(*args):
        heard.append(args)

    listener = await service.pool.acquire()
    await listener.add_listener(service.outbox.channel, hear)
    try:
        yield heard
    finally:
        await listener.remove_listener(service.outbox.channel, hear)
        await service.pool.release(listener)


def spec_created(app_id: str = "APP-A1B2C3"):
    spec = AppSpec.model_validate({**seed_example(), "app_id": app_id})
    return AppSpecCreated(app_id=app_id, version=spec.version, spec=spec)


async def record(service, *apps: str):
    """One unit of work of `service` recording an app.spec_created per app, committed; the events written."""
    async with service.uow() as uow:
        for app in apps:
            uow.record("app.spec_created", spec_created(app), correlation_id=app)
        return await uow.commit()


async def test_event_in_rolled_back_transaction_is_never_published(kit_service, tap):
    async with kit_service("builder") as builder:
        with pytest.raises(RuntimeError):
            async with builder.uow() as uow:
                uow.record("app.spec_created", spec_created("APP-ROLLED"), correlation_id="APP-ROLLED")
                raise RuntimeError("the state change failed")
        await record(builder, "APP-KEPT")
        relay = builder.relay()
        await relay.start()
        try:
            await wait_until(lambda: len(tap) >= 1, message="the committed event")
        finally:
            await relay.stop()
        published = [json.loads(m.body)["correlation_id"] for m in tap]
        assert published == ["APP-KEPT"]
        assert await builder.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_relay_killed_between_publish_and_mark_publishes_again_and_inbox_absorbs_it(kit_service, tap):
    handled = []

    async def on_spec_created(event, ctx):
        handled.append(event.event_id)
        await ctx.conn.execute("SELECT 1")

    async with kit_service("library", {"app.spec_created": on_spec_created}) as library, \
            kit_service("builder") as builder:
        [event] = await record(builder, "APP-A1B2C3")

        crashing = builder.relay()

        async def crash(_event_ids):
            raise SystemError("relay killed after publish, before marking sent")

        crashing.after_publish = crash
        with pytest.raises(SystemError):
            await crashing.relay_once()
        assert await builder.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 1

        relay = builder.relay()
        assert await relay.relay_once() == 1
        await wait_until(lambda: len(tap) == 2, message="the event delivered twice")
        await wait_until(lambda: library.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE event_id = $1", event.event_id), message="the inbox row")
        await wait_until(lambda: len(handled) >= 1, message="the handler")
        # give the duplicate time to be consumed, then check it changed nothing
        from services.kit import metrics
        await wait_until(lambda: metrics.EVENTS_CONSUMED.labels("library", "app.spec_created", "duplicate")._value.get() >= 1,
                         message="the duplicate to be skipped")
        assert handled == [event.event_id]
        assert [json.loads(m.body)["event_id"] for m in tap] == [str(event.event_id)] * 2


async def test_rows_committed_while_the_relay_publishes_go_out_without_waiting_for_the_poll(kit_service, tap):
    """The relay sleeps between batches; a row committed during a batch wakes it (NOTIFY), as does a
    backlog larger than one batch. The poll here is 60 s, so only the wake-ups can publish in time."""
    async with kit_service("builder") as builder:
        relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60, batch_size=5)
        emitted_during = []

        async def emit_one_more(event_ids):
            if len(event_ids) < 5 and not emitted_during:  # during the last (short) batch, before it is marked sent
                emitted_during.extend(await record(builder, "APP-DURING"))

        relay.after_publish = emit_one_more
        await record(builder, *(f"APP-{n:06d}" for n in range(12)))  # a backlog of two and a half batches
        await relay.start()
        try:
            await wait_until(lambda: len(tap) >= 13, 10, message="the backlog and the row committed during a batch")
        finally:
            await relay.stop()
        published = [json.loads(m.body)["correlation_id"] for m in tap]
        assert sorted(published) == sorted([f"APP-{n:06d}" for n in range(12)] + ["APP-DURING"])
        assert await builder.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_events_added_together_commit_together_and_each_keeps_the_trace_it_was_given(kit_service, tap, spans):
    """A unit's events go to the outbox in one statement (`add_many`, a scheduling round's), all or none
    with its transaction, each published in the trace it was recorded with (`trace=`, its own span's)."""
    async with kit_service("builder") as builder:
        apps = ["APP-000001", "APP-000002", "APP-000003"]
        work = {app: start_workload_span("work on the app", app, parent=None) for app in apps}

        def batch(uow, names):
            for app in names:
                uow.record("app.spec_created", spec_created(app), correlation_id=app, trace=inject_headers(span=work[app]))

        with pytest.raises(RuntimeError):
            async with builder.uow() as uow:
                batch(uow, apps[:2])
                raise RuntimeError("the state change failed")
        async with builder.uow() as uow:
            batch(uow, apps)
            await uow.commit()
        async with builder.uow() as uow:  # nothing recorded: no outbox statement at all
            assert await uow.commit() == []
        async with builder.pool.acquire() as conn:  # the primitive itself, given nothing, writes nothing
            await builder.outbox.add_many(conn, [])
        assert await builder.pool.fetchval("SELECT count(*) FROM outbox") == 3
        for span in work.values():
            span.end()
        relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60)
        await relay.start()  # the poll is a minute: only the batch's NOTIFY wakes the relay in time
        try:
            await wait_until(lambda: len(tap) >= 3, 10, message="the three events of the batch")
        finally:
            await relay.stop()
        assert sorted(json.loads(m.body)["correlation_id"] for m in tap) == apps
        for message in tap:
            app = json.loads(message.body)["correlation_id"]
            trace_id = format(work[app].get_span_context().trace_id, "032x")
            assert message.headers["traceparent"].split("-")[1] == trace_id
        producers = [s for s in spans.get_finished_spans() if s.name.startswith("send")]
        assert {s.parent.span_id for s in producers} == {w.get_span_context().span_id for w in work.values()}


async def test_one_relay_of_a_service_publishes_and_a_standby_takes_over_when_it_stops(kit_service, tap):
    """Two replicas' relays on one outbox: the one holding the service's relay lock publishes (its rounds
    take no row locks, so a second publisher would send every event twice); when it stops, the standby
    takes over within its poll."""
    async with kit_service("builder") as builder:
        first, second = builder.relay(), builder.relay()
        await first.start()
        await wait_until(lambda: first.leading, message="the first relay to lead")
        await second.start()

        async def emit(names):
            for app in names:  # one transaction each: many small rounds, as under load
                await record(builder, app)

        try:
            before = [f"APP-{n:06d}" for n in range(20)]
            await emit(before)
            await wait_until(lambda: len(tap) >= 20, 10, message="the 20 events")
            assert first.leading and not second.leading
            await first.stop()
            after = [f"APP-{n:06d}" for n in range(20, 25)]
            await emit(after)
            await wait_until(lambda: len(tap) >= 25, 10, message="the events after the leader stopped")
            assert second.leading
            # the last event's duplicate, if any, would have followed it by now
            await wait_until(lambda: builder.pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"),
                             message="every row marked sent")
        finally:
            await first.stop()
            await second.stop()
        published = [json.loads(m.body)["correlation_id"] for m in tap]
        assert sorted(published) == before + after


async def test_the_backlog_gauges_grow_while_the_broker_refuses_events(kit_service):
    from services.kit import metrics

    async def broker_away(*_):
        raise ConnectionError("the broker is away")

    async with kit_service("builder") as builder:
        await record(builder, *(f"APP-{n:06d}" for n in range(3)))
        relay = OutboxRelay(builder.pool, builder.outbox, broker_away, poll_seconds=0.2)
        await relay.start()
        try:
            await wait_until(lambda: metrics.OUTBOX_PENDING.labels("builder")._value.get() == 3,
                             message="the pending gauge counting the unsent rows")
            await wait_until(lambda: metrics.OUTBOX_OLDEST_AGE.labels("builder")._value.get() > 0,
                             message="the age of the oldest unsent row")
        finally:
            await relay.stop()
        assert await builder.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 3


async def test_a_leading_relay_in_this_process_is_woken_on_commit_without_a_notify(kit_service, tap):
    """NOTIFY takes a database-wide lock at commit, held through the commit's disk write: every notifying
    commit waits for the others'. A relay of the same process is woken in-process once the transaction
    commits instead; the poll here is a minute, so only that wake can publish in time."""
    async with kit_service("builder") as builder:
        async with notifications(builder) as heard:
            relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60)
            await relay.start()
            try:
                await wait_until(lambda: relay.leading, message="the relay to lead")
                await record(builder, "APP-WOKEN")
                await wait_until(lambda: len(tap) >= 1, 5, message="the event, published on the in-process wake")
            finally:
                await relay.stop()
            assert [json.loads(m.body)["correlation_id"] for m in tap] == ["APP-WOKEN"]
            assert heard == []
            # no relay of this process leads: a commit notifies (another replica's relay may lead)
            await record(builder, "APP-ELSEWHERE")
            await wait_until(lambda: heard, 5, message="the NOTIFY")


async def test_after_commit_runs_once_the_transaction_commits_and_never_on_rollback(kit_service):
    async with kit_service("builder") as builder:
        called = []
        async with builder.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT 1")
                conn.after_commit(lambda: called.append("committed"))
                async with conn.transaction():  # a savepoint's release commits nothing
                    conn.after_commit(lambda: called.append("inner"))
                assert called == []
            assert called == ["committed", "inner"]
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    conn.after_commit(lambda: called.append("rolled back"))
                    raise RuntimeError("the change failed")
            async with conn.transaction():
                await conn.execute("SELECT 1")
            conn.after_commit(lambda: called.append("outside a transaction"))
        assert called == ["committed", "inner", "outside a transaction"]


async def test_a_relay_floor_publishes_a_trickle_in_few_rounds_and_a_lone_event_at_once(kit_service, tap):
    async with kit_service("builder") as builder:
        rounds: list[int] = []

        async def counted(event_ids):
            rounds.append(len(event_ids))

        relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60, min_round_seconds=0.3)
        relay.after_publish = counted
        await relay.start()
        try:
            await wait_until(lambda: relay.leading, message="the relay to lead")
            await asyncio.sleep(0.4)  # its first round is over: idle
            loop = asyncio.get_running_loop()
            sent = loop.time()
            await record(builder, "APP-LONE00")
            await wait_until(lambda: len(tap) >= 1, message="the lone event")
            assert loop.time() - sent < 0.25, "a lone event on an idle relay waited for the floor"
            await asyncio.sleep(0.4)
            rounds.clear()
            for n in range(30):  # one commit every 20 ms
                await record(builder, f"APP-T{n:05d}")
                await asyncio.sleep(0.02)
            await wait_until(lambda: len(tap) >= 31, message="the trickle published")
        finally:
            await relay.stop()
        assert sum(rounds) == 30
        assert len(rounds) <= 6, f"{len(rounds)} rounds for 30 rows committed over ~0.6 s with a 0.3 s floor"


async def test_a_relay_floor_never_holds_back_a_backlog(kit_service, tap):
    """A round that published a whole batch is followed at once: 50 rows waiting, batches of 10, a floor
    of 2 s would take ~8 s capped; the backlog goes out in well under that."""
    async with kit_service("builder") as builder:
        await record(builder, *(f"APP-B{n:05d}" for n in range(50)))
        relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60, batch_size=10,
                            min_round_seconds=2.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await relay.start()
        try:
            await wait_until(lambda: len(tap) >= 50, timeout=15, message="the backlog published")
            took = loop.time() - started
        finally:
            await relay.stop()
    assert sorted(json.loads(m.body)["correlation_id"] for m in tap) == [f"APP-B{n:05d}" for n in range(50)]
    assert took < 4.0, f"the backlog took {took:.1f} s: the floor held back full rounds"


async def test_a_change_and_its_event_in_one_statement_are_recorded_together_or_not_at_all(kit_service, tap):
    """`commit_guarded`: a statement() unit has no transaction; its change and its outbox rows are one
    statement; a change that changes nothing records no event; the relay is woken as after a commit
    (in-process when it leads here, else by NOTIFY)."""
    async with kit_service("builder") as builder:
        await builder.pool.execute("CREATE TABLE IF NOT EXISTS probe_names (name text PRIMARY KEY)")
        change = "INSERT INTO probe_names (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name"

        async def guarded(app, sql=change):
            async with builder.uow().statement() as uow:
                uow.record("app.spec_created", spec_created(app), correlation_id=app)
                return await uow.commit_guarded(Statement(sql, [app]))

        async with notifications(builder) as heard:
            relay = OutboxRelay(builder.pool, builder.outbox, builder.bus.publish, poll_seconds=60)
            await relay.start()
            try:
                await wait_until(lambda: relay.leading, message="the relay to lead")
                first = await guarded("APP-ONCE00")
                again = await guarded("APP-ONCE00")  # the name exists: no change, so no event
                await wait_until(lambda: len(tap) >= 1, 5, message="the event, published on the in-process wake")
                await asyncio.sleep(0.3)
            finally:
                await relay.stop()
            assert first is True and again is False
            assert [json.loads(m.body)["correlation_id"] for m in tap] == ["APP-ONCE00"]
            assert [json.loads(m.body)["event_id"] for m in tap] == [
                str(await builder.pool.fetchval("SELECT event_id FROM outbox"))]
            assert heard == []
            assert await builder.pool.fetchval("SELECT count(*) FROM outbox") == 1
            assert await builder.pool.fetchval("SELECT count(*) FROM probe_names") == 1

            # the event is not written when the statement fails: nothing of either stays
            with pytest.raises(Exception):
                await guarded("APP-BROKEN", "INSERT INTO probe_names (name) VALUES ($1::text || 1/0) RETURNING name")
            assert await builder.pool.fetchval("SELECT count(*) FROM outbox") == 1

            # no relay of this process leads: the statement notifies (another replica's relay may lead)
            assert await guarded("APP-ELSEWH") is True
            await wait_until(lambda: heard, 5, message="the NOTIFY")
