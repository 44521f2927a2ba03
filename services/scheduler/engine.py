"""The scheduling engine: one level-triggered loop that drives every job from PostgreSQL state.

Each iteration (woken by an enqueue, a run's end, a cancel, a node change, a deadline, or the
periodic tick):
1. Redis check: if the scheduler keys are gone (flush/restart), rebuild them from PostgreSQL
   and the runner's live state (inventory + admin node status, live allocations, the queue).
2. Queue sync: PostgreSQL job rows changed since the last sync are mirrored into the Redis queue.
3. Advance jobs: deadlines (max_runtime from the job's first start), failed runs (compensate),
   finished DAGs (complete), general loop-test rounds; jobs marked `stopping` get a finisher
   that stops their live runs, releases every allocation once, and publishes the outcome in
   the same transaction as the terminal status (so a job never gets two terminal events).
4. Decide: running jobs' ready components first (a started workload is never starved), then
   the queue in order (loop tests are queued ahead of everything else); core.policy.decide()
   (EASY backfill) picks starts, each allocated by the atomic Lua script (a lost race is
   skipped), recorded, then launched through the runner and watched by its own task.

Only the leader replica (PostgreSQL advisory lock, leader.py) runs the engine; any replica
consumes events and serves HTTP.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

import asyncpg
from minio import Minio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel

from contracts.events import WorkloadStarted
from contracts.workload import Workload
from services.kit import metrics as kit_metrics
from services.kit.outbox import Outbox
from services.kit.instrument import untraced
from services.kit.telemetry import WORKLOAD_ATTRIBUTE, correlation_id, extract_context, in_trace, workload_span
from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.core.allocator import Allocation, ClusterSnapshot, Order, RedisAllocator
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree, fits
from services.scheduler.core.inventory import Node, NodeStatus
from services.scheduler.core.policy import QueuedWorkload, ReadyComponent, RunningAllocation, decide
from services.scheduler.core.queue import QueueStatus, RedisPriorityQueue
from services.scheduler.core.runners.base import STOPPED, ComponentRun, ImageRef, RunHandle, Runner
from services.scheduler.logs import RunLog, collect, read_json
from services.scheduler.outcomes import allocations as allocation_payloads
from services.scheduler.outcomes import terminal_event
from services.scheduler.settings import SchedulerSettings
from services.scheduler.tasks import cancel_all, wait_event, within

log = logging.getLogger(__name__)
NodeSource = Callable[[], Awaitable[list[Node]]]
FAILURE_LABEL = {"run": "component_failed", "timeout": "timeout", "allocation": "unplaceable",
                 "cancel": "cancelled", "loop_test": "loop_test", "queue": "queue"}


@dataclass
class ActiveRun:
    """A run this leader watches. The allocation id doubles as the runner's run id: one per
    attempt, so a re-run never collides with what an earlier attempt left behind."""

    run_id: str
    job_id: str
    allocation_id: str
    handle: RunHandle
    task: asyncio.Task | None = None


class Engine:
    def __init__(self, *, settings: SchedulerSettings, pool: asyncpg.Pool, outbox: Outbox, redis: Any,
                 allocator: RedisAllocator, queue: RedisPriorityQueue, runner: Runner, nodes: NodeSource,
                 objects: Minio, spool_dir: Path, measures: frozenset[str] = frozenset(),
                 reattach: bool = False) -> None:
        self.settings = settings
        self.pool = pool
        self.outbox = outbox
        self.redis = redis
        self.allocator = allocator
        self.queue = queue
        self.runner = runner
        self.nodes = nodes
        self.objects = objects
        self.spool_dir = spool_dir
        self.measures = measures  # what the runner can measure: {"memory", "cpu", "gpu"}
        # Kubernetes pods outlive the scheduler and keep their exit status: re-attach to them.
        # A local run adopted after a restart has lost its exit status: stop it and run it again.
        self.reattach = reattach
        self.prefix = settings.sched_prefix
        self.sentinel = f"{self.prefix}state"
        self.tracer = trace.get_tracer("avatar.scheduler")
        self._wake = asyncio.Event()
        self._active: dict[str, ActiveRun] = {}
        self._active_allocations: set[str] = set()
        self._stop_requested: set[str] = set()
        self._finishers: dict[str, asyncio.Task] = {}
        self._starting: set[str] = set()  # claimed runs whose launch is in progress
        self._helpers: set[asyncio.Task] = set()
        self._workloads: OrderedDict[str, Workload] = OrderedDict()
        self.leading = False

    # ------------------------------------------------------------------ lifecycle

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def lead(self) -> None:
        """Run as the leader until cancelled: recover, then loop."""
        self.leading = True
        m.LEADER.set(1)
        loops: list[asyncio.Task] = []
        try:
            await self.recover()
            loops = [asyncio.create_task(self._schedule_loop(), name="scheduler-loop"),
                     asyncio.create_task(self._reconcile_loop(), name="scheduler-reconciler")]
            if self.settings.scheduler_runner == "kubernetes":
                loops.append(asyncio.create_task(self._inventory_loop(), name="scheduler-inventory"))
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a loop only ends by an error: surface it (leadership is given up)
        finally:
            await cancel_all(loops)
            self.leading = False
            m.LEADER.set(0)
            await self._stand_down()

    async def _stand_down(self) -> None:
        """Stop watching. Runs that cannot outlive this process (local subprocesses) are stopped;
        PostgreSQL keeps them `running`, so the next leader re-runs them (recovery)."""
        for task in [*self._finishers.values(), *self._helpers]:
            task.cancel()
        active = list(self._active.values())
        for run in active:
            if run.task:
                run.task.cancel()
        await cancel_all([*(r.task for r in active if r.task), *self._finishers.values(), *self._helpers])
        if not self.reattach:
            await asyncio.gather(*(self.runner.stop(r.handle, 0.5) for r in active), return_exceptions=True)
            try:  # and anything a launch interrupted by the shutdown had already started
                for attempt in await self.runner.list_live():
                    await self._stop_attempt(attempt, 0.5)
            except Exception as exc:
                log.warning("cannot sweep local runs at shutdown: %s", exc)
        self._active.clear()
        self._active_allocations.clear()
        self._finishers.clear()

    # ------------------------------------------------------------------ recovery and Redis state

    async def recover(self) -> None:
        """A new leader: reload the inventory, re-attach or reset every run PostgreSQL says is
        live, restore the live allocations and the queue in Redis."""
        await self._load_inventory()
        async with self.pool.acquire() as conn:
            live = await store.live_runs(conn)
            jobs = await store.jobs_by_ids(conn, sorted({r["job_id"] for r in live}))
        for run in live:
            job = jobs[run["job_id"]]
            attempt = run["allocation_id"]
            handle = None
            if attempt:
                try:
                    handle = await self.runner.attach(attempt)
                except Exception as exc:
                    log.warning("cannot find run %s (%s) in the runner: %s", run["run_id"], attempt, exc)
            if handle is not None and self.reattach and run["status"] == "running":
                log.info("re-attached to run %s (%s)", run["run_id"], handle.ref)
                self._track(job, run, handle)
                continue
            if handle is not None:
                try:
                    await self.runner.stop(handle, self.settings.scheduler_stop_grace_seconds)
                except Exception as exc:
                    log.warning("cannot stop orphaned run %s (%s): %s", run["run_id"], handle.ref, exc)
            if attempt and await self.allocator.release(attempt):
                m.RELEASED.labels("recovery").inc()
            async with self.pool.acquire() as conn:
                await store.reset_run(conn, run["run_id"])
            log.warning("run %s was lost with the previous scheduler; it will run again", run["run_id"])
        await self._restore_allocations()
        await self._reset_queue_sync()
        await self.redis.set(self.sentinel, str(time.time()))
        self.wake()

    async def _load_inventory(self) -> None:
        nodes = await self.nodes()
        await self.allocator.load_inventory(nodes)
        async with self.pool.acquire() as conn:
            overrides = await store.node_overrides(conn)
        known = {n.name for n in nodes}
        for name, status in overrides.items():
            if name in known:
                await self.allocator.set_node_status(name, status)

    async def _restore_allocations(self) -> None:
        """Put the allocations of the runs this leader watches back (same node, same GPUs)."""
        if not self._active:
            return
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT r.*, j.deadline FROM runs r JOIN jobs j USING (job_id)"
                                    " WHERE r.run_id = ANY($1::text[])", list(self._active))
        for row in rows:
            if not row["allocation_id"] or not row["node"]:
                continue
            restored = await self.allocator.restore(
                row["allocation_id"], row["job_id"], row["run_id"], node=row["node"], gpu_type=row["gpu_type"],
                gpu_indices=list(row["gpu_indices"] or []), memory_bytes=int(row["memory_bytes"]),
                cpu_millis=int(row["cpu_millis"]), lease_seconds=self.settings.scheduler_lease_seconds,
                expected_end=row["deadline"].timestamp() if row["deadline"] else None)
            if restored is None:
                log.warning("run %s holds capacity on node %s, which is no longer in the inventory",
                            row["run_id"], row["node"])

    async def _reset_queue_sync(self) -> None:
        async with self.pool.acquire() as conn:
            await store.mark_all_unsynced(conn)
        await self.sync_queue()

    async def _ensure_redis(self) -> None:
        if await self.redis.exists(self.sentinel):
            return
        log.warning("scheduler state is missing from Redis (flushed or restarted): rebuilding it from PostgreSQL")
        m.REDIS_REBUILDS.inc()
        await self._load_inventory()
        await self._restore_allocations()
        await self._reset_queue_sync()
        await self.redis.set(self.sentinel, str(time.time()))

    async def sync_queue(self) -> None:
        """Mirror changed job rows into the Redis queue (PostgreSQL is the record)."""
        async with self.pool.acquire() as conn:
            rows = await store.unsynced_jobs(conn)
        if not rows:
            return
        for job in rows:
            job_id = job["job_id"]
            if job["status"] == "waiting":
                entry = await self.queue.get(job_id)
                if entry is None:
                    await self.queue.enqueue(
                        job_id, job["priority"], submitted_at=job["submitted_at"].timestamp(),
                        rank=float(job["queue_rank"]), requester=job["requester"], name=job["name"],
                        resources=_queue_resources(job, self.settings.scheduler_component_cpu),
                        attributes={"kind": job["kind"], "workload_id": job["workload_id"],
                                    "test_run_id": job["test_run_id"]})
                else:
                    if entry.priority.value != job["priority"]:
                        await self.queue.reprioritise(job_id, job["priority"])
                    if entry.status != QueueStatus.WAITING:
                        await self.queue.set_status(job_id, QueueStatus.WAITING)
            elif job["status"] in ("running", "stopping"):
                await self.queue.set_status(job_id, QueueStatus.RUNNING)
            else:
                await self.queue.remove(job_id)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE jobs SET redis_synced = true FROM unnest($1::text[], $2::timestamptz[]) AS s(id, ts)"
                " WHERE jobs.job_id = s.id AND jobs.updated_at = s.ts",
                [r["job_id"] for r in rows], [r["updated_at"] for r in rows])

    async def _inventory_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.scheduler_k8s_inventory_seconds)
            try:
                await self._load_inventory()
                self.wake()
            except Exception as exc:  # the API server may be away; keep the last inventory
                log.warning("node inventory refresh failed: %s", exc)

    # ------------------------------------------------------------------ the loop

    async def _schedule_loop(self) -> None:
        backoff = 0.5
        while True:
            self._wake.clear()
            next_deadline = None
            try:
                await self._ensure_redis()
                await self.sync_queue()
                next_deadline = await self._advance()
                await self._schedule()
                await self.sync_queue()
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
        await self._ensure_redis()
        await self.sync_queue()
        await self._advance()
        await self._schedule()
        await self.sync_queue()

    # ------------------------------------------------------------------ advancing jobs

    async def _advance(self) -> float | None:
        async with self.pool.acquire() as conn:
            jobs = await store.jobs_in(conn, ("running", "stopping"))
            runs = await store.runs_of(conn, [j["job_id"] for j in jobs])
        now = time.time()
        next_deadline: float | None = None
        for job in jobs:
            job_id = job["job_id"]
            if job["status"] == "stopping":
                self._ensure_finisher(job_id)
                continue
            job_runs = runs[job_id]
            states = [_state(r) for r in job_runs]
            deadline = job["deadline"].timestamp() if job["deadline"] else None
            general = job["kind"] == "looptest" and job["mode"] == "general"
            failed = [] if general else [r for r in job_runs if r["status"] == "failed"]
            # what already happened wins over the deadline: success, then the first failure
            if (domain.all_done(states) if general else domain.all_succeeded(states)):
                await self._end(job_id, "completed")
            elif failed:
                first = min(failed, key=lambda r: r["finished_at"] or datetime.max.replace(tzinfo=timezone.utc))
                await self._end(job_id, "failed", stage="run", reason=first["reason"], component_id=first["component_id"])
            elif deadline is not None and deadline <= now:
                await self._end(job_id, "failed", stage="timeout", reason=domain.timeout_reason(job["max_runtime_s"]))
            else:
                if general:
                    await self._advance_rounds(job, job_runs)
                if deadline is not None:
                    next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
        return next_deadline

    async def _advance_rounds(self, job: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> None:
        """A general loop test records a failed round and goes on with the next one."""
        failed_rounds = {r["round"] for r in runs if r["status"] == "failed"}
        for round_ in failed_rounds:
            live = [r for r in runs if r["round"] == round_ and r["status"] in domain.RUN_LIVE
                    and r["run_id"] not in self._stop_requested]
            if live:  # stopped in the background: the loop does not wait for them
                self._background(self._stop_runs(live), f"stop-round-{job['job_id']}-{round_}")
            if any(r["round"] == round_ and r["status"] == "pending" for r in runs):
                async with self.pool.acquire() as conn:
                    await store.skip_runs(conn, job["job_id"], round_=round_, reason="an earlier component failed")

    async def _end(self, job_id: str, outcome: str, *, stage: str | None = None, reason: str | None = None,
                   component_id: str | None = None) -> None:
        async with self.pool.acquire() as conn:
            row = await store.begin_stopping(conn, job_id, outcome=outcome, stage=stage, reason=reason,
                                             component_id=component_id)
        if row is not None:
            log.info("job %s ends %s%s", job_id, outcome, f" ({stage}: {reason})" if reason else "")
            self._ensure_finisher(job_id)

    def _background(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _ensure_finisher(self, job_id: str) -> None:
        task = self._finishers.get(job_id)
        if task is None or task.done():
            self._finishers[job_id] = asyncio.create_task(self._finish(job_id), name=f"finish-{job_id}")

    async def _finish(self, job_id: str) -> None:
        """Compensate and publish: stop live runs, release every allocation (each exactly once),
        skip what never ran, then the terminal status and its event in one transaction."""
        try:
            async with self.pool.acquire() as conn:
                runs = (await store.runs_of(conn, [job_id]))[job_id]
                head = await store.get_job(conn, job_id)
            if head is None:
                return
            with self._job_span(f"finish {head['kind']}", head) as span:
                await self._stop_runs([r for r in runs if r["status"] in domain.RUN_LIVE])
                for allocation in await self.allocator.allocations(workload_id=job_id):
                    if await self.allocator.release(allocation.allocation_id):
                        m.RELEASED.labels("compensation").inc()
                async with self.pool.acquire() as conn, conn.transaction():
                    job = await store.get_job(conn, job_id, lock=True)
                    if job is None or job["status"] != "stopping":
                        span.set_attribute("avatar.outcome", "already finished")
                        return
                    await store.skip_runs(conn, job_id, reason=job["failure_reason"])
                    job = await store.finalize(conn, job_id)
                    runs = (await store.runs_of(conn, [job_id]))[job_id]
                    types = await store.component_types(conn, sorted({r["component_id"] for r in runs}))
                    event_type, payload = terminal_event(job, runs, types)
                    await self._emit(conn, job, event_type, payload)
                _describe_outcome(span, job)
                await self.queue.remove(job_id)
            self._count_end(job, event_type)
            log.info("job %s is %s", job_id, job["status"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("finishing job %s failed; the loop will try again", job_id)
            await asyncio.sleep(1.0)
        finally:
            if self._finishers.get(job_id) is asyncio.current_task():
                self._finishers.pop(job_id, None)
            self.wake()

    async def _stop_runs(self, live: Sequence[Mapping[str, Any]]) -> None:
        """Stop live runs and wait until each is recorded `stopped` (or ended on its own)."""
        if not live:
            return
        grace = self.settings.scheduler_stop_grace_seconds
        ids = [run["run_id"] for run in live]
        self._stop_requested.update(ids)
        # a run being launched right now: its launcher sees the stop request and stops it
        deadline = time.monotonic() + 30
        while any(i in self._starting for i in ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        watched = [self._active[i] for i in ids if i in self._active]
        await asyncio.gather(*(self.runner.stop(a.handle, grace) for a in watched), return_exceptions=True)
        tasks = [a.task for a in watched if a.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace + 15)
        async with self.pool.acquire() as conn:
            current = {r["run_id"]: r for r in await conn.fetch("SELECT * FROM runs WHERE run_id = ANY($1::text[])", ids)}
        for run_id in ids:
            run = current.get(run_id)
            if run is None or run["status"] not in domain.RUN_LIVE:
                continue
            active = self._active.get(run_id)
            if active is not None and active.task is not None and not active.task.done():
                await cancel_all([active.task])  # a run that would not stop: stop watching, record it below
            await self._stop_attempt(run["allocation_id"], 0)
            async with self.pool.acquire() as conn:
                await store.finish_run(conn, run_id, status="stopped", exit_code=None, last_line=None,
                                       reason="stopped", log_url=None, metrics=None)
            if run["allocation_id"] and await self.allocator.release(run["allocation_id"]):
                m.RELEASED.labels("compensation").inc()
            self._active_allocations.discard(run["allocation_id"])

    async def _stop_attempt(self, attempt: str | None, grace: float) -> None:
        """Stop a runner run known only by its attempt id (best effort)."""
        if not attempt:
            return
        try:
            handle = await self.runner.attach(attempt)
            if handle is not None:
                await self.runner.stop(handle, grace)
        except Exception as exc:
            log.warning("cannot stop run attempt %s: %s", attempt, exc)

    # ------------------------------------------------------------------ deciding and starting

    async def _schedule(self) -> None:
        started_at = time.perf_counter()
        entries = await self.queue.list(limit=self.settings.scheduler_backfill_candidates)
        async with self.pool.acquire() as conn:
            running = await store.jobs_in(conn, ("running",))
            waiting = await store.jobs_by_ids(conn, [e.workload_id for e in entries])
            order = running + [waiting[e.workload_id] for e in entries
                               if e.workload_id in waiting and waiting[e.workload_id]["status"] == "waiting"]
            runs = await store.runs_of(conn, [j["job_id"] for j in order])
        now = time.time()
        jobs = {j["job_id"]: j for j in order}
        demands: dict[str, ComponentDemand] = {}
        queue_input = []
        for job in order:
            workload = self._workload(job)
            cpu = domain.component_cpu(workload, self.settings.scheduler_component_cpu)
            job_runs = {r["run_id"]: r for r in runs[job["job_id"]]}
            ready = []
            for run_id in domain.ready_runs(workload.spec, [_state(r) for r in job_runs.values()]):
                run = job_runs[run_id]
                _, component = domain.find_component(workload.spec, run["task_id"], run["component_id"])
                demands[run_id] = domain.demand_for(component, cpu=cpu)
                ready.append(ReadyComponent(run_id, demands[run_id]))
            if job["deadline"] is not None:
                remaining = max(0.0, job["deadline"].timestamp() - now)
            else:
                remaining = float(job["max_runtime_s"])
            queue_input.append(QueuedWorkload(job["job_id"], tuple(ready), remaining, job["priority"]))
        snapshot = await self.allocator.snapshot()
        self._export_gauges(snapshot, entries)
        if not any(q.ready for q in queue_input):
            return
        running_allocations = [RunningAllocation(a.node, a.gpu_type, a.gpu_count, a.memory_bytes, a.cpu_millis,
                                                 a.expected_end) for a in await self.allocator.allocations()]
        decision = decide(queue_input, snapshot.free_nodes(), running_allocations, now,
                          max_candidates=self.settings.scheduler_backfill_candidates)
        m.DECISION_SECONDS.observe(time.perf_counter() - started_at)
        for job_id, run_id in decision.unschedulable:
            if snapshot.nodes and not _fits_any_node(snapshot, demands[run_id]):
                run = next(r for r in runs[job_id] if r["run_id"] == run_id)
                await self._end(job_id, "failed", stage="allocation", component_id=run["component_id"],
                                reason=domain.unplaceable_reason(run["name"], run["component_id"], demands[run_id]))
        by_job: dict[str, list] = {}
        for start in decision.starts:
            by_job.setdefault(start.workload_id, []).append(start)
        for job_id, starts in by_job.items():
            job_runs = {r["run_id"]: r for r in runs[job_id]}
            await self._start_runs(jobs[job_id], [(s, job_runs[s.component_id], demands[s.component_id])
                                                  for s in starts], job_runs)

    async def _start_runs(self, job: Mapping[str, Any], starts: list, job_runs: Mapping[str, Mapping]) -> None:
        """Claim, allocate (the Lua script), record and launch: one span in the job's trace."""
        with self._job_span(f"start {job['kind']} components", job,
                            attributes={"avatar.components_starting": len(starts)}):
            await self._start_runs_traced(job, starts, job_runs)

    async def _start_runs_traced(self, job: Mapping[str, Any], starts: list, job_runs: Mapping[str, Mapping]) -> None:
        job_id = job["job_id"]
        now = time.time()
        deadline = job["deadline"].timestamp() if job["deadline"] else now + job["max_runtime_s"]
        claimed: list[tuple[Mapping, Allocation]] = []
        recorded: list[Mapping] = []
        try:
            for start, run, demand in starts:
                async with self.pool.acquire() as conn:
                    row = await store.claim_run(conn, run["run_id"])
                if row is None:
                    continue  # the job ended meanwhile, or another iteration took the run
                self._starting.add(row["run_id"])
                self._active_allocations.add(row["allocation_id"])  # the reconciler leaves it alone
                allocation = await self.allocator.allocate(
                    row["allocation_id"], job_id, row["run_id"], demand,
                    lease_seconds=self.settings.scheduler_lease_seconds, expected_end=deadline,
                    nodes=[start.node], order=Order.LISTED)
                if allocation is None:  # lost a race for the node: decide again next time
                    self._active_allocations.discard(row["allocation_id"])
                    self._starting.discard(row["run_id"])
                    async with self.pool.acquire() as conn:
                        await store.unclaim_run(conn, row["run_id"])
                    continue
                m.PLACEMENTS.labels("backfill" if start.backfilled else "in_order").inc()
                claimed.append((row, allocation))
            if not claimed:
                return
            first = None
            async with self.pool.acquire() as conn, conn.transaction():
                current = await store.get_job(conn, job_id, lock=True)  # serialises with a cancel
                if current is None or current["status"] not in ("waiting", "running"):
                    raise _JobEnded(job_id)
                for row, allocation in claimed:
                    recorded.append(await store.mark_run_allocated(
                        conn, row["run_id"], node=allocation.node, gpu_type=allocation.gpu_type,
                        gpu_indices=allocation.gpu_indices, memory_bytes=allocation.memory_bytes,
                        cpu_millis=allocation.cpu_millis))
                if current["status"] == "waiting":
                    first = await store.mark_started(conn, job_id, datetime.fromtimestamp(deadline, timezone.utc))
                    if job["kind"] == "workload":
                        await self._emit(conn, first, "workload.started", WorkloadStarted(
                            workload_id=job["workload_id"], allocations=allocation_payloads(recorded)))
                job = first or current
            if first is not None:
                await self.queue.set_status(job_id, QueueStatus.RUNNING)  # the sync would too, a moment later
                wait = (first["started_at"] - first["queued_at"]).total_seconds()
                kit_metrics.SAGA_STEP_SECONDS.labels("queue_wait").observe(max(0.0, wait))
                if job["kind"] == "workload":
                    kit_metrics.WORKLOADS.labels("scheduler", "started").inc()
            for row in recorded:
                if row is None:
                    continue
                await self._launch(job, row)
                self._starting.discard(row["run_id"])
        except _JobEnded:
            log.info("job %s ended while its components were being placed", job_id)
            for row, allocation in claimed:
                await self._abandon(row, allocation, status="skipped")
        except BaseException:
            for row, allocation in claimed:
                if row["run_id"] not in self._active:
                    await self._abandon(row, allocation)
            raise
        finally:
            for row, _ in claimed:
                self._starting.discard(row["run_id"])

    async def _abandon(self, row: Mapping[str, Any], allocation: Allocation, *, status: str = "pending") -> None:
        """Undo a claim whose start could not be recorded: back to pending, or skipped when
        the job ended meanwhile."""
        try:
            if await self.allocator.release(allocation.allocation_id):
                m.RELEASED.labels("start_aborted").inc()
            async with self.pool.acquire() as conn:
                if status == "pending":
                    await store.unclaim_run(conn, row["run_id"])
                else:
                    await store.finish_run(conn, row["run_id"], status=status, exit_code=None, last_line=None,
                                           reason="the job ended before it started", log_url=None, metrics=None)
        except Exception:
            log.exception("cannot undo the claim of run %s; the reconciler will release it", row["run_id"])
        finally:
            self._active_allocations.discard(allocation.allocation_id)

    async def _component_run(self, job: Mapping[str, Any], run: Mapping[str, Any]) -> ComponentRun:
        """What the runner needs to start one attempt of a run: image or command, env, placement."""
        workload = self._workload(job)
        task, component = domain.find_component(workload.spec, run["task_id"], run["component_id"])
        upstream = domain.predecessors(task)[component.component_id]
        async with self.pool.acquire() as conn:
            inputs = await conn.fetch(
                "SELECT component_id, output_prefix FROM runs WHERE job_id = $1 AND round = $2 AND task_id = $3"
                " AND component_id = ANY($4::text[])", job["job_id"], run["round"], run["task_id"], upstream)
            library = await store.library_lookup(conn, component.component_id, component.image.registry,
                                                 component.image.tag)
        prefixes = {r["component_id"]: r["output_prefix"] for r in inputs}
        local = self.settings.scheduler_runner == "local"
        env = domain.component_env(
            workload=workload, task_id=task.task_id, component=component, output_prefix=run["output_prefix"],
            input_prefixes=[prefixes[c] for c in upstream if c in prefixes],
            training=domain.training_config(workload, episodes=job["episodes"]),
            s3_endpoint=self.settings.s3_endpoint,
            s3_credentials=(self.settings.s3_access_key, self.settings.s3_secret_key) if local else None)
        # locally the library's command is what runs; a pod runs its image's entrypoint
        command = tuple(library["command"]) if library and local else ()
        return ComponentRun(
            workload_id=job["workload_id"], component_id=component.component_id, name=component.name,
            image=ImageRef(component.image.registry, component.image.tag), command=command, env=env,
            gpu_indices=tuple(run["gpu_indices"] or ()), node_name=run["node"] or "",
            memory_bytes=int(run["memory_bytes"] or 0), cpu=(run["cpu_millis"] or 0) / 1000,
            labels={"avatar-kind": job["kind"], "avatar-task": task.task_id}, run_id=run["allocation_id"])

    async def _launch(self, job: Mapping[str, Any], run: Mapping[str, Any]) -> None:
        if run["run_id"] in self._stop_requested:  # cancelled while it was being placed
            await self._record_end(run, status="stopped", exit_code=None, reason="stopped before it started")
            return
        try:
            spec = await self._component_run(job, run)
            if self.settings.scheduler_runner == "local" and not spec.command:
                raise RuntimeError(f"the library has no command for component {spec.component_id} "
                                   f"(image {spec.image}); the local runner cannot run it")
            handle = await self.runner.start(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("run %s could not start: %s", run["run_id"], exc)
            reason = domain.start_failure_reason(run["name"], run["component_id"], str(exc) or type(exc).__name__)
            await self._record_end(run, status="failed", exit_code=None, reason=reason)
            return
        self._track(job, run, handle)  # watched before anything else can fail or be cancelled
        async with self.pool.acquire() as conn:
            await store.mark_run_running(conn, run["run_id"], handle.ref)
        if run["run_id"] in self._stop_requested:  # stopped while it was being started
            await self.runner.stop(handle, self.settings.scheduler_stop_grace_seconds)

    async def _record_end(self, run: Mapping[str, Any], *, status: str, exit_code: int | None, reason: str) -> None:
        async with self.pool.acquire() as conn:
            await store.finish_run(conn, run["run_id"], status=status, exit_code=exit_code, last_line=None,
                                   reason=reason, log_url=None, metrics=None)
        if run["allocation_id"] and await self.allocator.release(run["allocation_id"]):
            m.RELEASED.labels("run_end").inc()
        self._active_allocations.discard(run["allocation_id"])
        m.RUNS.labels(status).inc()
        self.wake()

    # ------------------------------------------------------------------ watching a run

    def _track(self, job: Mapping[str, Any], run: Mapping[str, Any], handle: RunHandle) -> None:
        active = ActiveRun(run["run_id"], job["job_id"], run["allocation_id"], handle)
        self._active[run["run_id"]] = active
        self._active_allocations.add(run["allocation_id"])
        active.task = asyncio.create_task(self._watch(job, run, active), name=f"watch-{run['run_id']}")

    async def _watch(self, job: Mapping[str, Any], run: Mapping[str, Any], active: ActiveRun) -> None:
        span = self.tracer.start_span(
            f"run component {run['name']}", context=extract_context(job["trace_headers"]),
            attributes={WORKLOAD_ATTRIBUTE: job["workload_id"], "avatar.job_id": job["job_id"],
                        "avatar.task_id": run["task_id"], "avatar.component_id": run["component_id"],
                        "avatar.component_name": run["name"], "avatar.node": run["node"] or "",
                        "avatar.gpu_indices": ",".join(str(i) for i in run["gpu_indices"] or []),
                        "avatar.runner_ref": active.handle.ref})
        # the run's own Redis/S3/PostgreSQL calls are its children (its own task: attached for its life)
        attached = otel_context.attach(trace.set_span_in_context(span))
        bound = correlation_id.set(job["workload_id"])
        runlog = RunLog(self.spool_dir, run["run_id"], self.redis, self.prefix,
                        max_bytes=self.settings.scheduler_log_max_bytes,
                        live_lines=self.settings.scheduler_live_log_lines)
        started = time.monotonic()
        try:
            await runlog.reset_live()
            with untraced():  # mirroring log lines to Redis every 0.2s would be a span each
                collector = asyncio.create_task(collect(self.runner.logs(active.handle, follow=True), runlog))
            try:
                outcome = await self.runner.wait(active.handle)
                done, _ = await asyncio.wait({collector}, timeout=10)
                if not done:
                    await cancel_all([collector])
            except BaseException:
                collector.cancel()
                raise
            if runlog.lines == 0:
                # a run can end before its log stream opened (a pod still Pending when it was
                # asked): read what the runner kept, once, before it is cleaned up
                try:
                    with untraced():
                        await within(collect(self.runner.logs(active.handle, follow=False), runlog), 10)
                except Exception as exc:
                    log.debug("no log for run %s: %s", run["run_id"], exc)
            await runlog.finish()
            exit_code = outcome.exit_code
            stopped = run["run_id"] in self._stop_requested or outcome.reason.startswith(STOPPED)
            status = "succeeded" if outcome.succeeded else ("stopped" if stopped else "failed")
            if await self.allocator.release(active.allocation_id):
                m.RELEASED.labels("run_end").inc()
            self._active_allocations.discard(active.allocation_id)
            metrics = await self._read_metrics(run) if status == "succeeded" else None
            log_url = await self._upload_log(job, run, runlog)
            reason = None
            if status == "failed":
                reason = domain.component_failure_reason(run["name"], run["component_id"], exit_code,
                                                         runlog.last_line, outcome.reason)
            elif status == "stopped":
                reason = "stopped"
            async with self.pool.acquire() as conn:
                await store.finish_run(conn, run["run_id"], status=status, exit_code=exit_code,
                                       last_line=runlog.last_line, reason=reason, log_url=log_url, metrics=metrics)
            if self.reattach:  # a finished pod is kept only until its log and outcome are recorded
                try:
                    await self.runner.stop(active.handle, 0)
                except Exception as exc:
                    log.debug("cannot delete the finished pod of %s: %s", run["run_id"], exc)
            m.RUNS.labels(status).inc()
            m.RUN_SECONDS.observe(time.monotonic() - started)
            span.set_attribute("avatar.exit_code", -1 if exit_code is None else exit_code)
            span.set_attribute("avatar.run_status", status)
            if status == "failed":
                span.set_status(Status(StatusCode.ERROR, reason or "failed"))
            log.info("run %s %s (exit %s)", run["run_id"], status, exit_code)
        except asyncio.CancelledError:
            span.set_attribute("avatar.run_status", "scheduler stopped watching")
            raise
        except Exception as exc:
            log.exception("watching run %s failed", run["run_id"])
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "watch failed"))
        finally:
            correlation_id.reset(bound)
            otel_context.detach(attached)
            span.end()
            runlog.discard()
            if self._active.get(run["run_id"]) is active:
                self._active.pop(run["run_id"], None)
                self._stop_requested.discard(run["run_id"])
            self.wake()

    async def _read_metrics(self, run: Mapping[str, Any]) -> dict | None:
        bucket, _, prefix = run["output_prefix"].removeprefix("s3://").partition("/")
        try:
            return await read_json(self.objects, bucket, f"{prefix}metrics.json")
        except Exception as exc:
            log.warning("cannot read metrics.json of run %s: %s", run["run_id"], exc)
            return None

    async def _upload_log(self, job: Mapping[str, Any], run: Mapping[str, Any], runlog: RunLog) -> str | None:
        key = domain.log_key(job["workload_id"], run["task_id"], run["component_id"], test_run_id=job["test_run_id"],
                             round_=run["round"] if job["kind"] == "looptest" else None)
        try:
            return await runlog.upload(self.objects, self.settings.logs_bucket, key)
        except Exception as exc:
            log.warning("cannot upload the log of run %s: %s", run["run_id"], exc)
            return None

    # ------------------------------------------------------------------ reconciler

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.scheduler_reconcile_seconds)
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile failed")

    async def reconcile_once(self) -> int:
        """Renew the leases of live runs; release allocations whose run is gone. Returns how
        many were released."""
        released = 0
        allocations = await self.allocator.allocations()
        strangers = [a.allocation_id for a in allocations if a.allocation_id not in self._active_allocations]
        async with self.pool.acquire() as conn:
            owners = await store.allocation_owners(conn, strangers)
        for allocation in allocations:
            if allocation.allocation_id in self._active_allocations:
                await self.allocator.renew_lease(allocation.allocation_id, self.settings.scheduler_lease_seconds)
                continue
            owner = owners.get(allocation.allocation_id)
            transitional = owner is not None and owner["status"] in domain.RUN_LIVE
            if await self.allocator.release(allocation.allocation_id, only_if_expired=transitional):
                released += 1
                m.RELEASED.labels("reconciler").inc()
                log.warning("released allocation %s of %s on %s: its run is gone", allocation.allocation_id,
                            allocation.workload_id, allocation.node)
        await self._stop_orphans()
        await self._sample_usage()
        if released:
            self.wake()
        return released

    async def _stop_orphans(self) -> None:
        """Stop runner runs no run of ours owns (e.g. started just before a crash)."""
        try:
            live = await self.runner.list_live()
        except Exception as exc:
            log.debug("cannot list the runner's live runs: %s", exc)
            return
        for attempt in live - self._active_allocations:
            if attempt in self._active_allocations:  # started while we were listing
                continue
            log.warning("stopping run %s: no scheduled run owns it", attempt)
            await self._stop_attempt(attempt, self.settings.scheduler_stop_grace_seconds)
            m.ORPHANS_STOPPED.inc()

    async def _sample_usage(self) -> None:
        if not self.measures:
            return
        ttl = max(3 * self.settings.scheduler_reconcile_seconds, 10)
        for run_id, active in list(self._active.items()):
            try:
                usage = await self.runner.usage(active.handle)
            except Exception as exc:
                log.debug("usage of %s unavailable: %s", run_id, exc)
                continue
            if usage is None:
                continue
            fields = {k: v for k, v in (("memory_bytes", usage.memory_rss_bytes),
                                        ("cpu_cores", usage.cpu_cores)) if v is not None}
            if fields:
                key = f"{self.prefix}usage:{run_id}"
                await self.redis.hset(key, mapping={k: str(v) for k, v in fields.items()})
                await self.redis.expire(key, int(ttl))

    # ------------------------------------------------------------------ helpers

    def _workload(self, job: Mapping[str, Any]) -> Workload:
        cached = self._workloads.get(job["job_id"])
        if cached is None:
            cached = Workload.model_validate(job["workload"])
            self._workloads[job["job_id"]] = cached
            if len(self._workloads) > 5000:
                self._workloads.popitem(last=False)
        return cached

    async def _emit(self, conn: asyncpg.Connection, job: Mapping[str, Any], event_type: str, payload: BaseModel) -> None:
        """Publish in the current span (a job span), else with the job's trace context, so the event
        joins the request's trace."""
        if in_trace():
            await self.outbox.emit(conn, event_type, payload, correlation_id=job["workload_id"])
            return
        token = otel_context.attach(extract_context(job["trace_headers"]))
        try:
            await self.outbox.emit(conn, event_type, payload, correlation_id=job["workload_id"])
        finally:
            otel_context.detach(token)

    def _job_span(self, name: str, job: Mapping[str, Any], *, attributes: Mapping[str, Any] | None = None):
        """A span of the engine's work on one job, in the trace of the event that created the job."""
        return workload_span(name, job["workload_id"], parent=job["trace_headers"] or {}, attributes={
            "avatar.job_id": job["job_id"], "avatar.job_kind": job["kind"], **(attributes or {})})

    def _count_end(self, job: Mapping[str, Any], event_type: str) -> None:
        if job["started_at"] and job["finished_at"]:
            kit_metrics.SAGA_STEP_SECONDS.labels("run").observe((job["finished_at"] - job["started_at"]).total_seconds())
        if job["kind"] == "looptest":
            m.LOOP_TESTS.labels(job["status"]).inc()
            return
        kit_metrics.WORKLOADS.labels("scheduler", job["status"]).inc()
        if job["status"] in ("failed", "cancelled"):
            kit_metrics.WORKLOADS_FAILED.labels(FAILURE_LABEL.get(job["failure_stage"] or "", "other")).inc()

    def _export_gauges(self, snapshot: ClusterSnapshot, entries: Iterable[Any]) -> None:
        depth = {"high": 0, "normal": 0, "low": 0}
        for entry in entries:
            depth[entry.priority.value] += 1
        for priority, count in depth.items():
            m.QUEUE_DEPTH.labels(priority).set(count)
        for gpu_type, totals in snapshot.gpu_types.items():
            m.GPUS.labels(gpu_type, "allocated").set(totals.allocated)
            m.GPUS.labels(gpu_type, "idle").set(totals.free)


class _JobEnded(Exception):
    pass


def _describe_outcome(span: Any, job: Mapping[str, Any]) -> None:
    span.set_attribute("avatar.outcome", job["status"])
    if job["failure_stage"]:
        span.set_attribute("avatar.failure_stage", job["failure_stage"])
    if job["status"] == "failed":
        span.set_status(Status(StatusCode.ERROR, (job["failure_reason"] or "failed")[:300]))


def _state(run: Mapping[str, Any]) -> domain.RunState:
    return domain.RunState(run["run_id"], run["round"], run["task_id"], run["component_id"], run["status"])


def _fits_any_node(snapshot: ClusterSnapshot, demand: ComponentDemand) -> bool:
    """Could the demand ever run here, with every node empty and Active?"""
    for node in snapshot.nodes:
        empty = NodeFree(node.name, NodeStatus.ACTIVE,
                         {t: GpuFree(p.total, p.memory_per_gpu_bytes) for t, p in node.gpus.items()},
                         int(node.memory.total), int(round(node.cpu.total * 1000)))
        if fits(empty, demand):
            return True
    return False


def _queue_resources(job: Mapping[str, Any], default_cpu: float) -> dict[str, Any]:
    """QU-05: the request's GPU type × count, memory and CPU, as the queue shows them."""
    workload = job["workload"] or {}
    resources = workload.get("resources") or {}
    return {"gpu_type": resources.get("gpuType"), "gpu_count": resources.get("gpuCount"),
            "memory": resources.get("memory"), "cpu": resources.get("cpu") or default_cpu,
            "max_runtime": resources.get("maxRuntime")}
