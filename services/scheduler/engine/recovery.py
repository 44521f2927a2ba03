"""The scheduler's Redis state, rebuilt from PostgreSQL (the record) and the runner's live state.

A new leader adopts or reruns every run PostgreSQL says is live; when the Redis keys are
gone (flush, restart) the inventory and admin node status, the live allocations (same node, same
GPUs) and the queue are put back. Changed job rows are mirrored into the Redis queue.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import asyncpg

from services.scheduler import store
from services.scheduler import metrics as m
from services.scheduler.core.allocator import AllocationConflict
from services.scheduler.core.queue import QueueStatus
from services.scheduler.engine.context import Adapters, LiveRuns, Wake
from services.scheduler.engine.watcher import Watcher
from services.scheduler.records import JobRecord, RunRecord

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake, *, watcher: Watcher) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self.watcher = watcher
        self.sentinel = f"{io.settings.sched_prefix}state"

    async def recover(self) -> None:
        """A new leader: reload the inventory, adopt every run PostgreSQL says is running that the
        runner still knows (its process or pod, or the exit status it left if it ended while nobody
        watched), run again what really died, and restore the live allocations and the queue in Redis."""
        io = self.io
        await self.load_inventory()
        async with io.pool.acquire() as conn:
            live = await store.live_runs(conn)
            jobs = await store.jobs_by_ids(conn, sorted({r.job_id for r in live}))
        for run in live:
            await self.adopt(jobs[run.job_id], run)
        await self._restore_allocations()
        await self._reset_queue_sync()
        await io.redis.set(self.sentinel, str(time.time()))
        self.wake()

    async def adopt(self, job: JobRecord, run: RunRecord) -> bool:
        """Watch a live run nobody watches: adopted when the runner still knows it (True), else (it
        really died, or its launch was cut short) recorded as such and run again. Only the runner's
        answer that it has no such run means gone: when it cannot answer (its API away, an error), the
        run is left as it is, allocation and all, and the audit's next round asks again (False)."""
        io = self.io
        attempt = run.allocation_id
        handle = None
        if attempt:
            try:
                handle = await io.runner.attach(attempt)
            except Exception as exc:
                log.warning("cannot look for run %s (%s) in the runner: %s; left as it is for now",
                            run.run_id, attempt, exc)
                return False
        if handle is not None and run.status == "running":
            log.info("adopted run %s (%s)", run.run_id, handle.ref)
            m.ADOPTED.inc()
            self.watcher.track(job, run, handle)
            return True
        if handle is not None:
            try:
                await io.runner.stop(handle, io.settings.scheduler_stop_grace_seconds)
            except Exception as exc:
                log.warning("cannot stop the half-started run %s (%s): %s", run.run_id, handle.ref, exc)
        if run.status == "starting":
            await self.watcher.rerun(job, run, attempt, "rerun: its start was cut short by a change of leader",
                                     why="start interrupted")
        else:
            await self.watcher.rerun(job, run, attempt, "rerun: the runner had no trace of it when a new leader looked",
                                     why="gone")
        return False

    async def load_inventory(self) -> None:
        nodes = await self.io.nodes()
        await self.io.allocator.load_inventory(nodes)
        async with self.io.pool.acquire() as conn:
            overrides = await store.node_overrides(conn)
        known = {n.name for n in nodes}
        for name, status in overrides.items():
            if name in known:
                await self.io.allocator.set_node_status(name, status)

    async def _restore_allocations(self) -> None:
        """Put back the allocation of every run PostgreSQL says is live (same node, same GPUs), watched
        or not: one left out would hand its GPUs to another run while it still uses them. A run's end is
        recorded before its release (watcher.py), so a run restored here still holds its GPUs."""
        async with self.io.pool.acquire() as conn:
            rows = await store.live_allocations(conn)
        for row, deadline in rows:
            if not await self.restore(row, deadline):
                m.DRIFT.labels("conflict").inc()

    async def restore(self, row: RunRecord, deadline: datetime | None) -> bool:
        """Record a live run's allocation in Redis again, as PostgreSQL has it (idempotent). False, with
        nothing changed, when another allocation holds one of its GPUs (never booked twice)."""
        try:
            restored = await self.io.allocator.restore(
                row.allocation_id, row.job_id, row.run_id, node=row.node, gpu_type=row.gpu_type,
                gpu_indices=list(row.gpu_indices or []), memory_bytes=int(row.memory_bytes),
                cpu_millis=int(row.cpu_millis), lease_seconds=self.io.settings.scheduler_lease_seconds,
                expected_end=deadline.timestamp() if deadline else None)
        except AllocationConflict as exc:
            log.error("cannot restore the allocation of run %s: %s", row.run_id, exc)
            return False
        if restored is None:
            log.warning("run %s holds capacity on node %s, which is no longer in the inventory",
                        row.run_id, row.node)
        return True

    async def _reset_queue_sync(self) -> None:
        async with self.io.pool.acquire() as conn:
            await store.mark_all_unsynced(conn)
        await self.sync_queue()

    async def ensure_redis(self) -> None:
        if await self.io.redis.exists(self.sentinel):
            return
        log.warning("scheduler state is missing from Redis (flushed or restarted): rebuilding it from PostgreSQL")
        m.REDIS_REBUILDS.inc()
        await self.load_inventory()
        await self._restore_allocations()
        await self._reset_queue_sync()
        await self.io.redis.set(self.sentinel, str(time.time()))

    async def sync_queue(self, *, pool: asyncpg.Pool | None = None) -> None:
        """Mirror changed job rows into the Redis queue (PostgreSQL is the record), through the engine's pool
        or `pool`."""
        io = self.io
        pool = pool or io.pool
        async with pool.acquire() as conn:
            rows = await store.unsynced_jobs(conn)
        if not rows:
            return
        by_id = {job.job_id: job for job in rows}
        known = await io.queue.mirror(
            waiting=[self._entry(job) for job in rows if job.status == "waiting"],
            running=[job.job_id for job in rows if job.status in ("running", "stopping")],
            gone=[job.job_id for job in rows if job.status not in ("waiting", "running", "stopping")])
        for job_id in known:  # queued before: its class or its status may have changed
            job = by_id[job_id]
            entry = await io.queue.get(job_id)
            if entry is None:  # removed meanwhile (an admin's cancel): the row says it waits
                await io.queue.enqueue(**self._entry(job))
                continue
            if entry.priority.value != job.priority:
                await io.queue.reprioritise(job_id, job.priority)
            if entry.status != QueueStatus.WAITING:
                await io.queue.set_status(job_id, QueueStatus.WAITING)
        async with pool.acquire() as conn:
            await store.mark_synced(conn, rows)

    def _entry(self, job: JobRecord) -> dict[str, Any]:
        """The queue entry of a waiting job (enqueue's arguments)."""
        return dict(workload_id=job.job_id, priority=job.priority, submitted_at=job.submitted_at.timestamp(),
                    rank=float(job.queue_rank), requester=job.requester, name=job.name,
                    resources=_queue_resources(job, self.io.settings.scheduler_component_cpu),
                    attributes={"kind": job.kind, "workload_id": job.workload_id,
                                "test_run_id": job.test_run_id})


def _queue_resources(job: JobRecord, default_cpu: float) -> dict[str, Any]:
    """QU-05: the request's GPU type × count, memory and CPU, as the queue shows them."""
    workload = job.workload or {}
    resources = workload.get("resources") or {}
    return {"gpu_type": resources.get("gpuType"), "gpu_count": resources.get("gpuCount"),
            "memory": resources.get("memory"), "cpu": resources.get("cpu") or default_cpu,
            "max_runtime": resources.get("maxRuntime")}
