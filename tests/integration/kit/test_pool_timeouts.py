"""While PostgreSQL is away a request gives up within seconds (and answers 503), well inside a client's own
timeout: a pool's acquire and its connects are bounded (services/kit/db.py)."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from services.kit import db
from services.kit.db import create_pool
from services.kit.errors import dependency_away


async def test_an_acquire_gives_up_when_no_connection_frees_in_time(fresh):
    pool = await create_pool(fresh.postgres_url, "public", max_size=1, acquire_timeout=0.5)
    try:
        async with pool.acquire():  # the only connection, held (a stuck request, a long batch)
            began = time.monotonic()
            with pytest.raises(TimeoutError) as caught:
                async with pool.acquire():
                    pass
            waited = time.monotonic() - began
            assert 0.4 < waited < 2, waited
            assert dependency_away(caught.value) == "postgresql"  # so the request answers 503, not 500
            began = time.monotonic()
            with pytest.raises(TimeoutError):  # a caller's own timeout still wins
                await pool.acquire(timeout=0.1)
            assert time.monotonic() - began < 0.4
        assert await pool.fetchval("SELECT 1") == 1  # freed: served again
    finally:
        await pool.close()


async def test_a_server_that_accepts_but_never_answers_fails_the_connect_by_default():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await create_pool(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/avatar", "public")
        waited = time.monotonic() - began
        assert waited < db.CONNECT_TIMEOUT_SECONDS + 2, waited
    finally:
        silent.close()
