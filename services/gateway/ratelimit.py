"""Rate limits per user and per address: a moving window in Redis (`limits`), answered 429 with Retry-After.

Every request under /api/ counts once: against its user once the caller is known, against its address when
it has no caller (a login, a public route, credentials that fail), so a flood of bad credentials is limited
too. Health, readiness, metrics and the console's files are never limited. When Redis is away the limit is
not enforced (counted in avatar_gateway_rate_limit_unavailable_total): refusing every request because the
counter store blinked would turn a Redis restart into a platform outage.

A caller far below its limit is not made to wait for Redis on every request: once Redis said how much of
its window is left (asked with the request that finds no allowance, in the same round trip), this process
may admit up to half of that (less what Redis may not have seen yet, and at most a fiftieth of the limit)
on its own for the next second, and counts those requests into the window a moment later, in one hit. Every
request is counted, none is admitted past the limit by one gateway (two replicas could each spend their
half), and near its limit a caller is decided by Redis request by request (`Allowance`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from services.gateway.settings import UPSTREAMS, GatewaySettings
from services.kit.instrument import redis_pool

log = logging.getLogger(__name__)
CALLER_COUNTED = (*(f"/api/{service}/" for service in UPSTREAMS), "/api/events")
LIMITED = Counter("avatar_gateway_rate_limited_total", "Requests the gateway refused with 429", ["scope"])
UNAVAILABLE = Counter("avatar_gateway_rate_limit_unavailable_total",
                      "Requests let through unlimited because the rate-limit store did not answer")
DECIDED = Counter("avatar_gateway_rate_limit_decisions_total",
                  "Requests admitted or refused by the rate limits, by where the decision was made", ["where"])
SHARE = 50              # an allowance holds at most this share of a limit: 1200/minute lets 24 go ahead
ALLOWANCE_SECONDS = 1.0  # an allowance not spent within this long is dropped (the window moved on)
FLUSH_SECONDS = 0.1      # requests admitted from an allowance reach the window this soon after
MAX_ALLOWANCES = 20_000  # callers remembered per process; past it the idle ones go
COUNT_AT_ONCE = 64       # callers whose admitted requests are counted into Redis concurrently
RETRY_SECONDS = 1.0      # between rounds while Redis does not answer


@dataclass
class Allowance:
    """What this process may admit for one caller (one limit and key) without asking Redis, and what it
    admitted that way and has not counted into the window yet. Pure: the clock comes in."""

    left: int = 0       # requests it may still admit on its own
    until: float = 0.0  # ... before this time
    pending: int = 0    # admitted here, not yet sent to Redis
    in_flight: int = 0  # sent to Redis, not answered yet
    sent: int = 0       # sent to Redis so far: what a read of the window may not have seen yet

    def take(self, now: float) -> bool:
        """Admit one request here, if the allowance covers it."""
        if self.left > 0 and now < self.until:
            self.left -= 1
            self.pending += 1
            return True
        return False

    def sending(self, cost: int) -> None:
        self.in_flight += cost
        self.sent += cost

    def answered(self, cost: int) -> None:
        self.in_flight -= cost

    def mark(self) -> tuple[int, int]:
        """Taken as a read of the window goes out, for `grant`: what was sent by then, and what was in flight."""
        return self.sent, self.in_flight

    def grant(self, remaining: int, amount: int, now: float, mark: tuple[int, int] | None = None) -> None:
        """Redis said `remaining` of the window's `amount` are left, in a read that went out at `mark`: what
        the read may have missed (requests in flight then or sent since, and those admitted here meanwhile)
        is taken off first, then this process may admit half of the rest, at most a share of the limit."""
        unseen = self.pending + (0 if mark is None else mark[1] + self.sent - mark[0])
        self.left = max(0, min(amount // SHARE, (remaining - unseen) // 2))
        self.until = now + ALLOWANCE_SECONDS

    def revoke(self) -> None:
        self.left = 0

    def idle(self, now: float) -> bool:
        return self.pending == 0 and self.in_flight == 0 and now >= self.until


def too_many(scope: str, reset_at: float, now: float | None = None) -> HTTPException:
    """The 429 a caller gets: which limit, and when to try again (whole seconds, at least one)."""
    retry_after = max(1, math.ceil(reset_at - (time.time() if now is None else now)))
    return HTTPException(429, f"too many requests for this {scope}; try again in {retry_after} s",
                         headers={"Retry-After": str(retry_after)})


class RateLimiter(contextlib.AbstractAsyncContextManager):
    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.per_user = parse(settings.rate_limit_user)
        self.per_address = parse(settings.rate_limit_address)
        self.per_login = parse(settings.rate_limit_login)
        self._redis_url = settings.redis_url
        self._pool: Any = None
        self._url = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self._prefix = f"{settings.redis_prefix}gateway:rate"
        self._limiter: MovingWindowRateLimiter | None = None
        self._allowances: dict[tuple[Any, str, str], Allowance] = {}
        self._due: set[tuple[Any, str, str]] = set()  # allowances with something to count or to ask Redis
        self._wake = asyncio.Event()
        self._counter: asyncio.Task | None = None
        self._full_until = 0.0  # until then every allowance is taken (none was idle at the last look)

    async def __aenter__(self) -> "RateLimiter":
        if self.enabled:
            # a burst of callers waits its turn for a connection rather than passing unlimited
            self._pool = redis_pool(self._redis_url, timeout=1, socket_timeout=1, socket_connect_timeout=1)
            storage = RedisStorage(self._url, implementation="redispy", key_prefix=self._prefix,
                                   connection_pool=self._pool)
            self._limiter = MovingWindowRateLimiter(storage)
            self._counter = asyncio.get_running_loop().create_task(self._count_forever())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._counter is not None:
            self._counter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._counter
            # what was admitted counts, for the other replicas (a round the cancel cut short included)
            self._due.update(limit for limit, allowance in self._allowances.items() if allowance.pending)
            await self._count_pending()
        self._limiter = None
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def check_address(self, address: str, *, login: bool = False) -> None:
        await self._hit(self.per_login if login else self.per_address, "login address" if login else "address",
                        address)

    async def check_user(self, user: str) -> None:
        await self._hit(self.per_user, "user", user)

    async def _hit(self, item: Any, scope: str, key: str) -> None:
        if self._limiter is None:
            return
        limit = (item, scope, key)
        allowance = self._allowances.get(limit)
        if allowance is not None and allowance.take(time.monotonic()):
            DECIDED.labels("allowance").inc()
            self._mark_due(limit)
            return
        # a limit large enough to let requests go ahead here asks what is left in the same round trip, so the
        # caller's next requests (the rest of a page's burst) are decided here; a small one only when refused
        shared = item.amount // SHARE >= 1
        if allowance is None and shared:
            allowance = self._allowance(limit)
        # what this process admitted on its own is counted with this request: Redis then decides on all
        pending = 0
        if allowance is not None:
            pending, allowance.pending = allowance.pending, 0
            allowance.sending(1 + pending)
        admitted, stats, mark = False, None, None
        try:
            if shared and allowance is not None:
                mark = allowance.mark()
                hit, read = await asyncio.gather(self._limiter.hit(item, scope, key, cost=1 + pending),
                                                 self._limiter.get_window_stats(item, scope, key),
                                                 return_exceptions=True)
                if isinstance(hit, BaseException):
                    raise hit
                admitted, stats = hit, None if isinstance(read, BaseException) else read
            else:
                admitted = await self._limiter.hit(item, scope, key, cost=1 + pending)
        except Exception as exc:  # Redis away: let the request through (module docstring)
            UNAVAILABLE.inc()
            log.warning("rate limit not enforced: %s", exc)
            return
        finally:
            if allowance is not None:
                allowance.answered(1 + pending)
                if pending and not admitted:
                    allowance.pending += pending  # not counted yet: the counter task tries again
                    self._mark_due(limit)
        DECIDED.labels("redis").inc()
        if admitted:
            if mark is not None and stats is not None:
                allowance.grant(stats.remaining, item.amount, time.monotonic(), mark)
            return
        LIMITED.labels(scope).inc()
        if stats is None:
            with contextlib.suppress(Exception):
                stats = await self._limiter.get_window_stats(item, scope, key)
        # without the window's own reset time, the caller is told to wait the window's length
        raise too_many(scope, stats.reset_time if stats is not None else time.time() + item.get_expiry())

    def _allowance(self, limit: tuple[Any, str, str]) -> Allowance | None:
        """A new allowance for this caller, or None when this process remembers as many as it may."""
        if len(self._allowances) >= MAX_ALLOWANCES:
            now = time.monotonic()
            if now < self._full_until:
                return None
            for idle in [k for k, a in self._allowances.items() if a.idle(now)]:
                del self._allowances[idle]
            if len(self._allowances) >= MAX_ALLOWANCES:
                # every one in use: new callers are decided by Redis alone, and not made to scan again soon
                self._full_until = now + ALLOWANCE_SECONDS
                return None
        allowance = self._allowances[limit] = Allowance()
        return allowance

    def _mark_due(self, key: tuple[Any, str, str]) -> None:
        self._due.add(key)
        self._wake.set()

    async def _count_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_SECONDS)  # gather what the next requests admit too
            self._wake.clear()
            try:
                if not await self._count_pending():
                    await asyncio.sleep(RETRY_SECONDS)  # Redis away: tried again, not hammered
            except Exception as exc:  # a bug here must not end the counting for good
                log.exception("rate limit counting failed: %s", exc)

    async def _count_pending(self) -> bool:
        """Count what allowances admitted into the Redis windows, and ask Redis how much is left to grant
        the next allowances, for several callers at once. A caller Redis refuses gets no allowance: its
        next request asks Redis."""
        if self._limiter is None:
            return True
        due, self._due = list(self._due), set()
        counted = True
        for start in range(0, len(due), COUNT_AT_ONCE):
            counted &= all(await asyncio.gather(*(self._count(limit) for limit in due[start:start + COUNT_AT_ONCE])))
        return counted

    async def _count(self, limit: tuple[Any, str, str]) -> bool:
        """False when Redis did not answer: the requests stay pending, to be counted on a later round."""
        allowance, limiter = self._allowances.get(limit), self._limiter
        if allowance is None or not allowance.pending or limiter is None:
            return True
        item, scope, key = limit
        pending, allowance.pending = allowance.pending, 0
        allowance.sending(pending)
        counted = None
        try:
            counted = await limiter.hit(item, scope, key, cost=pending)
        except Exception as exc:
            log.warning("rate limit: %d admitted requests of %s %s not counted yet: %s", pending, scope, key, exc)
        finally:
            allowance.answered(pending)
            if counted is None:  # Redis away, or the process stopping: kept, and counted on a later round
                allowance.pending += pending
                self._mark_due(limit)
        if counted is None:
            allowance.revoke()
            return False
        if not counted:  # another replica spent the window meanwhile: these went unrecorded
            log.info("rate limit: %d requests of %s %s admitted past a window another gateway filled",
                     pending, scope, key)
            allowance.revoke()
            return True
        mark = allowance.mark()
        try:
            stats = await limiter.get_window_stats(item, scope, key)
        except Exception as exc:
            log.warning("rate limit: no allowance for %s %s: %s", scope, key, exc)
            allowance.revoke()
            return True
        allowance.grant(stats.remaining, item.amount, time.monotonic(), mark)
        return True


LOGIN_PATHS = ("/api/auth/login", "/api/auth/oidc/")


def counted_by_caller(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """A proxied request or a live stream that carries credentials is counted once its caller is resolved
    (against the user, or against the address when the credentials fail: `identity.current_caller`), so
    that it costs one round trip to Redis, not two. Everything else counts against the address here."""
    if not path.startswith(CALLER_COUNTED):
        return False
    return any(name in (b"authorization", b"cookie") for name, _ in headers)


class AddressLimit:
    """ASGI middleware: an /api/ request counts against its address (logins against the stricter login
    limit) before the app runs, unless its caller is counted instead (`counted_by_caller`); a refused one
    answers 429 here."""

    def __init__(self, app: Any, limiter_of: Any) -> None:
        self.app = app
        self.limiter_of = limiter_of  # the app's RateLimiter, built in the lifespan (after this middleware)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        limiter = self.limiter_of() if path.startswith("/api/") else None
        if limiter is not None and not counted_by_caller(path, scope["headers"]):
            try:
                await limiter.check_address(address_of(scope), login=path.startswith(LOGIN_PATHS))
            except HTTPException as refused:
                await JSONResponse({"detail": refused.detail}, status_code=refused.status_code,
                                   headers=refused.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def address_of(scope: dict) -> str:
    return (scope.get("client") or ("unknown", 0))[0]
