"""The listening helper (services/kit/listening.py) on PostgreSQL: one holder of a lock key at a time, on a
pool's connection or one of its own; the holder is woken by another process's NOTIFY and by this process's
commits without one; giving the connection back frees the lock for a standby."""
from __future__ import annotations

import asyncpg
import pytest

from services.kit.db import advisory_lock_key, create_pool
from services.kit.listening import Listening
from services.kit.wakeups import Wakeups

CHANNEL = "probe_listening"


@pytest.fixture
async def pool(fresh):
    pool = await create_pool(fresh.postgres_url, "public")
    yield pool
    await pool.close()


async def notify_from_elsewhere(url: str) -> None:
    other = await asyncpg.connect(url)
    try:
        await other.execute("SELECT pg_notify($1, '')", CHANNEL)
    finally:
        await other.close()


async def test_one_holder_of_a_lock_listens_and_a_standby_takes_over_once_it_gives_the_connection_back(fresh, pool):
    key = advisory_lock_key("probe", CHANNEL)
    here, there = Wakeups(pool, "probe"), Wakeups(pool, "probe")  # two processes' wake-ups
    first = Listening.on_pool(pool, CHANNEL, here, lock_key=key)
    standby = Listening.on_pool(pool, CHANNEL, there, lock_key=key)
    try:
        assert await first.hold()
        assert not await standby.hold()

        first.clear()
        await notify_from_elsewhere(fresh.postgres_url)
        assert await first.wait(5), "the holder was not woken by another process's NOTIFY"

        first.clear()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1")
            here.after_commit(conn, CHANNEL)
        assert await first.wait(5), "the holder was not woken by this process's commit"

        await first.drop()  # the pool's reset unlocks
        assert await standby.hold()
        standby.clear()
        await notify_from_elsewhere(fresh.postgres_url)
        assert await standby.wait(5)
    finally:
        await first.drop()
        await standby.drop()
        await here.close()
        await there.close()


async def test_a_connection_of_its_own_holds_the_lock_until_it_is_closed(fresh, pool):
    key = advisory_lock_key("probe", "own")
    wakeups = Wakeups(pool, "probe")

    def own() -> Listening:
        return Listening(CHANNEL, wakeups, connect=lambda: asyncpg.connect(fresh.postgres_url),
                         release=lambda conn: conn.close(), lock_key=key)

    leader, standby = own(), own()
    try:
        assert await leader.hold() and not await standby.hold()
        assert standby.conn is None  # the connection that found the lock taken is closed, not kept
        await leader.drop()
        assert await standby.hold()
    finally:
        await leader.drop()
        await standby.drop()
        await wakeups.close()
