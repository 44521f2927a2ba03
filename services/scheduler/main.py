"""Composition root of the scheduler service: the only place its real adapters are built.

Priority queue, atomic GPU allocation, component runs (local subprocesses or Kubernetes pods),
run logs, resources and nodes (QU-01..05, SC-01..05, RS-01..05).
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import urllib3
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.kit.instrument import redis_from_url
from services.kit.objectstore import check_bucket, ensure_buckets, make_client
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for
from services.scheduler import adapters, api, handlers, history_api
from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.core.queue import RedisPriorityQueue
from services.scheduler.engine import Engine
from services.scheduler.engine.history import HistoryRecorder
from services.scheduler.engine.context import Term
from services.scheduler.leader import FENCED, Leadership, fenced_pool
from services.scheduler.settings import SchedulerSettings
from services.scheduler.state import SchedulerState
from services.scheduler.unit_of_work import SchedulerUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    app = build_service("scheduler", settings_for(SchedulerSettings, settings),
                        routers=[api.router, history_api.router], migrations=MIGRATIONS,
                        setup=_setup, description=__doc__ or "")
    app.add_exception_handler(RedisError, _redis_unavailable)
    app.add_exception_handler(asyncpg.PostgresError, _fenced)
    return app


async def _fenced(_: Request, exc: Exception) -> JSONResponse:
    """A write refused because this replica's term of leadership just ended: the successor answers a retry."""
    if getattr(exc, "sqlstate", None) != FENCED:
        raise exc  # anything else keeps its own answer
    return JSONResponse({"detail": "the scheduler's leadership changed; retry"}, status_code=503,
                        headers={"Retry-After": "1"})


async def _redis_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"the scheduler's Redis does not answer ({type(exc).__name__}); try again"},
                        status_code=503)


@contextlib.asynccontextmanager
async def _setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
    settings: SchedulerSettings = platform.settings  # type: ignore[assignment]
    redis = redis_from_url(settings.redis_url)  # redis.asyncio.Redis with client spans inside traces
    log_tails = redis_from_url(settings.redis_url)  # followers wait on their own pool, never the engine's
    objects = make_client(settings, http_client=urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60), retries=urllib3.Retry(total=3, backoff_factor=0.2),
        maxsize=16))
    await asyncio.to_thread(ensure_buckets, objects, settings.staging_bucket, settings.logs_bucket)
    setup = await adapters.build_runner(settings)
    allocator = RedisAllocator(redis, settings.sched_prefix)
    queue = RedisPriorityQueue(redis, settings.sched_prefix)

    uow = platform.units(SchedulerUnitOfWork)

    async def open_term(epoch: int) -> Term:  # the engine's writes while it leads: fenced by the term's epoch
        pool = await fenced_pool(settings.postgres_url, settings.schema, epoch, max_size=settings.postgres_pool_size)
        return Term(pool, platform.units(SchedulerUnitOfWork, pool=pool))

    engine = Engine(settings=settings, pool=platform.pool, uow=uow, redis=redis, allocator=allocator,
                    queue=queue, runner=setup.runner, nodes=setup.nodes, objects=objects,
                    spool_dir=settings.state_dir / "spool", measures=setup.measures, reattach=setup.reattach,
                    open_term=open_term)
    leadership = Leadership(settings.postgres_url, settings.schema, lead=engine.lead, on_wake=engine.wake,
                            wakeups=platform.wakeups, grace_seconds=settings.scheduler_leader_grace_seconds,
                            check_seconds=settings.scheduler_leader_renew_seconds)
    platform.message_bus(app, uow, commands=handlers.COMMANDS, events=handlers.EVENTS,
                         dependencies={"settings": settings, "queue": queue, "allocator": allocator,
                                       "sync_queue": engine.sync_queue_shared})
    platform.checks["redis"] = redis.ping
    platform.checks["s3"] = lambda: asyncio.gather(check_bucket(objects, settings.staging_bucket),
                                                   check_bucket(objects, settings.logs_bucket))
    app.state.scheduler = SchedulerState(settings=settings, redis=redis, allocator=allocator, queue=queue,
                                         objects=objects, engine=engine, leadership=leadership, log_tails=log_tails)
    if platform.handles_events:  # an API-only process never leads: it reads what the leader keeps
        platform.spawn(leadership.run(), "scheduler-leadership")
        recorder = HistoryRecorder(pool=platform.pool, redis=redis, allocator=allocator, settings=settings,
                                   measures=setup.measures, leading=lambda: engine.recovered)
        platform.spawn(recorder.loop(), "scheduler-history")
    try:
        yield
    finally:
        # the kit has cancelled the leadership task (and with it the engine) by now
        await setup.close()
        await log_tails.aclose()
        await redis.aclose()
