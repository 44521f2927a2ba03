"""Advancing running jobs and finishing them.

Deadlines (max_runtime from the job's first start), failed runs, finished DAGs and general
loop-test rounds decide a job's outcome. Jobs whose every run is done complete together, in one
transaction with their events; any other end marks the job `stopping`, and its finisher stops
its live runs, releases every allocation once, and publishes the outcome in the same transaction
as the terminal status (so a job never gets two terminal events).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Sequence

from opentelemetry.trace import Status, StatusCode

from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.aio import cancel_all
from services.scheduler.domain import Job
from services.scheduler.engine.context import Adapters, LiveRuns, Wake, record_run_end
from services.scheduler.engine.telemetry import count_end, describe_outcome, job_span, start_job_span
from services.scheduler.engine.watcher import stop_attempt
from services.scheduler.records import JobRecord, RunRecord

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self._finishers: dict[str, asyncio.Task] = {}
        self._helpers: set[asyncio.Task] = set()

    def tasks(self) -> list[asyncio.Task]:
        """The finishers and background stops in progress (cancelled when the leader stands down)."""
        return [*self._finishers.values(), *self._helpers]

    def forget(self) -> None:
        self._finishers.clear()

    async def advance(self) -> float | None:
        """Decide what ends; returns the next deadline of a job that goes on."""
        async with self.io.pool.acquire() as conn:
            jobs = await store.jobs_in(conn, ("running", "stopping"))
            runs = await store.runs_of(conn, [j.job_id for j in jobs])
        now = time.time()
        next_deadline: float | None = None
        done: list[tuple[JobRecord, Sequence[RunRecord]]] = []
        for job in jobs:
            job_id = job.job_id
            if job.status == "stopping":
                self._ensure_finisher(job_id)
                continue
            job_runs = runs[job_id]
            states = [domain.RunState.of(r) for r in job_runs]
            deadline = job.deadline.timestamp() if job.deadline else None
            general = job.kind == "looptest" and job.mode == "general"
            failed = [] if general else [r for r in job_runs if r.status == "failed"]
            # what already happened wins over the deadline: success, then the first failure
            if (domain.all_done(states) if general else domain.all_succeeded(states)):
                done.append((job, job_runs))
            elif failed:
                first = min(failed, key=lambda r: r.finished_at or datetime.max.replace(tzinfo=timezone.utc))
                await self.end(job, "failed", stage="run", reason=first.reason, component_id=first.component_id)
            elif deadline is not None and deadline <= now:
                await self.end(job, "failed", stage="timeout", reason=domain.timeout_reason(job.max_runtime_s))
            else:
                if general:
                    await self._advance_rounds(job, job_runs)
                if deadline is not None:
                    next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
        if done:
            await self.complete(done)
        return next_deadline

    async def complete(self, done: Sequence[tuple[JobRecord, Sequence[RunRecord]]]) -> None:
        """Jobs whose every run is done reach `completed` together: one unit of work for all of a
        round's completions, each with its terminal event in its own trace. Nothing is live, so
        there is nothing to compensate (each run's watcher released its allocation as it ended)."""
        spans = {job.job_id: start_job_span(f"finish {job.kind}", job) for job, _ in done}
        finished: list[JobRecord] | None = None  # once committed
        try:
            uow = self.io.uow()
            async with uow:
                types = await uow.jobs.component_types(_tested(done))
                jobs = []
                for record, runs in done:
                    job = uow.in_span(Job(record), spans[record.job_id])
                    job.complete(runs, types)
                    jobs.append(job)
                completed = await uow.jobs.complete(jobs)  # a job a cancel got to first is left to its finisher
                await uow.commit()
            finished = [job.state for job in completed]
        finally:
            outcomes = {job.job_id: job for job in finished or []}
            for job_id, span in spans.items():
                if finished is None:  # rolled back: the next iteration completes it
                    span.set_status(Status(StatusCode.ERROR, "the completion was not recorded"))
                elif job_id in outcomes:
                    describe_outcome(span, outcomes[job_id])
                else:  # stopping meanwhile (a cancel came first): its finisher publishes the outcome
                    span.set_attribute("avatar.outcome", "already finished")
                span.end()
        for job in finished:
            count_end(job)
            log.info("job %s is %s", job.job_id, job.status)

    async def _advance_rounds(self, job: JobRecord, runs: Sequence[RunRecord]) -> None:
        """A general loop test records a failed round and goes on with the next one."""
        failed_rounds = {r.round for r in runs if r.status == "failed"}
        for round_ in failed_rounds:
            live = [r for r in runs if r.round == round_ and r.status in domain.RUN_LIVE
                    and r.run_id not in self.live.stop_requested]
            if live:  # stopped in the background: the loop does not wait for them
                self._background(self.stop_runs(job, live), f"stop-round-{job.job_id}-{round_}")
            if any(r.round == round_ and r.status == "pending" for r in runs):
                async with self.io.uow() as uow:
                    await uow.jobs.skip_round(job.job_id, round_, "an earlier component failed")
                    await uow.commit()

    async def end(self, record: JobRecord, outcome: str, *, stage: str | None = None, reason: str | None = None,
                  component_id: str | None = None) -> None:
        """The job ends with `outcome`: recorded (one statement) before its finisher compensates."""
        job = Job(record)
        job.begin_stopping(outcome, stage=stage, reason=reason, component_id=component_id)
        uow = self.io.uow()
        async with uow.statement():
            applied = await uow.commit_guarded(uow.jobs.stopping(job))
        if applied:
            log.info("job %s ends %s%s", job.job_id, outcome, f" ({stage}: {reason})" if reason else "")
            self._ensure_finisher(job.job_id)

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
        skip what never ran, then the terminal status and its event in one unit of work."""
        io = self.io
        try:
            async with io.pool.acquire() as conn:
                runs = (await store.runs_of(conn, [job_id]))[job_id]
                head = await store.get_job(conn, job_id)
            if head is None:
                return
            with job_span(f"finish {head.kind}", head) as span:
                await self.stop_runs(head, [r for r in runs if r.status in domain.RUN_LIVE])
                for allocation in await io.allocator.allocations(workload_id=job_id):
                    if await io.allocator.release(allocation.allocation_id):
                        m.RELEASED.labels("compensation").inc()
                uow = io.uow()
                async with uow:
                    job = uow.in_span(Job(head), span)
                    finished = job.status == "stopping"
                    if finished:
                        runs = await uow.jobs.skip_pending(job)
                        job.finish(runs, await uow.jobs.component_types(_tested([(head, runs)])))
                        # the guard locks the row (serialised with a cancel); it refuses when another
                        # finisher got there first, and the skips roll back with it
                        finished = await uow.jobs.finish(job)
                    if not finished:
                        span.set_attribute("avatar.outcome", "already finished")
                        return
                    await uow.commit()
                describe_outcome(span, job.state)
                await io.queue.remove(job_id)
            count_end(job.state)
            log.info("job %s is %s", job_id, job.status)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("finishing job %s failed; the loop will try again", job_id)
            await asyncio.sleep(1.0)
        finally:
            if self._finishers.get(job_id) is asyncio.current_task():
                self._finishers.pop(job_id, None)
            self.wake()

    async def stop_runs(self, job: JobRecord, live: Sequence[RunRecord]) -> None:
        """Stop the job's live runs and wait until each is recorded `stopped` (or ended on its own)."""
        if not live:
            return
        io = self.io
        grace = io.settings.scheduler_stop_grace_seconds
        ids = [run.run_id for run in live]
        self.live.stop_requested.update(ids)
        # a run being launched right now: its launcher sees the stop request and stops it
        deadline = time.monotonic() + 30
        while any(i in self.live.starting for i in ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        watched = [self.live.active[i] for i in ids if i in self.live.active]
        await asyncio.gather(*(io.runner.stop(a.handle, grace) for a in watched), return_exceptions=True)
        tasks = [a.task for a in watched if a.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace + 15)
        async with io.pool.acquire() as conn:
            current = await store.runs_by_ids(conn, ids)
        for run_id in ids:
            run = current.get(run_id)
            if run is None or run.status not in domain.RUN_LIVE:
                continue
            active = self.live.active.get(run_id)
            if active is not None and active.task is not None and not active.task.done():
                await cancel_all([active.task])  # a run that would not stop: stop watching, record it below
            await stop_attempt(io.runner, run.allocation_id, 0)
            await record_run_end(io, job, run, "stopped", reason="stopped")
            if run.allocation_id and await io.allocator.release(run.allocation_id):
                m.RELEASED.labels("compensation").inc()
            self.live.allocations.discard(run.allocation_id)


def _tested(ended: Sequence[tuple[JobRecord, Sequence[RunRecord]]]) -> list[str]:
    """The components whose library type the ended jobs' terminal events need: only a loop test's
    report uses them (its rewards), so workloads cost no query."""
    return sorted({r.component_id for job, runs in ended if job.kind == "looptest" for r in runs})
