"""Composition root of the gateway: the one front door for people, the console and outside scripts.

It resolves who calls (session, API token or JWT), limits the rate, records the audit trail, signs a
short-lived RS256 token for the services and streams the request to the service named in the path
(`/api/<service>/...`). It also serves the accounts, login, live events, audit log, merged OpenAPI
document and the console's files.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI

from services.gateway import (accounts_api, audit, events, oidc, openapi, proxy, ratelimit, sessions, signing,
                              static, tokens_api)
from services.gateway.settings import GatewaySettings
from services.kit.instrument import redis_from_url
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class Gateway(FastAPI):
    """FastAPI for the gateway's own routes; a proxied request (`/api/<service>/...`) takes the proxy's
    own pipeline instead (proxy.door), with the same span, audit row, limits and timer."""

    door: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.door is not None and scope["method"] in proxy.METHODS \
                and proxy.proxied_service(scope["path"]):
            scope["app"] = self  # request.app, as Starlette sets it
            await self.door(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    gateway_settings = settings_for(GatewaySettings, settings)
    app = build_service("gateway", gateway_settings, migrations=MIGRATIONS, setup=_setup,
                        description=__doc__ or "", app_class=Gateway,
                        routers=[accounts_api.router, tokens_api.router, signing.router, oidc.router,
                                 events.router, audit.router, openapi.router, proxy.router])
    app.add_middleware(ratelimit.AddressLimit, limiter_of=lambda: getattr(app.state, "limiter", None))
    audit.install(app)  # records every state-changing request and every refusal that passed the gateway
    static.install(app, gateway_settings)  # last: the console answers what no route above does
    if gateway_settings.serves_api:
        app.door = proxy.door(app)
    return app


@contextlib.asynccontextmanager
async def _setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
    settings: GatewaySettings = platform.settings  # type: ignore[assignment]
    redis = redis_from_url(settings.redis_url)
    platform.checks["redis"] = redis.ping
    audit_log = audit.AuditLog(platform.pool, settings)
    signer = signing.Signer(platform.pool, settings)
    identity = sessions.GatewayIdentity(platform.pool, settings)
    limiter = ratelimit.RateLimiter(settings)
    stream = events.EventStream(redis, settings)
    app.state.redis = redis
    app.state.audit = audit_log
    app.state.signer = signer
    app.state.identity = identity
    app.state.limiter = limiter
    app.state.events = stream
    app.state.oidc = oidc.OidcLogin(settings) if settings.oidc_issuer else None
    app.state.upstreams = proxy.Upstreams(settings)
    app.state.openapi_merger = openapi.Merger(settings, app.state.upstreams)
    events.subscribe(platform, stream)
    audit.subscribe(platform, audit_log)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(audit_log)
        await stack.enter_async_context(signer)  # its keys, and their refresher until shutdown
        await sessions.bootstrap_admin(platform.pool, settings)
        stack.push_async_callback(redis.aclose)  # closed last: the limiter and the live stream use it
        await stack.enter_async_context(limiter)
        await stack.enter_async_context(stream)
        await stack.enter_async_context(app.state.upstreams)
        # the route templates the audit log names proxied requests by, from the start
        missing = await app.state.openapi_merger.refresh()
        if missing:
            log.info("no OpenAPI document yet from %s: fetched again on demand", ", ".join(missing))
        if platform.handles_events:
            platform.spawn(_prune_sessions(platform, settings), "gateway-sessions-prune")
        yield


async def _prune_sessions(platform: Platform, settings: GatewaySettings) -> None:
    """Sessions that ended long ago go; until then they tell who was logged in from where."""
    while True:
        try:
            await sessions.prune_sessions(platform.pool, older_than_days=settings.retention_days * 4)
        except Exception as exc:  # PostgreSQL may be away; the next round tries again
            log.warning("could not prune old sessions: %s", exc)
        await asyncio.sleep(settings.retention_sweep_seconds)
