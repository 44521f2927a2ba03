"""Deciding and starting: one scheduling round.

Running jobs' ready components first (a started workload is never starved), then the queue in
order (loop tests are queued ahead of everything else); core.policy.decide() (EASY backfill)
picks starts, each allocated by the atomic Lua script (a lost race is skipped), recorded, then
launched through the runner and watched by its own task.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Mapping

from contracts.events import WorkloadStarted
from contracts.workload import Workload
from services.kit import metrics as kit_metrics
from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.core.allocator import Allocation, ClusterSnapshot, Order
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree, fits
from services.scheduler.core.inventory import NodeStatus
from services.scheduler.core.policy import QueuedWorkload, ReadyComponent, RunningAllocation, decide
from services.scheduler.core.queue import QueueStatus
from services.scheduler.core.runners.base import ComponentRun, ImageRef
from services.scheduler.engine.context import Adapters, LiveRuns, Wake
from services.scheduler.engine.jobs import Jobs
from services.scheduler.engine.telemetry import emit, export_gauges, job_span
from services.scheduler.engine.watcher import Watcher
from services.scheduler.outcomes import allocations as allocation_payloads

log = logging.getLogger(__name__)


class _JobEnded(Exception):
    pass


class Starter:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake, *, jobs: Jobs, watcher: Watcher) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self.jobs = jobs
        self.watcher = watcher
        self._workloads: OrderedDict[str, Workload] = OrderedDict()

    async def schedule(self) -> None:
        io, settings = self.io, self.io.settings
        started_at = time.perf_counter()
        entries = await io.queue.list(limit=settings.scheduler_backfill_candidates)
        async with io.pool.acquire() as conn:
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
            cpu = domain.component_cpu(workload, settings.scheduler_component_cpu)
            job_runs = {r["run_id"]: r for r in runs[job["job_id"]]}
            ready = []
            for run_id in domain.ready_runs(workload.spec, [domain.RunState.of(r) for r in job_runs.values()]):
                run = job_runs[run_id]
                _, component = domain.find_component(workload.spec, run["task_id"], run["component_id"])
                demands[run_id] = domain.demand_for(component, cpu=cpu)
                ready.append(ReadyComponent(run_id, demands[run_id]))
            if job["deadline"] is not None:
                remaining = max(0.0, job["deadline"].timestamp() - now)
            else:
                remaining = float(job["max_runtime_s"])
            queue_input.append(QueuedWorkload(job["job_id"], tuple(ready), remaining, job["priority"]))
        snapshot = await io.allocator.snapshot()
        export_gauges(snapshot, entries)
        if not any(q.ready for q in queue_input):
            return
        running_allocations = [RunningAllocation(a.node, a.gpu_type, a.gpu_count, a.memory_bytes, a.cpu_millis,
                                                 a.expected_end) for a in await io.allocator.allocations()]
        decision = decide(queue_input, snapshot.free_nodes(), running_allocations, now,
                          max_candidates=settings.scheduler_backfill_candidates)
        m.DECISION_SECONDS.observe(time.perf_counter() - started_at)
        for job_id, run_id in decision.unschedulable:
            if snapshot.nodes and not _fits_any_node(snapshot, demands[run_id]):
                run = next(r for r in runs[job_id] if r["run_id"] == run_id)
                await self.jobs.end(job_id, "failed", stage="allocation", component_id=run["component_id"],
                                    reason=domain.unplaceable_reason(run["name"], run["component_id"], demands[run_id]))
        by_job: dict[str, list] = {}
        for start in decision.starts:
            by_job.setdefault(start.workload_id, []).append(start)
        # the decision placed every start on capacity of its own, so jobs start side by side (in decision
        # order, a few at a time); the allocator's script still refuses a start that lost a race
        slots = asyncio.Semaphore(settings.scheduler_start_concurrency)

        async def start_job(job_id: str, starts: list) -> None:
            async with slots:
                job_runs = {r["run_id"]: r for r in runs[job_id]}
                await self._start_runs(jobs[job_id], [(s, job_runs[s.component_id], demands[s.component_id])
                                                      for s in starts], job_runs)

        results = await asyncio.gather(*(start_job(job_id, starts) for job_id, starts in by_job.items()),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        for failure in failures[1:]:  # the first is raised: the loop logs it and tries again
            log.error("starting a job failed", exc_info=failure)
        if failures:  # each failed start undid its own claims
            raise failures[0]

    async def _start_runs(self, job: Mapping[str, Any], starts: list, job_runs: Mapping[str, Mapping]) -> None:
        """Claim, allocate (the Lua script), record and launch: one span in the job's trace."""
        with job_span(f"start {job['kind']} components", job, attributes={"avatar.components_starting": len(starts)}):
            await self._start_runs_traced(job, starts, job_runs)

    async def _start_runs_traced(self, job: Mapping[str, Any], starts: list, job_runs: Mapping[str, Mapping]) -> None:
        io, live = self.io, self.live
        job_id = job["job_id"]
        now = time.time()
        deadline = job["deadline"].timestamp() if job["deadline"] else now + job["max_runtime_s"]
        claimed: list[tuple[Mapping, Allocation]] = []
        recorded: list[Mapping] = []
        try:
            for start, run, demand in starts:
                async with io.pool.acquire() as conn:
                    row = await store.claim_run(conn, run["run_id"])
                if row is None:
                    continue  # the job ended meanwhile, or another iteration took the run
                live.starting.add(row["run_id"])
                live.allocations.add(row["allocation_id"])  # the reconciler leaves it alone
                allocation = await io.allocator.allocate(
                    row["allocation_id"], job_id, row["run_id"], demand,
                    lease_seconds=io.settings.scheduler_lease_seconds, expected_end=deadline,
                    nodes=[start.node], order=Order.LISTED)
                if allocation is None:  # lost a race for the node: decide again next time
                    live.allocations.discard(row["allocation_id"])
                    live.starting.discard(row["run_id"])
                    async with io.pool.acquire() as conn:
                        await store.unclaim_run(conn, row["run_id"])
                    continue
                m.PLACEMENTS.labels("backfill" if start.backfilled else "in_order").inc()
                claimed.append((row, allocation))
            if not claimed:
                return
            first = None
            async with io.pool.acquire() as conn, conn.transaction():
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
                        await emit(io.outbox, conn, first, "workload.started", WorkloadStarted(
                            workload_id=job["workload_id"], allocations=allocation_payloads(recorded)))
                job = first or current
            if first is not None:
                await io.queue.set_status(job_id, QueueStatus.RUNNING)  # the sync would too, a moment later
                wait = (first["started_at"] - first["queued_at"]).total_seconds()
                kit_metrics.SAGA_STEP_SECONDS.labels("queue_wait").observe(max(0.0, wait))
                if job["kind"] == "workload":
                    kit_metrics.WORKLOADS.labels("scheduler", "started").inc()
            for row in recorded:
                if row is None:
                    continue
                await self._launch(job, row)
                live.starting.discard(row["run_id"])
        except _JobEnded:
            log.info("job %s ended while its components were being placed", job_id)
            for row, allocation in claimed:
                await self._abandon(row, allocation, status="skipped")
        except BaseException:
            for row, allocation in claimed:
                if row["run_id"] not in live.active:
                    await self._abandon(row, allocation)
            raise
        finally:
            for row, _ in claimed:
                live.starting.discard(row["run_id"])

    async def _abandon(self, row: Mapping[str, Any], allocation: Allocation, *, status: str = "pending") -> None:
        """Undo a claim whose start could not be recorded: back to pending, or skipped when
        the job ended meanwhile."""
        try:
            if await self.io.allocator.release(allocation.allocation_id):
                m.RELEASED.labels("start_aborted").inc()
            async with self.io.pool.acquire() as conn:
                if status == "pending":
                    await store.unclaim_run(conn, row["run_id"])
                else:
                    await store.finish_run(conn, row["run_id"], status=status, exit_code=None, last_line=None,
                                           reason="the job ended before it started", log_url=None, metrics=None)
        except Exception:
            log.exception("cannot undo the claim of run %s; the reconciler will release it", row["run_id"])
        finally:
            self.live.allocations.discard(allocation.allocation_id)

    async def _component_run(self, job: Mapping[str, Any], run: Mapping[str, Any]) -> ComponentRun:
        """What the runner needs to start one attempt of a run: image or command, env, placement."""
        settings = self.io.settings
        workload = self._workload(job)
        task, component = domain.find_component(workload.spec, run["task_id"], run["component_id"])
        upstream = domain.predecessors(task)[component.component_id]
        async with self.io.pool.acquire() as conn:
            inputs = await conn.fetch(
                "SELECT component_id, output_prefix FROM runs WHERE job_id = $1 AND round = $2 AND task_id = $3"
                " AND component_id = ANY($4::text[])", job["job_id"], run["round"], run["task_id"], upstream
            ) if upstream else []
            library = await store.library_lookup(conn, component.component_id, component.image.registry,
                                                 component.image.tag)
        prefixes = {r["component_id"]: r["output_prefix"] for r in inputs}
        local = settings.scheduler_runner == "local"
        env = domain.component_env(
            workload=workload, task_id=task.task_id, component=component, output_prefix=run["output_prefix"],
            input_prefixes=[prefixes[c] for c in upstream if c in prefixes],
            training=domain.training_config(workload, episodes=job["episodes"]),
            s3_endpoint=settings.s3_endpoint,
            s3_credentials=(settings.s3_access_key, settings.s3_secret_key) if local else None)
        # locally the library's command is what runs; a pod runs its image's entrypoint
        command = tuple(library["command"]) if library and local else ()
        return ComponentRun(
            workload_id=job["workload_id"], component_id=component.component_id, name=component.name,
            image=ImageRef(component.image.registry, component.image.tag), command=command, env=env,
            gpu_indices=tuple(run["gpu_indices"] or ()), node_name=run["node"] or "",
            memory_bytes=int(run["memory_bytes"] or 0), cpu=(run["cpu_millis"] or 0) / 1000,
            labels={"avatar-kind": job["kind"], "avatar-task": task.task_id}, run_id=run["allocation_id"])

    async def _launch(self, job: Mapping[str, Any], run: Mapping[str, Any]) -> None:
        io = self.io
        if run["run_id"] in self.live.stop_requested:  # cancelled while it was being placed
            await self._record_end(run, status="stopped", exit_code=None, reason="stopped before it started")
            return
        try:
            spec = await self._component_run(job, run)
            if io.settings.scheduler_runner == "local" and not spec.command:
                raise RuntimeError(f"the library has no command for component {spec.component_id} "
                                   f"(image {spec.image}); the local runner cannot run it")
            handle = await io.runner.start(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("run %s could not start: %s", run["run_id"], exc)
            reason = domain.start_failure_reason(run["name"], run["component_id"], str(exc) or type(exc).__name__)
            await self._record_end(run, status="failed", exit_code=None, reason=reason)
            return
        self.watcher.track(job, run, handle)  # watched before anything else can fail or be cancelled
        async with io.pool.acquire() as conn:
            await store.mark_run_running(conn, run["run_id"], handle.ref)
        if run["run_id"] in self.live.stop_requested:  # stopped while it was being started
            await io.runner.stop(handle, io.settings.scheduler_stop_grace_seconds)

    async def _record_end(self, run: Mapping[str, Any], *, status: str, exit_code: int | None, reason: str) -> None:
        """The end of a run that never started (so no watcher records it)."""
        async with self.io.pool.acquire() as conn:
            await store.finish_run(conn, run["run_id"], status=status, exit_code=exit_code, last_line=None,
                                   reason=reason, log_url=None, metrics=None)
        if run["allocation_id"] and await self.io.allocator.release(run["allocation_id"]):
            m.RELEASED.labels("run_end").inc()
        self.live.allocations.discard(run["allocation_id"])
        m.RUNS.labels(status).inc()
        self.wake()

    def _workload(self, job: Mapping[str, Any]) -> Workload:
        cached = self._workloads.get(job["job_id"])
        if cached is None:
            cached = Workload.model_validate(job["workload"])
            self._workloads[job["job_id"]] = cached
            if len(self._workloads) > 5000:
                self._workloads.popitem(last=False)
        return cached


def _fits_any_node(snapshot: ClusterSnapshot, demand: ComponentDemand) -> bool:
    """Could the demand ever run here, with every node empty and Active?"""
    for node in snapshot.nodes:
        empty = NodeFree(node.name, NodeStatus.ACTIVE,
                         {t: GpuFree(p.total, p.memory_per_gpu_bytes) for t, p in node.gpus.items()},
                         int(node.memory.total), int(round(node.cpu.total * 1000)))
        if fits(empty, demand):
            return True
    return False
