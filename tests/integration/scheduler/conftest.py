"""Real Redis (127.0.0.1:6379, DB 0) under a unique key prefix per test, removed afterwards;
an in-test Kubernetes API server for the Kubernetes runner."""
from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from tests.integration.scheduler.sched_fake_kube import FakeKubeApi

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _cleanup(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i:i + 500])
    finally:
        await client.aclose()


@pytest.fixture
async def prefix():
    value = f"avatar-test-{uuid.uuid4().hex}:"
    yield value
    await _cleanup(value)


@pytest.fixture
async def redis_client():
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def second_redis_client():
    """A separate connection pool: stands for a second scheduler replica."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def kube():
    api = FakeKubeApi()
    await api.start()
    yield api
    await api.stop()
