"""The retention sweep deletes old messaging bookkeeping in batches and keeps everything a duplicate
could still need: unsent outbox rows, and anything younger than the retention."""
import asyncio
import contextlib
import uuid
from datetime import timedelta

from services.kit import metrics
from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool
from services.kit.retention import prune, sweep_forever
from tests.support.infra import wait_until


@contextlib.asynccontextmanager
async def kit_schema(fresh, schema: str, *, month_old_inbox_rows: int = 0):
    """A pool on a schema with the kit's tables, holding that many inbox records 30 days old."""
    pool = await create_pool(fresh.postgres_url, schema)
    try:
        await apply_migrations(pool, schema, {"kit": KIT_MIGRATIONS})
        for _ in range(month_old_inbox_rows):
            await pool.execute("INSERT INTO inbox (event_id, event_type, received_at)"
                               " VALUES ($1, 'x', now() - interval '30 days')", uuid.uuid4())
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def sweeping(pool, service: str, **options):
    """The service's retention loop running in the background (an hour between regular sweeps)."""
    task = asyncio.create_task(sweep_forever(pool, service, timedelta(days=7), every=3600, **options))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_old_rows_go_in_batches_young_and_unsent_rows_stay(fresh):
    async with kit_schema(fresh, "retention") as pool:
        old, young = "now() - interval '10 days'", "now() - interval '1 day'"
        async with pool.acquire() as conn:
            for age, sent, n in ((old, True, 25), (old, False, 3), (young, True, 4)):
                for _ in range(n):
                    await conn.execute(
                        f"INSERT INTO outbox (event_id, routing_key, payload, created_at, sent_at)"
                        f" VALUES ($1, 'x', '{{}}', {age}, {age if sent else 'NULL'})", uuid.uuid4())
            for age, n in ((old, 23), (young, 2)):
                for _ in range(n):
                    await conn.execute(f"INSERT INTO inbox (event_id, event_type, received_at) VALUES ($1, 'x', {age})",
                                       uuid.uuid4())
            for i, age in enumerate((old, old, young)):
                await conn.execute(f"INSERT INTO trace_context (correlation_id, headers, updated_at)"
                                   f" VALUES ($1, '{{}}', {age})", f"WL-{i}")

        deleted = await prune(pool, timedelta(days=7), batch=10)
        assert deleted == {"outbox": 25, "inbox": 23, "trace_context": 2}
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 3  # never sent: kept
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 7
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 2
        assert await pool.fetchval("SELECT array_agg(correlation_id) FROM trace_context") == ["WL-2"]
        assert await prune(pool, timedelta(days=7), batch=10) == {"outbox": 0, "inbox": 0, "trace_context": 0}

        # a sweep stops after max_batches and the next one goes on
        async with pool.acquire() as conn:
            for _ in range(5):
                await conn.execute(f"INSERT INTO inbox (event_id, event_type, received_at) VALUES ($1, 'x', {old})",
                                   uuid.uuid4())
        assert (await prune(pool, timedelta(days=7), batch=2, max_batches=1))["inbox"] == 2
        assert (await prune(pool, timedelta(days=7), batch=2))["inbox"] == 3


async def test_the_service_loop_sweeps_at_once_and_counts_what_it_deleted(fresh):
    async with kit_schema(fresh, "retention_loop", month_old_inbox_rows=3) as pool:
        counter = metrics.RETENTION_DELETED.labels("retention-loop", "inbox")
        before = counter._value.get()
        async with sweeping(pool, "retention-loop"):
            await wait_until(lambda: counter._value.get() - before == 3, message="the first sweep")
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 0


async def test_a_capped_sweep_goes_on_soon_instead_of_waiting_the_whole_period(fresh):
    async with kit_schema(fresh, "retention_capped", month_old_inbox_rows=9) as pool:
        # 2 rows per sweep at most, an hour between sweeps: only the cap's short pause can empty it
        async with sweeping(pool, "retention-capped", batch=2, max_batches=1):
            await wait_until(lambda: pool.fetchval("SELECT count(*) = 0 FROM inbox"), timeout=15,
                             message="the backlog swept")
