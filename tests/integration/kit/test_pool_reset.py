"""A pooled connection is reset on release only when it ran something that outlives a transaction;
what a session holds (an advisory lock, a LISTEN, a setting) never leaks to the next acquirer."""
import asyncpg

from services.kit.db import create_pool


async def backend_query(url: str, pid: int) -> str:
    """The last statement the backend ran, seen from a connection of its own."""
    other = await asyncpg.connect(url)
    try:
        return await other.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await other.close()


async def test_session_state_is_reset_and_plain_work_skips_the_round_trip(fresh):
    pool = await create_pool(fresh.postgres_url, "resettest", max_size=2)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            async with conn.transaction():
                await conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
                await conn.fetchval("SELECT count(*) FROM t")
        # released without a reset: the backend's last statement is still ours (the COMMIT)
        assert await backend_query(fresh.postgres_url, pid) == "COMMIT;"

        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            await conn.execute("SELECT pg_advisory_lock(4242)")
            await conn.execute("SET statement_timeout = 1234")
            await conn.fetchval("SELECT set_config('work_mem', '7MB', false)")
            await conn.add_listener("avatar_reset_test", lambda *_: None)
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                       " AND objid = 4242 AND pid = $1", pid) == 0
            assert await conn.fetchval("SHOW statement_timeout") != "1234ms"
            assert await conn.fetchval("SHOW work_mem") != "7MB"
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            await conn.fetchval("SELECT 1")
        # clean again: the next release skips the reset
        assert "SELECT 1" in await backend_query(fresh.postgres_url, pid)
    finally:
        await pool.close()


async def test_set_config_alone_marks_the_session_changed(fresh):
    pool = await create_pool(fresh.postgres_url, "resettest2", max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT set_config('work_mem', '7MB', false)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW work_mem") != "7MB"
    finally:
        await pool.close()
