"""Rate limits per user and per address: a moving window in Redis (`limits`), answered 429 with Retry-After.

Every request under /api/ counts once: against its user once the caller is known, against its address when
it has no caller (a login, a public route, credentials that fail), so a flood of bad credentials is limited
too and a proxied request costs one Redis round trip. Health,
readiness, metrics and the console's files are never limited. When Redis is away the limit is not
enforced (counted in avatar_gateway_rate_limit_unavailable_total): refusing every request because the
counter store blinked would turn a Redis restart into a platform outage.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from services.gateway.settings import UPSTREAMS, GatewaySettings

log = logging.getLogger(__name__)
CALLER_COUNTED = (*(f"/api/{service}/" for service in UPSTREAMS), "/api/events")
LIMITED = Counter("avatar_gateway_rate_limited_total", "Requests the gateway refused with 429", ["scope"])
UNAVAILABLE = Counter("avatar_gateway_rate_limit_unavailable_total",
                      "Requests let through unlimited because the rate-limit store did not answer")


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
        self._url = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self._prefix = f"{settings.redis_prefix}gateway:rate"
        self._limiter: MovingWindowRateLimiter | None = None

    async def __aenter__(self) -> "RateLimiter":
        if self.enabled:
            storage = RedisStorage(self._url, implementation="redispy", key_prefix=self._prefix, socket_timeout=1,
                                   socket_connect_timeout=1)
            self._limiter = MovingWindowRateLimiter(storage)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._limiter = None

    async def check_address(self, address: str, *, login: bool = False) -> None:
        await self._hit(self.per_login if login else self.per_address, "login address" if login else "address",
                        address)

    async def check_user(self, user: str) -> None:
        await self._hit(self.per_user, "user", user)

    async def _hit(self, item: Any, scope: str, key: str) -> None:
        if self._limiter is None:
            return
        try:
            if await self._limiter.hit(item, scope, key):
                return
            stats = await self._limiter.get_window_stats(item, scope, key)
        except Exception as exc:  # Redis away: let the request through (module docstring)
            UNAVAILABLE.inc()
            log.warning("rate limit not enforced: %s", exc)
            return
        LIMITED.labels(scope).inc()
        raise too_many(scope, stats.reset_time)


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
