"""Deciding and starting: one scheduling round.

Running jobs' ready components first (a started workload is never starved), then the queue in
order (loop tests are queued ahead of everything else); core.policy.decide() (EASY backfill)
picks starts. The round's starts are claimed in one statement, each allocated by the atomic Lua
script (a lost race is skipped), recorded together with the jobs' first starts and their
workload.started events in one transaction, then launched side by side through the runner, each
watched by its own task.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from opentelemetry.trace import Span

from contracts.workload import Workload
from services.kit import metrics as kit_metrics
from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.core.allocator import Allocation, ClusterSnapshot, Order
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree, fits
from services.scheduler.core.inventory import NodeStatus
from services.scheduler.core.policy import QueuedWorkload, ReadyComponent, RunningAllocation, decide
from services.scheduler.core.runners.base import ComponentRun, ImageRef
from services.scheduler.engine.context import Adapters, LiveRuns, Wake, record_run_end
from services.scheduler.engine.jobs import Jobs
from services.scheduler.engine.telemetry import export_gauges, in_job_span, start_job_span
from services.scheduler.engine.watcher import Watcher
from services.scheduler.records import JobRecord, RunRecord

log = logging.getLogger(__name__)


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
                               if e.workload_id in waiting and waiting[e.workload_id].status == "waiting"]
            runs = await store.runs_of(conn, [j.job_id for j in order])
        now = time.time()
        jobs = {j.job_id: j for j in order}
        demands: dict[str, ComponentDemand] = {}
        queue_input = []
        for job in order:
            workload = self._workload(job)
            cpu = domain.component_cpu(workload, settings.scheduler_component_cpu)
            job_runs = {r.run_id: r for r in runs[job.job_id]}
            ready = []
            for run_id in domain.ready_runs(workload.spec, [domain.RunState.of(r) for r in job_runs.values()]):
                run = job_runs[run_id]
                _, component = domain.find_component(workload.spec, run.task_id, run.component_id)
                demands[run_id] = domain.demand_for(component, cpu=cpu)
                ready.append(ReadyComponent(run_id, demands[run_id]))
            if job.deadline is not None:
                remaining = max(0.0, job.deadline.timestamp() - now)
            else:
                remaining = float(job.max_runtime_s)
            queue_input.append(QueuedWorkload(job.job_id, tuple(ready), remaining, job.priority))
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
                run = next(r for r in runs[job_id] if r.run_id == run_id)
                await self.jobs.end(jobs[job_id], "failed", stage="allocation", component_id=run.component_id,
                                    reason=domain.unplaceable_reason(run.name, run.component_id, demands[run_id]))
        if decision.starts:
            await self._start(decision.starts, jobs, demands)

    async def _start(self, starts: Sequence[Any], jobs: Mapping[str, JobRecord],
                     demands: Mapping[str, ComponentDemand]) -> None:
        """Start the round's decision: claim every run in one statement, allocate each (the Lua
        script refuses a start that lost a race), record the placements and the jobs' first starts
        in one transaction, then launch side by side. One span per job, in the job's trace."""
        io, live = self.io, self.live
        async with io.pool.acquire() as conn:
            claimed_rows = await store.claim_runs(conn, [start.component_id for start in starts])
        claimed: dict[str, tuple[RunRecord, Allocation]] = {}
        pending = dict(claimed_rows)  # claimed, not yet allocated or handed back: undone if this fails
        lost: list[str] = []
        starting = Counter(row.job_id for row in claimed_rows.values())
        now = time.time()
        deadlines = {job_id: jobs[job_id].deadline.timestamp() if jobs[job_id].deadline
                     else now + jobs[job_id].max_runtime_s for job_id in starting}
        spans = {job_id: start_job_span(f"start {jobs[job_id].kind} components", jobs[job_id],
                                        attributes={"avatar.components_starting": count})
                 for job_id, count in starting.items()}
        try:
            try:
                for start in starts:  # in decision order: an in-order start before the backfill behind it
                    row = claimed_rows.get(start.component_id)
                    if row is None:
                        continue  # the job ended meanwhile, or another iteration took the run
                    live.starting.add(row.run_id)
                    live.allocations.add(row.allocation_id)  # the reconciler leaves it alone
                    with in_job_span(spans[row.job_id], jobs[row.job_id]):
                        allocation = await io.allocator.allocate(
                            row.allocation_id, row.job_id, row.run_id, demands[row.run_id],
                            lease_seconds=io.settings.scheduler_lease_seconds, expected_end=deadlines[row.job_id],
                            nodes=[start.node], order=Order.LISTED)
                    if allocation is None:  # lost a race for the node: decide again next time
                        live.allocations.discard(row.allocation_id)
                        live.starting.discard(row.run_id)
                        lost.append(row.run_id)
                    else:
                        m.PLACEMENTS.labels("backfill" if start.backfilled else "in_order").inc()
                        claimed[row.run_id] = (row, allocation)
                    del pending[row.run_id]
                if lost:
                    async with io.pool.acquire() as conn:
                        await store.unclaim_runs(conn, lost)
                if not claimed:
                    return
                recorded, current = await self._record(list(claimed.values()), deadlines, spans)
            except BaseException:
                await self._abandon_all(jobs, [*claimed.values(), *((row, None) for row in pending.values())])
                raise
            ended = [(row, a) for row, a in claimed.values() if row.job_id not in current]
            if ended:
                log.info("jobs %s ended while their components were being placed",
                         ", ".join(sorted({row.job_id for row, _ in ended})))
                for row, _ in ended:
                    spans[row.job_id].set_attribute("avatar.outcome", "ended before its start")
                await self._abandon_all(jobs, ended, status="skipped")
            await self._launch_all(recorded, current, list(claimed.values()), spans)
        finally:
            for row, _ in claimed.values():
                live.starting.discard(row.run_id)
            for span in spans.values():
                span.end()

    async def _record(self, claimed: Sequence[tuple[RunRecord, Allocation]], deadlines: Mapping[str, float],
                      spans: Mapping[str, Span]) -> tuple[list[RunRecord], dict[str, JobRecord]]:
        """One unit of work: the placements, the first starts and their workload.started events.
        Returns the recorded runs and the jobs that go on (as they now are)."""
        job_ids = sorted({row.job_id for row, _ in claimed})
        uow = self.io.uow()
        async with uow:
            locked = await uow.jobs.lock(job_ids)  # serialises with a cancel
            current = {job_id: job for job_id, job in locked.items() if job.may_run}
            recorded = await uow.jobs.record_allocations(
                {row.run_id: a for row, a in claimed if row.job_id in current})
            waiting = []
            for job in current.values():
                if job.status == "waiting":
                    job.start([r for r in recorded.values() if r.job_id == job.job_id],
                              datetime.fromtimestamp(deadlines[job.job_id], timezone.utc))
                    waiting.append(uow.in_span(job, spans[job.job_id]))
            firsts = await uow.jobs.start(waiting)
            await uow.commit()
        for job in firsts:
            wait = (job.state.started_at - job.state.queued_at).total_seconds()
            kit_metrics.SAGA_STEP_SECONDS.labels("queue_wait").observe(max(0.0, wait))
            if job.kind == "workload":
                kit_metrics.WORKLOADS.labels("scheduler", "started").inc()
        return list(recorded.values()), {job_id: job.state for job_id, job in current.items()}

    async def _launch_all(self, recorded: Sequence[RunRecord], jobs: Mapping[str, JobRecord],
                          claimed: Sequence[tuple[RunRecord, Allocation]], spans: Mapping[str, Span]) -> None:
        """Launch side by side, a few at a time (a pod's creation waits on the API server), and record
        the runner references in one statement."""
        io, live = self.io, self.live
        slots = asyncio.Semaphore(io.settings.scheduler_start_concurrency)
        library: dict[tuple[str, str | None, str, str], Any] = {}  # the round's library lookups, each made once

        async def launch(run: RunRecord) -> str | None:
            job = jobs[run.job_id]
            async with slots:
                with in_job_span(spans[job.job_id], job):
                    return await self._launch(job, run, library)

        try:
            results = await asyncio.gather(*(launch(run) for run in recorded), return_exceptions=True)
            started = {run.run_id: ref for run, ref in zip(recorded, results) if isinstance(ref, str)}
            if started:
                async with io.pool.acquire() as conn:
                    await store.mark_runs_running(conn, started)
            failures = [result for result in results if isinstance(result, BaseException)]
            for failure in failures[1:]:  # the first is raised: the loop logs it and tries again
                log.error("starting a component failed", exc_info=failure)
            if failures:
                raise failures[0]
        except BaseException:  # undo what is not running (a run that already ended is left as it is)
            await self._abandon_all(jobs, [(row, a) for row, a in claimed if row.run_id not in live.active])
            raise

    async def _abandon_all(self, jobs: Mapping[str, JobRecord], claims: Sequence[tuple[RunRecord, Allocation | None]],
                           *, status: str = "pending") -> None:
        for row, allocation in claims:
            await self._abandon(jobs[row.job_id], row, allocation, status=status)

    async def _abandon(self, job: JobRecord, row: RunRecord, allocation: Allocation | None, *,
                       status: str = "pending") -> None:
        """Undo a claim whose start could not be recorded: back to pending, or skipped when
        the job ended meanwhile."""
        try:  # the record first: until PostgreSQL has it, the run holds its GPUs (a rebuild restores them)
            if status == "pending":
                async with self.io.pool.acquire() as conn:
                    await store.unclaim_runs(conn, [row.run_id])
            else:
                await record_run_end(self.io, job, row, status, reason="the job ended before it started")
            if allocation is not None and await self.io.allocator.release(allocation.allocation_id):
                m.RELEASED.labels("start_aborted").inc()
        except Exception:
            log.exception("cannot undo the claim of run %s; the reconciler will release it", row.run_id)
        finally:
            self.live.allocations.discard(row.allocation_id)
            self.live.starting.discard(row.run_id)

    async def _component_run(self, job: JobRecord, run: RunRecord,
                             library: dict[tuple[str, str | None, str, str], Any]) -> ComponentRun:
        """What the runner needs to start one attempt of a run: image or command, env, placement
        (`library`: the library entries this round already looked up)."""
        settings = self.io.settings
        workload = self._workload(job)
        task, component = domain.find_component(workload.spec, run.task_id, run.component_id)
        upstream = domain.predecessors(task)[component.component_id]
        entry_key = (component.component_id, component.library_version, component.image.registry,
                     component.image.tag)
        prefixes: dict[str, str] = {}
        if upstream or entry_key not in library:
            async with self.io.pool.acquire() as conn:
                if upstream:
                    prefixes = await store.output_prefixes(conn, run, upstream)
                if entry_key not in library:
                    library[entry_key] = await store.library_entry(conn, *entry_key)
        entry: store.LibraryEntry | None = library[entry_key]
        if entry is None and component.library_version is not None:
            # CL-05: the spec names this version; running any other one (the latest, say) would not be it
            raise RuntimeError(f"the scheduler has not heard of version {component.library_version} of library "
                               f"component {component.component_id}; it runs no other version in its place")
        local = settings.scheduler_runner == "local"
        env = domain.component_env(
            workload=workload, task_id=task.task_id, component=component, output_prefix=run.output_prefix,
            input_prefixes=[prefixes[c] for c in upstream if c in prefixes],
            training=domain.training_config(workload, episodes=job.episodes),
            s3_endpoint=settings.s3_endpoint,
            s3_credentials=(settings.s3_access_key, settings.s3_secret_key) if local else None)
        # Locally the library's command is what runs. A pod runs the spec's image with the command of the
        # version the spec names (a version may change the command alone); a spec naming no version runs
        # its image's entrypoint.
        command = entry.command if entry and (local or component.library_version is not None) else ()
        labels = {"avatar-kind": job.kind, "avatar-task": task.task_id}
        if entry is not None:
            labels["avatar-library-version"] = entry.version
        return ComponentRun(
            workload_id=job.workload_id, component_id=component.component_id, name=component.name,
            image=ImageRef(component.image.registry, component.image.tag), command=command, env=env,
            secret_env=domain.component_secrets(workload),
            gpu_indices=tuple(run.gpu_indices or ()), node_name=run.node or "",
            memory_bytes=int(run.memory_bytes or 0), cpu=(run.cpu_millis or 0) / 1000,
            labels=labels, run_id=run.allocation_id)

    async def _launch(self, job: JobRecord, run: RunRecord,
                      library: dict[tuple[str, str | None, str, str], Any]) -> str | None:
        """Start one run and watch it; its runner reference, or None when it did not start (its end
        is recorded). The caller records the reference (one statement for the round)."""
        io = self.io
        if run.run_id in self.live.stop_requested:  # cancelled while it was being placed
            await self._record_end(job, run, status="stopped", reason="stopped before it started")
            return None
        try:
            spec = await self._component_run(job, run, library)
            if io.settings.scheduler_runner == "local" and not spec.command:
                raise RuntimeError(f"the library has no command for component {spec.component_id} "
                                   f"(image {spec.image}); the local runner cannot run it")
            handle = await io.runner.start(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("run %s could not start: %s", run.run_id, exc)
            reason = domain.start_failure_reason(run.name, run.component_id, str(exc) or type(exc).__name__)
            await self._record_end(job, run, status="failed", reason=reason)
            return None
        self.watcher.track(job, run, handle)  # watched before anything else can fail or be cancelled
        if run.run_id in self.live.stop_requested:  # stopped while it was being started
            await io.runner.stop(handle, io.settings.scheduler_stop_grace_seconds)
        return handle.ref

    async def _record_end(self, job: JobRecord, run: RunRecord, *, status: str, reason: str) -> None:
        """The end of a run that never started (so no watcher records it)."""
        await record_run_end(self.io, job, run, status, reason=reason)
        if run.allocation_id and await self.io.allocator.release(run.allocation_id):
            m.RELEASED.labels("run_end").inc()
        self.live.allocations.discard(run.allocation_id)
        m.RUNS.labels(status).inc()
        self.wake()

    def _workload(self, job: JobRecord) -> Workload:
        cached = self._workloads.get(job.job_id)
        if cached is None:
            cached = Workload.model_validate(job.workload)
            self._workloads[job.job_id] = cached
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
