"""A service's Redis client under a burst (services/kit/instrument.py `redis_pool`): more concurrent commands
than connections wait their turn instead of failing as if Redis were away."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis.exceptions

from services.kit.instrument import REDIS_CONNECTIONS, redis_from_url


async def test_a_burst_of_more_commands_than_connections_is_served_whole(infra):
    client = redis_from_url(infra.redis_url)
    try:
        answers = await asyncio.gather(*(client.ping() for _ in range(3 * REDIS_CONNECTIONS)),
                                       return_exceptions=True)
    finally:
        await client.aclose()
    assert answers == [True] * (3 * REDIS_CONNECTIONS)


async def test_a_command_waits_for_a_connection_only_so_long(infra):
    client = redis_from_url(infra.redis_url, max_connections=1, timeout=0.3)
    key = f"{infra.redis_prefix}pool-test-{time.monotonic_ns()}"
    holding = asyncio.create_task(client.blpop([key], timeout=1))  # holds the one connection
    try:
        await asyncio.sleep(0.1)
        began = time.monotonic()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        assert 0.25 <= time.monotonic() - began < 1.0
        assert await holding is None  # the command holding it was not disturbed
        assert await client.ping()  # and the connection serves the next one
    finally:
        holding.cancel()
        await client.aclose()
