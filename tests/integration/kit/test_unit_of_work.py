"""The unit of work on a real database (services/kit/unit_of_work.py): a state change, its outbox rows and
what it counts commit together or not at all, an event handler's unit joins the consumer's transaction,
and the message bus hands each command and each consumed event a unit of its own."""
import json
from dataclasses import dataclass

import pytest

from contracts.events import WorkloadCancelRequested, make_event
from services.kit import metrics
from services.kit.messagebus import Command, MessageBus
from services.kit.unit_of_work import Aggregate, Statement
from tests.integration.kit.test_outbox import spec_created
from tests.support.broker import publish
from tests.support.infra import wait_until

COUNTED = metrics.Counter("avatar_test_uow_counted_total", "Work a test unit of work counted", ["test"])
CLAIM = "INSERT INTO probe_names (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name"


def counted(test: str) -> float:
    return COUNTED.labels(test)._value.get()


async def names_table(service) -> None:
    await service.pool.execute("CREATE TABLE IF NOT EXISTS probe_names (name text PRIMARY KEY)")


async def names(service) -> list[str]:
    return [r["name"] for r in await service.pool.fetch("SELECT name FROM probe_names ORDER BY name")]


async def outbox_rows(service) -> list[dict]:
    return [json.loads(r["payload"]) | {"routing_key": r["routing_key"]}
            for r in await service.pool.fetch("SELECT routing_key, payload::text FROM outbox ORDER BY id")]


def cancel_requested(event) -> WorkloadCancelRequested:
    """What the consuming handlers below (as the trainer, which publishes it) record for an app.spec_created."""
    return WorkloadCancelRequested(workload_id=event.correlation_id, requested_by="test")


def spec_event(app: str):
    return make_event("app.spec_created", spec_created(app), producer="test", correlation_id=app)


@dataclass
class ProbeApp(Aggregate):
    app_id: str

    @property
    def correlation_id(self) -> str:
        return self.app_id

    def create(self) -> None:
        self.record("app.spec_created", spec_created(self.app_id))


async def test_a_committed_unit_writes_its_state_change_and_its_events_together(kit_service):
    async with kit_service("builder") as builder:
        await names_table(builder)
        async with builder.uow() as uow:
            await uow.conn.execute(CLAIM, "APP-KEPT00")
            uow.record("app.spec_created", spec_created("APP-KEPT00"), correlation_id="APP-KEPT00")
            assert await names(builder) == []  # nothing is visible before the commit
            [event] = await uow.commit()
        assert await names(builder) == ["APP-KEPT00"]
        [row] = await outbox_rows(builder)
        assert row["event_id"] == str(event.event_id) and row["routing_key"] == "app.spec_created"
        assert row["producer"] == "builder" and row["correlation_id"] == "APP-KEPT00" and row["causation_id"] is None


async def test_a_unit_left_without_commit_writes_neither_its_state_change_nor_its_events(kit_service):
    async with kit_service("builder") as builder:
        await names_table(builder)
        async with builder.uow() as uow:  # the handler returned without committing
            await uow.conn.execute(CLAIM, "APP-LEFT00")
            uow.record("app.spec_created", spec_created("APP-LEFT00"), correlation_id="APP-LEFT00")
        with pytest.raises(RuntimeError):
            async with builder.uow() as uow:
                await uow.conn.execute(CLAIM, "APP-FAILED")
                uow.record("app.spec_created", spec_created("APP-FAILED"), correlation_id="APP-FAILED")
                raise RuntimeError("a rule was broken")
        assert await names(builder) == []
        assert await outbox_rows(builder) == []
        # the pool's connections came back clean: a new unit commits as usual
        async with builder.uow() as uow:
            await uow.conn.execute(CLAIM, "APP-LEFT00")
            await uow.commit()
        assert await names(builder) == ["APP-LEFT00"]


async def test_counts_made_in_a_unit_land_once_it_commits_and_never_after_a_rollback(kit_service):
    async with kit_service("builder") as builder:
        async with builder.uow() as uow:
            COUNTED.labels("committed").inc()
            assert counted("committed") == 0  # the work may still roll back
            await uow.commit()
        assert counted("committed") == 1

        with pytest.raises(RuntimeError):
            async with builder.uow():
                COUNTED.labels("rolled back").inc()
                raise RuntimeError("the change failed")
        async with builder.uow():
            COUNTED.labels("left").inc()
        assert counted("rolled back") == 0 and counted("left") == 0
        COUNTED.labels("outside").inc()  # outside any unit a count lands at once
        assert counted("outside") == 1


async def test_after_commit_callbacks_run_once_the_unit_commits_and_never_after_a_rollback(kit_service):
    async with kit_service("builder") as builder:
        called = []
        async with builder.uow() as uow:
            uow.after_commit(lambda: called.append("committed"))
            await uow.commit()
        assert called == ["committed"]
        with pytest.raises(RuntimeError):
            async with builder.uow() as uow:
                uow.after_commit(lambda: called.append("rolled back"))
                raise RuntimeError("the change failed")
        async with builder.uow() as uow:
            uow.after_commit(lambda: called.append("left"))
        assert called == ["committed"]


async def test_events_an_aggregate_recorded_are_published_when_the_unit_tracked_it(kit_service, tap):
    async with kit_service("builder") as builder:
        tracked, untracked = ProbeApp("APP-TRACK0"), ProbeApp("APP-UNTRAK")
        async with builder.uow() as uow:
            tracked.create()
            untracked.create()
            uow.track(tracked)
            uow.track(tracked)  # loaded twice in one unit: its events still go out once
            await uow.commit()
        assert tracked.events == []  # handed over to the outbox
        assert [e.type for e in untracked.events] == ["app.spec_created"]  # no unit saw it: not published
        assert await builder.relay().relay_once() == 1
        await wait_until(lambda: tap, message="the aggregate's event")
        assert [json.loads(m.body)["correlation_id"] for m in tap] == ["APP-TRACK0"]


async def test_an_event_handlers_unit_writes_in_the_consumers_transaction_caused_by_the_event(kit_service, fresh):
    """A unit made with the consumer's connection and the event commits nothing itself: when the
    consumer's transaction fails after the unit's commit, its rows go with the inbox claim, and the
    retry writes them once, each naming the handled event as its cause."""
    services, attempts, written = {}, [], []

    async def on_spec_created(event, ctx):
        attempts.append(event.event_id)
        async with services["trainer"].uow(conn=ctx.conn, cause=ctx.event) as uow:
            await uow.conn.execute(CLAIM, event.correlation_id)
            uow.record("workload.cancel_requested", cancel_requested(event))
            written.extend(await uow.commit())
        if len(attempts) == 1:
            raise RuntimeError("the consumer's transaction fails after the unit committed")

    async with kit_service("trainer", {"app.spec_created": on_spec_created}) as library:
        services["trainer"] = library
        await names_table(library)
        event = spec_event("APP-CAUSE0")
        await publish(fresh.rabbitmq_url, "app.spec_created", event)
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) FROM inbox"), message="the retry to commit")
        assert attempts == [event.event_id] * 2
        assert await names(library) == ["APP-CAUSE0"]
        [row] = await outbox_rows(library)
        assert row["routing_key"] == "workload.cancel_requested" and row["event_id"] == str(written[-1].event_id)
        assert row["causation_id"] == str(event.event_id) and row["correlation_id"] == "APP-CAUSE0"


async def test_a_batch_handlers_events_each_name_the_event_of_the_batch_that_caused_them(kit_service, fresh):
    events = [spec_event(f"APP-{i:06d}") for i in range(40)]
    async with kit_service("trainer"):  # the topology, so the events wait in the queue: one backlog
        pass
    for event in events:
        await publish(fresh.rabbitmq_url, "app.spec_created", event)
    batches = []

    async def on_spec_created(event, uow):
        async with uow:
            uow.record("workload.cancel_requested", cancel_requested(event))
            await uow.commit()

    async def on_specs_created(events, uow):
        batches.append(len(events))
        async with uow:
            for event in events:
                uow.record("workload.cancel_requested", cancel_requested(event), cause=event)
            await uow.commit()

    def messagebus(kit):
        return MessageBus(kit.uow, events={"app.spec_created": on_spec_created},
                          together={"app.spec_created": on_specs_created})

    async with kit_service("trainer", batch_size=16, messagebus=messagebus) as library:
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) = 40 FROM inbox"), message="the backlog")
        rows = await outbox_rows(library)
    assert any(size > 1 for size in batches), "no batch went to the batch handler"
    assert {row["causation_id"]: row["correlation_id"] for row in rows} == {
        str(event.event_id): event.correlation_id for event in events}
    assert len(rows) == 40


async def test_a_guarded_change_that_did_not_apply_writes_no_events_and_counts_nothing(kit_service):
    async with kit_service("builder") as builder:
        await names_table(builder)

        async def claim(app: str) -> bool:
            async with builder.uow().statement() as uow:
                uow.record("app.spec_created", spec_created(app), correlation_id=app)
                COUNTED.labels("guarded").inc()
                return await uow.commit_guarded(Statement(CLAIM, [app]))

        assert await claim("APP-GUARD0") is True
        assert await claim("APP-GUARD0") is False  # the name is taken: the guard did not apply
        assert await names(builder) == ["APP-GUARD0"]
        assert [row["correlation_id"] for row in await outbox_rows(builder)] == ["APP-GUARD0"]
        assert counted("guarded") == 1


@dataclass(frozen=True)
class ClaimName(Command):
    name: str


async def test_the_message_bus_runs_each_command_in_a_fresh_unit_with_its_dependencies(kit_service):
    units = []

    async def claim_name(command, uow, seen):
        seen.append(uow)
        async with uow.statement():
            uow.record("app.spec_created", spec_created(command.name), correlation_id=command.name)
            return await uow.commit_guarded(Statement(CLAIM, [command.name]))

    async with kit_service("builder") as builder:
        await names_table(builder)
        bus = MessageBus(builder.uow, commands={ClaimName: claim_name}, dependencies={"seen": units})
        assert await bus.handle(ClaimName("APP-FIRST0")) is True
        assert await bus.handle(ClaimName("APP-FIRST0")) is False
        assert await bus.handle(ClaimName("APP-OTHER0")) is True
        with pytest.raises(LookupError):
            await bus.handle(Command())
        assert len({id(uow) for uow in units}) == 3 and [uow.committed for uow in units] == [True, False, True]
        assert await names(builder) == ["APP-FIRST0", "APP-OTHER0"]
        assert [row["correlation_id"] for row in await outbox_rows(builder)] == ["APP-FIRST0", "APP-OTHER0"]


async def test_the_message_bus_consumes_its_events_from_the_services_event_bus(kit_service, fresh):
    async def on_spec_created(event, uow):
        async with uow:
            await uow.conn.execute(CLAIM, event.correlation_id)
            uow.record("workload.cancel_requested", cancel_requested(event))
            await uow.commit()

    def messagebus(kit):
        return MessageBus(kit.uow, events={"app.spec_created": on_spec_created})

    async with kit_service("trainer", messagebus=messagebus) as library:
        await names_table(library)
        event = spec_event("APP-BUSED0")
        await publish(fresh.rabbitmq_url, "app.spec_created", event)
        await wait_until(lambda: library.pool.fetchval("SELECT count(*) FROM inbox"), message="the event consumed")
        assert library.messagebus.event_types == ["app.spec_created"]
        assert await names(library) == ["APP-BUSED0"]
        [row] = await outbox_rows(library)
        assert row["routing_key"] == "workload.cancel_requested" and row["causation_id"] == str(event.event_id)
