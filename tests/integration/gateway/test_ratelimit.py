"""Rate limits at the gateway: per user and per address in a Redis moving window, 429 with Retry-After."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from services.gateway import ratelimit
from services.gateway.main import create_app
from tests.integration.gateway.conftest import gateway_settings
from tests.support.services import auth, running_service


async def test_a_user_over_the_limit_gets_429_with_retry_after_and_others_go_on(fresh):
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_user="5/minute",
                                rate_limit_address="1000/minute", redis_prefix=f"rl-{uuid.uuid4().hex[:6]}:")
    async with running_service(create_app, settings) as gateway:
        kim, lee = auth(gateway.settings, "viewer", "kim"), auth(gateway.settings, "viewer", "lee")
        answers = [(await gateway.client.get("/api/auth/me", headers=kim)).status_code for _ in range(7)]
        assert all(a != 429 for a in answers[:5]) and answers[5:] == [429, 429]
        refused = await gateway.client.get("/api/auth/me", headers=kim)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "user" in refused.json()["detail"]
        assert (await gateway.client.get("/api/auth/me", headers=lee)).status_code != 429
        # health, readiness and metrics are never limited
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await gateway.client.get(path)).status_code == 200


async def test_an_address_over_its_limit_is_refused_before_credentials_are_looked_at(fresh):
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_address="4/minute",
                                redis_prefix=f"rl-{uuid.uuid4().hex[:6]}:")
    async with running_service(create_app, settings) as gateway:
        answers = [(await gateway.client.get("/api/auth/me", headers={"Authorization": "Bearer junk"})).status_code
                   for _ in range(6)]
        assert answers[:4] == [401] * 4 and answers[4:] == [429, 429]
        assert (await gateway.client.get("/healthz")).status_code == 200


async def test_logins_from_one_address_have_their_own_stricter_limit(fresh):
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_login="3/minute",
                                redis_prefix=f"rl-{uuid.uuid4().hex[:6]}:")
    async with running_service(create_app, settings) as gateway:
        answers = [(await gateway.client.post("/api/auth/login", json={"user": f"u{i}", "password": "x" * 12})).status_code
                   for i in range(4)]
        assert answers[:3] == [401] * 3 and answers[3] == 429
        assert (await gateway.client.get("/api/auth/providers")).status_code == 200  # other routes still answer


@pytest.mark.parametrize("waves", [14, 2], ids=["waves of 25", "bursts of 175"])
async def test_a_busy_caller_decided_partly_by_the_gateway_itself_still_gets_exactly_its_limit(fresh, waves):
    """A limit large enough for allowances (services/gateway/ratelimit.py): bursts from many connections
    are admitted exactly up to the limit, and every admitted request is counted in the Redis window."""
    prefix = f"rl-{uuid.uuid4().hex[:6]}:"
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_user="300/minute",
                                rate_limit_address="100000/minute", redis_prefix=prefix)
    async with running_service(create_app, settings) as gateway:
        kim = auth(gateway.settings, "viewer", "kim")
        limiter = gateway.app.state.limiter

        async def ask() -> int:
            return (await gateway.client.get("/api/auth/me", headers=kim)).status_code

        before = dict(_decisions())
        answers = []
        for _ in range(waves):  # the counter task counts and grants again between them
            answers += await asyncio.gather(*(ask() for _ in range(350 // waves)))
            await asyncio.sleep(ratelimit.FLUSH_SECONDS * 1.5)
        assert answers.count(200) == 300 and answers.count(429) == 50
        await limiter._count_pending()
        stats = await limiter._limiter.get_window_stats(limiter.per_user, "user", "kim")
        assert stats.remaining == 0  # each admitted request counted once, none twice
        here = dict(_decisions()).get("allowance", 0) - before.get("allowance", 0)
        assert here > 0  # some were decided here, without a round trip to Redis


def _decisions():
    for metric in ratelimit.DECIDED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                yield sample.labels["where"], sample.value
