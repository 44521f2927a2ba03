"""Wake-ups after a commit (services/kit/wakeups.py): a listener hears of a change only once it has
committed, never of one rolled back; this process's listeners are woken without a NOTIFY; wake-ups asked
for while one is being sent go out together; one that cannot be sent is counted, not raised."""
from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from services.kit import metrics, wakeups as wakeups_module
from services.kit.db import create_pool
from services.kit.wakeups import Wakeups
from tests.support.infra import wait_until

CHANNEL = "probe_wake"


def counted(channel: str, delivery: str, service: str = "probe") -> float:
    return metrics.WAKEUPS.labels(service, channel, delivery)._value.get()


@pytest.fixture
async def pool(fresh):
    pool = await create_pool(fresh.postgres_url, "public")
    await pool.execute("CREATE TABLE IF NOT EXISTS probe_rows (name text PRIMARY KEY)")
    yield pool
    await pool.close()


@contextlib.asynccontextmanager
async def listening(url: str, *channels: str):
    """Every notification another process's LISTEN would hear while the block runs, as (channel, rows
    visible to that process when it was heard)."""
    heard: list[tuple[str, int]] = []
    reader = await asyncpg.connect(url)
    listener = await asyncpg.connect(url)

    def hear(_conn, _pid, channel, _payload) -> None:
        heard.append((channel, -1))
        index = len(heard) - 1

        async def look() -> None:  # what the woken process reads once it looks
            heard[index] = (channel, await reader.fetchval("SELECT count(*) FROM probe_rows"))

        asyncio.get_running_loop().create_task(look())

    for channel in channels:
        await listener.add_listener(channel, hear)
    try:
        yield heard
    finally:
        await listener.close()
        await reader.close()


async def test_another_process_hears_of_a_change_once_it_is_committed_and_never_of_one_rolled_back(fresh, pool):
    wakeups = Wakeups(pool, "probe")
    async with listening(fresh.postgres_url, CHANNEL) as heard:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("INSERT INTO probe_rows VALUES ('committed')")
                wakeups.after_commit(conn, CHANNEL)
                await asyncio.sleep(0.3)
                assert heard == [], "woken before the change was committed"
            await wait_until(lambda: heard and heard[0][1] >= 0, 5, message="the wake-up")
            assert heard == [(CHANNEL, 1)], "the woken process did not see the committed row"

            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO probe_rows VALUES ('rolled back')")
                    wakeups.after_commit(conn, CHANNEL)
                    raise RuntimeError("the change failed")
            # outside a transaction the statement has committed when it returns: woken at once
            await conn.execute("INSERT INTO probe_rows VALUES ('autocommitted')")
            wakeups.after_commit(conn, CHANNEL)
        await wait_until(lambda: len(heard) == 2 and heard[1][1] >= 0, 5, message="the second wake-up")
        await asyncio.sleep(0.3)
    await wakeups.close()
    assert heard == [(CHANNEL, 1), (CHANNEL, 2)], "a rolled-back change woke a listener"


async def test_a_listener_of_this_process_is_woken_directly_without_a_notify(fresh, pool):
    wakeups = Wakeups(pool, "probe")
    woken: list[str] = []

    def relay() -> None:  # stands for a relay of this process that leads
        woken.append("here")

    wakeups.listen(CHANNEL, relay)
    notified = counted(CHANNEL, "notify")
    async with listening(fresh.postgres_url, CHANNEL) as heard:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO probe_rows VALUES ('local')")
            wakeups.after_commit(conn, CHANNEL)
            assert woken == []  # not before the commit
        assert woken == ["here"]
        await asyncio.sleep(0.3)
        assert heard == []
        assert counted(CHANNEL, "notify") == notified

        # once it stops listening, the next commit's wake-up goes out as a NOTIFY (another replica's listener)
        wakeups.unlisten(CHANNEL, relay)
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO probe_rows VALUES ('elsewhere')")
            wakeups.after_commit(conn, CHANNEL)
        await wait_until(lambda: heard, 5, message="the NOTIFY")

        # a listener here that cannot take the work now (a store worker with no free slot): both it and
        # the other processes' listeners are woken
        def busy_worker() -> bool:
            woken.append("busy")
            return False

        wakeups.listen(CHANNEL, busy_worker)
        heard.clear()
        wakeups.wake(CHANNEL)
        await wait_until(lambda: heard, 5, message="the NOTIFY for the other replicas")
        assert woken == ["here", "busy"]

        # closed (the service is stopping, its pool about to close): this process's listeners only
        await wakeups.close()
        heard.clear()
        wakeups.wake(CHANNEL)
        await asyncio.sleep(0.3)
        assert heard == [] and woken == ["here", "busy", "busy"]


async def test_wake_ups_asked_for_while_one_is_sent_go_out_together(fresh, pool):
    """Two hundred commits' wake-ups on two channels, asked for in one go: one NOTIFY statement carries
    both channels, and each listener hears once, not a hundred times."""
    wakeups = Wakeups(pool, "probe")
    async with listening(fresh.postgres_url, "probe_a", "probe_b") as heard:
        for n in range(100):
            wakeups.wake("probe_a")
            wakeups.wake("probe_b")
        await wakeups.close()
        await wait_until(lambda: len(heard) >= 2, 5, message="both channels woken")
        await asyncio.sleep(0.3)
    assert sorted(channel for channel, _ in heard) == ["probe_a", "probe_b"]


async def test_a_wake_up_that_cannot_be_sent_is_retried_then_counted_lost_not_raised(fresh, pool, monkeypatch):
    monkeypatch.setattr(wakeups_module, "RETRY_SECONDS", (0.05, 0.05))
    gone = await create_pool(fresh.postgres_url, "public")
    await gone.close()  # the database is away for this process
    wakeups = Wakeups(gone, "probe")
    lost = counted(CHANNEL, "lost")
    wakeups.wake(CHANNEL)
    await wait_until(lambda: counted(CHANNEL, "lost") == lost + 1, 5, message="the lost wake-up counted")
    await wakeups.close()

    # a working pool: the wake-ups go out again
    wakeups = Wakeups(pool, "probe")
    async with listening(fresh.postgres_url, CHANNEL) as heard:
        wakeups.wake(CHANNEL)
        await wait_until(lambda: heard, 5, message="the NOTIFY")
    await wakeups.close()
