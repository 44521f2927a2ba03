"""A handler registered with a lock holds it from its inbox claim to its commit, and only for a claimed event."""
import asyncio

from contracts.events import make_event
from services.kit import metrics
from tests.integration.kit.test_outbox import spec_created
from tests.support.broker import publish
from tests.support.infra import wait_until

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2))"


def _event(app_id: str):
    return make_event("app.spec_created", spec_created(app_id), producer="test", correlation_id=app_id)


def _duplicates() -> float:
    return metrics.EVENTS_CONSUMED.labels("library", "app.spec_created", "duplicate")._value.get()


async def test_the_lock_is_held_while_the_handler_runs_and_serialises_events_on_one_key(kit_service, fresh):
    running: list[str] = []
    overlapped: list[str] = []
    free_to_others: list[bool] = []
    release = asyncio.Event()
    pools = []

    async def on_spec_created(event, ctx):
        overlapped.extend(running)
        running.append(event.correlation_id)
        try:
            if event.correlation_id == "APP-000001":
                async with pools[0].acquire() as other, other.transaction():
                    free_to_others.append(await other.fetchval(TRY_LOCK, "test.app", "one key"))
                await release.wait()
        finally:
            running.remove(event.correlation_id)

    locks = {"app.spec_created": lambda event: ("test.app", "one key")}  # every event on the same key
    async with kit_service("library", {"app.spec_created": on_spec_created}, locks) as library:
        pools.append(library.pool)
        first = _event("APP-000001")
        await publish(fresh.rabbitmq_url, "app.spec_created", first)
        await wait_until(lambda: free_to_others == [False], message="the first handler holding the lock")
        await publish(fresh.rabbitmq_url, "app.spec_created", _event("APP-000002"))  # delivered now, must wait
        await asyncio.sleep(0.5)
        assert running == ["APP-000001"], "the second handler ran while the first held the lock"
        release.set()

        async def both_handled():
            return await library.pool.fetchval("SELECT count(*) FROM inbox") == 2
        await wait_until(both_handled, message="both events handled, one after the other")

        skipped = _duplicates()
        await publish(fresh.rabbitmq_url, "app.spec_created", first)  # delivered again: a duplicate
        await wait_until(lambda: _duplicates() > skipped, message="the duplicate skipped")
        async with library.pool.acquire() as conn, conn.transaction():
            assert await conn.fetchval(TRY_LOCK, "test.app", "one key"), "a skipped duplicate left the lock held"
    assert overlapped == []
