"""How the rate limiter keeps its allowances' count honest when Redis blinks, answers half a round trip, or
the process stops (services/gateway/ratelimit.py). Redis is an in-memory window here, so that each failure
can be made to happen exactly where it matters; tests/integration/gateway/test_ratelimit.py runs on Redis."""
from __future__ import annotations

import asyncio
import collections
import time

import pytest
from fastapi import HTTPException
from limits.util import WindowStats

from services.gateway import ratelimit
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import GatewaySettings


class Window:
    """A fixed window per limit and key that can be away, or fail only its reads, on demand."""

    def __init__(self, delay: float = 0.0) -> None:
        self.used: collections.Counter = collections.Counter()
        self.away = False
        self.reads_fail = False
        self.delay = delay
        self.hit_sent = asyncio.Event()

    async def hit(self, item, *identifiers, cost: int = 1) -> bool:
        self.hit_sent.set()
        await asyncio.sleep(self.delay)
        if self.away:
            raise ConnectionError("Redis is away")
        key = (item, *identifiers)
        if self.used[key] + cost > item.amount:
            return False
        self.used[key] += cost
        return True

    async def get_window_stats(self, item, *identifiers) -> WindowStats:
        await asyncio.sleep(self.delay)
        if self.away or self.reads_fail:
            raise ConnectionError("Redis is away")
        return WindowStats(time.time() + 60, item.amount - self.used[(item, *identifiers)])

    def counted(self, limiter: RateLimiter, user: str) -> int:
        return self.used[(limiter.per_user, "user", user)]


def limiter_on(window: Window, per_user: str = "1000/minute") -> RateLimiter:
    settings = GatewaySettings.model_construct(rate_limits_enabled=True, rate_limit_user=per_user,
                                               rate_limit_address="100000/minute", rate_limit_login="30/minute",
                                               redis_url="redis://127.0.0.1:1/0", redis_prefix="test:")
    limiter = RateLimiter(settings)
    limiter._limiter = window  # type: ignore[assignment]
    return limiter


async def admitted(limiter: RateLimiter, user: str, n: int) -> int:
    answers = await asyncio.gather(*(limiter.check_user(user) for _ in range(n)), return_exceptions=True)
    assert all(a is None or isinstance(a, HTTPException) for a in answers), answers
    return sum(a is None for a in answers)


async def test_requests_admitted_here_while_redis_is_away_are_counted_once_it_is_back():
    window = Window()
    limiter = limiter_on(window)
    assert await admitted(limiter, "kim", 1) == 1  # Redis decides, and grants an allowance
    assert await admitted(limiter, "kim", 10) == 10  # decided here
    window.away = True
    assert not await limiter._count_pending()  # the round fails: nothing lost
    window.away = False
    assert await limiter._count_pending()
    assert window.counted(limiter, "kim") == 11


async def test_a_hit_whose_window_read_fails_is_counted_once():
    window = Window()
    limiter = limiter_on(window)
    assert await admitted(limiter, "kim", 1) == 1
    assert await admitted(limiter, "kim", 5) == 5
    allowance = next(iter(limiter._allowances.values()))
    allowance.revoke()  # the next request asks Redis, carrying the five admitted here
    window.reads_fail = True
    assert await admitted(limiter, "kim", 1) == 1
    window.reads_fail = False
    await limiter._count_pending()
    assert window.counted(limiter, "kim") == 7


@pytest.mark.parametrize("moment", ["between rounds", "in a round"])
async def test_what_was_admitted_here_is_counted_when_the_process_stops(moment):
    window = Window()
    limiter = limiter_on(window)
    limiter._counter = asyncio.get_running_loop().create_task(limiter._count_forever())
    users = [f"user-{n}" for n in range(ratelimit.COUNT_AT_ONCE + 6)]  # more than one round counts at once
    for user in users:
        assert await admitted(limiter, user, 1) == 1
        assert await admitted(limiter, user, 8) == 8
    if moment == "in a round":  # the counter's hits are on their way when the process stops
        window.delay, window.hit_sent = 5.0, asyncio.Event()
        await asyncio.wait_for(window.hit_sent.wait(), 2)
        window.delay = 0.0
    await limiter.__aexit__(None, None, None)
    assert [window.counted(limiter, user) for user in users] == [9] * len(users)


@pytest.mark.parametrize("delay", [0.0, 0.002])
async def test_concurrent_bursts_never_pass_the_limit_and_every_admitted_one_is_counted(delay):
    window = Window(delay=delay)
    limiter = limiter_on(window, per_user="300/minute")
    total = 0
    for _ in range(6):  # bursts while Redis answers slowly, counted between them
        total += await admitted(limiter, "kim", 70)
        await limiter._count_pending()
    assert total == 300 == window.counted(limiter, "kim")
