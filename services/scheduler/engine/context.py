"""What the engine's parts share: the adapters they drive and the runs this leader watches."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import asyncpg
from minio import Minio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.kit.messaging import TRANSIENT_ERRORS
from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.core.inventory import Node
from services.scheduler.core.queue import RedisPriorityQueue
from services.scheduler.core.runners.base import RunHandle, Runner
from services.scheduler.domain import Job
from services.scheduler.records import JobRecord, RunRecord
from services.scheduler.settings import SchedulerSettings
from services.scheduler.unit_of_work import SchedulerUnitOfWork

NodeSource = Callable[[], Awaitable[list[Node]]]
Wake = Callable[[], None]
# PostgreSQL or Redis away (restarting, a connection terminated): what a write waits out and tries again
DEPENDENCY_AWAY: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS, asyncpg.exceptions.OperatorInterventionError, RedisConnectionError, RedisTimeoutError)


@dataclass
class Adapters:
    """The I/O the engine drives, built by the composition root. While this replica leads, `pool` and
    `uow` are its term's own: their connections carry the term's fencing token (leader.py)."""

    settings: SchedulerSettings
    pool: asyncpg.Pool  # reads; every change goes through a unit of work
    uow: Callable[[], SchedulerUnitOfWork]
    redis: Any
    allocator: RedisAllocator
    queue: RedisPriorityQueue
    runner: Runner
    nodes: NodeSource
    objects: Minio


@dataclass
class ActiveRun:
    """A run this leader watches. The allocation id doubles as the runner's run id: one per
    attempt, so a re-run never collides with what an earlier attempt left behind."""

    run_id: str
    job_id: str
    allocation_id: str
    handle: RunHandle
    task: asyncio.Task | None = None


@dataclass
class LiveRuns:
    """The runs this leader watches or is starting. The reconciler leaves their allocations alone."""

    active: dict[str, ActiveRun] = field(default_factory=dict)
    allocations: set[str] = field(default_factory=set)
    starting: set[str] = field(default_factory=set)  # claimed runs whose launch is in progress
    stop_requested: set[str] = field(default_factory=set)


async def record_run_end(io: Adapters, job: JobRecord, run: RunRecord, status: str, **end: Any) -> bool:
    """A run of `job` ended (`end`: its exit code, last line, reason, log, metrics): recorded once, in
    one statement; False when its end was already recorded."""
    ended = Job(job).end_run(run, status, **{"reason": None, **end})
    uow = io.uow()
    async with uow.statement():
        return await uow.commit_guarded(uow.jobs.run_end(ended))
