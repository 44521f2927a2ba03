"""What the engine's parts share: the adapters they drive and the runs this leader watches."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import asyncpg
from minio import Minio

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


@dataclass(frozen=True)
class Adapters:
    """The I/O the engine drives, built by the composition root."""

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
