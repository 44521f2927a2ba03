"""The Engine: what the leader runs. It wires the parts and drives the level-triggered loop.

Each iteration (woken by an enqueue, a run's end, a cancel, a node change, a deadline, or the
periodic tick): rebuild Redis from PostgreSQL if its keys are gone, mirror changed job rows into
the queue, advance jobs, then one scheduling round.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable

import asyncpg
from minio import Minio

from services.kit.pacing import Floor
from services.scheduler import metrics as m
from services.scheduler.aio import cancel_all, wait_event, within
from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.core.queue import RedisPriorityQueue
from services.scheduler.core.runners.base import Runner
from services.scheduler.engine.audit import Audit
from services.scheduler.engine.context import Adapters, LiveRuns, NodeSource, OpenTerm
from services.scheduler.engine.jobs import Jobs
from services.scheduler.engine.reconciler import Reconciler
from services.scheduler.engine.recovery import Recovery
from services.scheduler.engine.starts import Starter
from services.scheduler.engine.usage import UsageSampler
from services.scheduler.engine.watcher import Watcher
from services.scheduler.settings import SchedulerSettings
from services.scheduler.unit_of_work import SchedulerUnitOfWork

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, *, settings: SchedulerSettings, pool: asyncpg.Pool, uow: Callable[[], SchedulerUnitOfWork],
                 redis: Any, allocator: RedisAllocator, queue: RedisPriorityQueue, runner: Runner, nodes: NodeSource,
                 objects: Minio, spool_dir: Path, measures: frozenset[str] = frozenset(),
                 reattach: bool = False, open_term: OpenTerm | None = None) -> None:
        self.settings = settings
        self._shared = (pool, uow)  # outside a term of leadership (a standby's queue sync, the API's)
        self._open_term = open_term  # the fenced pool and units of a term (without: writes are not fenced)
        self.measures = measures  # what the runner can measure: {"memory", "cpu", "gpu"}
        self.reattach = reattach  # do runs outlive the scheduler with their exit status (pods)?
        self.io = Adapters(settings, pool, uow, redis, allocator, queue, runner, nodes, objects)
        self.live = LiveRuns()
        self._wake = asyncio.Event()
        self.watcher = Watcher(self.io, self.live, self.wake, spool_dir=spool_dir, reattach=reattach)
        self.jobs = Jobs(self.io, self.live, self.wake)
        self.starter = Starter(self.io, self.live, self.wake, jobs=self.jobs, watcher=self.watcher)
        self.recovery = Recovery(self.io, self.live, self.wake, watcher=self.watcher)
        self.reconciler = Reconciler(self.io, self.live, self.wake,
                                     usage=UsageSampler(self.io, self.live, measures=measures))
        self.audit = Audit(self.io, self.live, self.wake, recovery=self.recovery)
        self.leading = False
        self.recovered = False  # leading, and what the last term left has been taken over

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def sync_queue(self) -> None:
        await self.recovery.sync_queue()

    async def sync_queue_shared(self) -> None:
        """The queue sync an API command makes, on the shared pool: a term of leadership ending in the middle
        of a request (its writes refused) is no fault of the request."""
        await self.recovery.sync_queue(pool=self._shared[0])

    async def reconcile_once(self) -> int:
        return await self.reconciler.reconcile_once()

    async def lead(self, epoch: int | None = None) -> None:
        """Run as the leader until cancelled: recover, then loop. Given the term's `epoch` (the fencing
        token), every write of the engine is made under it, and refused once another replica took over."""
        self.leading = True
        m.LEADER.set(1)
        loops: list[asyncio.Task] = []
        fenced = None
        try:
            if epoch is not None and self._open_term is not None:
                term = await self._open_term(epoch)
                fenced = term.pool
                self.io.pool, self.io.uow = term.pool, term.units
            await self.recovery.recover()
            self.recovered = True
            loops = [asyncio.create_task(self._schedule_loop(), name="scheduler-loop"),
                     asyncio.create_task(self.reconciler.loop(), name="scheduler-reconciler"),
                     asyncio.create_task(self.audit.loop(), name="scheduler-audit")]
            if self.settings.scheduler_runner == "kubernetes":
                loops.append(asyncio.create_task(self._inventory_loop(), name="scheduler-inventory"))
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a loop only ends by an error: surface it (leadership is given up)
        finally:
            await cancel_all(loops)
            self.leading = self.recovered = False
            m.LEADER.set(0)
            await self._stand_down()
            self.io.pool, self.io.uow = self._shared
            if fenced is not None:
                try:
                    await within(fenced.close(), 10)
                except Exception:  # a connection of the old term still busy: its writes are refused anyway
                    fenced.terminate()

    async def _stand_down(self) -> None:
        """Stop watching, and leave the runs going: losing leadership is no fault of theirs. The next
        leader (this replica again, or another) adopts them from the runner (recovery)."""
        helpers = self.jobs.tasks()
        for task in helpers:
            task.cancel()
        active = list(self.live.active.values())
        for run in active:
            if run.task:
                run.task.cancel()
        await cancel_all([*(r.task for r in active if r.task), *helpers])
        self.live.active.clear()
        self.live.allocations.clear()
        self.live.starting.clear()
        self.jobs.forget()

    async def _inventory_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.scheduler_k8s_inventory_seconds)
            try:
                await self.recovery.load_inventory()
                self.wake()
            except Exception as exc:  # the API server may be away; keep the last inventory
                log.warning("node inventory refresh failed: %s", exc)

    async def _schedule_loop(self) -> None:
        backoff = 0.5
        floor = Floor(self.settings.scheduler_min_round_seconds)
        while True:
            await floor.wait()  # wakes arriving meanwhile join the round: it reads the database after them
            self._wake.clear()
            next_deadline = None
            try:
                next_deadline = await self._iterate()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling iteration failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            timeout = self.settings.scheduler_tick_seconds
            if next_deadline is not None:
                timeout = max(0.02, min(timeout, next_deadline - time.time() + 0.01))
            await wait_event(self._wake, timeout)

    async def run_once(self) -> None:
        """One iteration without waiting (tests, benchmarks)."""
        await self._iterate()

    async def _iterate(self) -> float | None:
        started_at = time.perf_counter()
        await self.recovery.ensure_redis()
        await self.sync_queue()
        next_deadline = await self.jobs.advance()
        await self.starter.schedule()
        await self.sync_queue()
        m.ITERATION_SECONDS.observe(time.perf_counter() - started_at)
        return next_deadline

