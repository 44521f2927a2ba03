"""Builds one service process: FastAPI app + FastStream broker, wired in the lifespan.

Nothing here runs at import time; each service's composition root calls `build_service`.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.rabbit import RabbitBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.kit import errors, metrics
from services.kit.body import BodyGuard
from services.kit.db import (KIT_MIGRATIONS, RESTRICTIONS, apply_migrations, create_pool, ensure_database,
                             grant_runtime_role, url_user)
from services.kit.messagebus import MessageBus
from services.kit.messaging import EventBus, new_broker
from services.kit.retention import sweep_forever
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.priority import lower_priority
from services.kit.request_id import RequestId
from services.kit.request_timer import RequestTimer
from services.kit.settings import Settings
from services.kit.telemetry import bind_workload, setup_logging, setup_tracing
from services.kit.unit_of_work import UnitOfWork
from services.kit.wakeups import Wakeups

log = logging.getLogger(__name__)
Check = Callable[[], Awaitable[Any]]
GC_YOUNG_THRESHOLD = 20_000  # allocations before a young-generation pass (CPython's default: 700)


@dataclass
class Platform:
    """What the kit hands a service: its settings, database, bus, outbox and wake-ups."""

    settings: Settings
    pool: asyncpg.Pool
    bus: EventBus
    outbox: Outbox
    checks: dict[str, Check] = field(default_factory=dict)
    background: list[asyncio.Task] = field(default_factory=list)

    @property
    def wakeups(self) -> Wakeups:
        """Wakes a listener once a commit has work for it (the outbox's, shared with the service's own)."""
        return self.outbox.wakeups

    @property
    def handles_events(self) -> bool:
        """Whether this process runs the service's event side (Settings.role): its consumers, relay and
        background work; a service's setup starts its own loops only when it does."""
        return self.settings.handles_events

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        """Run a service loop for the life of the process; it is cancelled on shutdown."""
        task = asyncio.create_task(coro, name=name)
        self.background.append(task)
        return task

    def units(self, unit_of_work: Callable[..., UnitOfWork], *, pool: asyncpg.Pool | None = None) -> Callable[..., UnitOfWork]:
        """Units of work of the service's kind over this pool (or `pool`: one of the service's own, e.g. the
        scheduler's fenced pool of a term of leadership) and outbox: called with nothing for a command,
        with `conn=` and `cause=` for an event handled in the consumer's transaction."""
        return functools.partial(unit_of_work, pool or self.pool, self.outbox)

    def message_bus(self, app: FastAPI, units: Callable[..., UnitOfWork], **handlers: Any) -> MessageBus:
        """The service's message bus over `units` (see `units`); `handlers` are MessageBus's maps and
        dependencies. Routes reach it as MessageBusDep; its events are consumed where this process runs
        the event side (the EventBus checks them against the topology either way)."""
        bus = MessageBus(units, **handlers)
        app.state.messagebus = bus
        bus.subscribe(self.bus)
        return bus

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only view for answers assembled from several queries: a concurrent edit is seen whole or not at all."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn


ServiceSetup = Callable[[Platform, FastAPI], contextlib.AbstractAsyncContextManager[None]]


async def current_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(current_platform)]  # a route parameter: the service's Platform


async def current_messagebus(request: Request) -> MessageBus:
    """The service's message bus (services/kit/messagebus.py), built by its composition root's setup."""
    return request.app.state.messagebus


MessageBusDep = Annotated[MessageBus, Depends(current_messagebus)]  # a route parameter: the service's MessageBus


def build_service(name: str, settings: Settings, *, routers: list[APIRouter], migrations: Path | None,
                  setup: ServiceSetup | None = None, description: str = "",
                  app_class: type[FastAPI] = FastAPI) -> FastAPI:
    settings = settings.model_copy(update={"service": name})
    provider = setup_tracing(name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(name, settings.log_level)
        loop_module = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        metrics.RUNTIME.labels(name, loop_module, getattr(app.state, "http_parser", "unknown")).set(1)
        admin_url = settings.postgres_admin_url or settings.postgres_url
        if settings.env == "local":
            await ensure_database(admin_url)
        sources = {"kit": KIT_MIGRATIONS}
        if migrations is not None:
            sources[name] = migrations
        if admin_url != settings.postgres_url:
            # the schema's owner migrates; the service runs as its own role with the rights granted here
            admin_pool = await create_pool(admin_url, settings.schema, max_size=1)
            try:
                await apply_migrations(admin_pool, settings.schema, sources)
            finally:
                await admin_pool.close()
            await grant_runtime_role(admin_url, settings.schema, url_user(settings.postgres_url),
                                     create=settings.env == "local",
                                     restrictions=migrations / RESTRICTIONS if migrations is not None else None)
        pool = await create_pool(settings.postgres_url, settings.schema, max_size=settings.postgres_pool_size)
        if admin_url == settings.postgres_url:
            await apply_migrations(pool, settings.schema, sources)
        broker = new_broker(settings.rabbitmq_url, name, graceful_timeout=10.0)
        wakeups = Wakeups(pool, name)
        outbox = Outbox(name, wakeups)
        bus = EventBus(broker, name, pool, broker_url=settings.rabbitmq_url,
                       prefetch=settings.consumer_prefetch, batch_size=settings.consumer_batch_size,
                       batch_workers=settings.consumer_batch_workers,
                       batch_min_interval=settings.consumer_min_batch_seconds, consume=settings.handles_events,
                       local=settings.env == "local")
        platform = Platform(settings=settings, pool=pool, bus=bus, outbox=outbox)
        platform.checks["postgres"] = lambda: pool.fetchval("SELECT count(*) FROM schema_migrations")
        platform.checks["rabbitmq"] = lambda: _ping(broker)
        app.state.platform = platform
        relay = OutboxRelay(pool, outbox, bus.publish, poll_seconds=settings.outbox_poll_seconds,
                            min_round_seconds=settings.outbox_min_round_seconds) if settings.handles_events else None
        try:
            async with (setup(platform, app) if setup else contextlib.nullcontext()):
                await bus.start()
                platform.spawn(watch_loop_lag(name), f"{name}-loop-lag")
                if relay is not None:
                    await relay.start()
                    platform.spawn(_watch_dlq(bus), f"{name}-dlq-depth")
                    platform.spawn(sweep_forever(pool, name, timedelta(days=settings.retention_days),
                                                 settings.retention_sweep_seconds), f"{name}-retention")
                log.info("%s (%s) ready on %s:%s", name, settings.role, settings.host, settings.listen_port)
                try:
                    yield
                finally:
                    try:
                        if relay is not None:
                            await relay.stop()
                        for task in platform.background:
                            task.cancel()
                        await asyncio.gather(*platform.background, return_exceptions=True)
                        await bus.stop()
                    finally:
                        await wakeups.close()  # the last commits' NOTIFYs, while the pool is open
        finally:
            await pool.close()

    metrics.initialise(name)
    # FastAPI's own telemetry is off: the OpenTelemetry instrumentor below makes the server spans
    app = app_class(title=f"AVATAR OnE {name}", description=description, lifespan=lifespan, version="1.0.0",
                  dependencies=[Depends(_bind_path_workload)],
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestId)  # X-Request-ID and the trace id for audit records (services/kit/audit.py)
    app.add_middleware(RequestTimer, service=name)  # added last: outermost, so it times the guard too
    errors.install(app)  # every service answers domain refusals and unstorable text as 4xx, not 500
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics",
                                       exclude_spans=["receive", "send"])

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["ops"], summary="Readiness: every dependency answers",
             responses={503: {"description": "a dependency failed"}})
    async def readyz(request: Request) -> JSONResponse:
        platform: Platform | None = getattr(request.app.state, "platform", None)
        if platform is None:
            return JSONResponse({"status": "starting", "failed": {"service": "not started"}}, status_code=503)
        results = await asyncio.gather(*(asyncio.wait_for(check(), 3) for check in platform.checks.values()),
                                       return_exceptions=True)
        failed = {dep: (repr(result) or type(result).__name__)[:300]
                  for dep, result in zip(platform.checks, results) if isinstance(result, BaseException)}
        if failed:
            return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready", "checked": sorted(platform.checks)})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    for router in routers if settings.serves_api else ():
        app.include_router(router)
    return app


async def _bind_path_workload(request: Request) -> None:
    """A route about one workload (`{workload_id}` in its path) tags its server span, and every span
    below it, with avatar.workload_id."""
    workload_id = request.path_params.get("workload_id")
    if isinstance(workload_id, str) and workload_id:
        bind_workload(workload_id)


async def _ping(broker: RabbitBroker) -> None:
    if not await broker.ping(timeout=2):
        raise ConnectionError("RabbitMQ does not answer")


async def watch_loop_lag(service: str, every: float = 0.1) -> None:
    """Sample how late the loop wakes a timer: a request arriving at that moment waits as long before
    any of its code runs (a long callback, a collector pause, or the process waiting for a core)."""
    histogram = metrics.EVENT_LOOP_LAG.labels(service)
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        histogram.observe(max(0.0, loop.time() - due))


async def _watch_dlq(bus: EventBus, every: float = 5.0) -> None:
    while True:
        try:
            metrics.DLQ_DEPTH.labels(bus.service).set(await bus.dlq_depth())
        except Exception as exc:  # the broker may be restarting; the next round tries again
            log.debug("dlq depth unavailable: %s", exc)
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            # shutdown's cancel reached the declare and the AMQP client swallowed it: this loop would
            # otherwise keep the service's shutdown waiting for ever
            raise asyncio.CancelledError()
        await asyncio.sleep(every)


def serve(app: FastAPI) -> None:
    """Run one service process with uvicorn (used by `python -m services.<name>`)."""
    import uvicorn

    settings: Settings = app.state.settings
    http = settings.http_parser
    if http == "auto":  # as uvicorn decides it, made explicit so that /metrics can say which one runs
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    app.state.http_parser = http
    # What the imports built lives as long as the process, so it is frozen out of the collector's full
    # passes, which otherwise stall every request in flight; a larger first generation lets a request's
    # temporaries die young (bench/RESULTS.md, "... floors under batches and relay rounds, and the collector").
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    if settings.nice:
        lower_priority(os.getpid(), settings.nice)
    uvicorn.run(app, host=settings.host, port=settings.listen_port, log_config=None, access_log=False,
                loop=settings.event_loop, http=http, timeout_graceful_shutdown=10)
