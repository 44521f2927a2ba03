"""What the engine's parts share: the adapters they drive and the runs this leader watches."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, NamedTuple

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
from services.scheduler.leader import STILL_LEADING
from services.scheduler.records import JobRecord, RunRecord
from services.scheduler.settings import SchedulerSettings
from services.scheduler.unit_of_work import SchedulerUnitOfWork

NodeSource = Callable[[], Awaitable[list[Node]]]


class Term(NamedTuple):
    """What the engine writes through while it leads: a pool whose connections carry the term's fencing
    token (leader.py) and units of work over it."""

    pool: asyncpg.Pool
    units: Callable[[], SchedulerUnitOfWork]


OpenTerm = Callable[[int], Awaitable[Term]]  # a term's Term, given its epoch
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


class LeadershipOver(Exception):
    """This replica's term of leadership is over: what it was about to change is its successor's now."""


async def confirm_leading(io: Adapters) -> None:
    """Before an action no fencing trigger guards (stopping a runner run, changing Redis): does this term's
    lease still hold? A leader that lost it must never stop or release what its successor started."""
    async with io.pool.acquire() as conn:
        if not await conn.fetchval(STILL_LEADING):
            raise LeadershipOver("this replica's term of leadership is over")


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
    one statement; False when its end was already recorded. PostgreSQL's text cannot hold U+0000: what a
    component printed or wrote is recorded without it."""
    end = {name: _without_nul(value) for name, value in end.items()}
    ended = Job(job).end_run(run, status, **{"reason": None, **end})
    uow = io.uow()
    async with uow.statement():
        return await uow.commit_guarded(uow.jobs.run_end(ended))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value
