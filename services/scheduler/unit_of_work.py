"""The scheduler's unit of work: the jobs repository bound to the unit's connection.

The repository loads `Job` aggregates and persists their transitions with the guarded SQL of
store.py: a guard that did not hold (another writer got there first) drops the events the
transition recorded, so they never reach the outbox.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

import asyncpg
from opentelemetry.trace import Span

from contracts.events import ComponentSnapshot
from services.kit.telemetry import inject_headers
from services.kit.unit_of_work import Statement, UnitOfWork
from services.scheduler import store
from services.scheduler.core.allocator import Allocation
from services.scheduler.domain import Job
from services.scheduler.records import JobRecord, RunRecord


class JobRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # ------------------------------------------------------------ loading

    async def get(self, job_id: str, *, lock: bool = False) -> Job | None:
        record = await store.get_job(self.conn, job_id, lock=lock)
        return None if record is None else Job(record)

    async def looptests_of(self, workload_id: str) -> list[Job]:
        return [Job(record) for record in await store.looptests_of(self.conn, workload_id)]

    async def lock(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs, their rows locked until the unit ends (in id order: two lockers never deadlock)."""
        return {job_id: Job(record) for job_id, record in (await store.lock_jobs(self.conn, job_ids)).items()}

    async def runs_of(self, job_ids: Sequence[str]) -> dict[str, list[RunRecord]]:
        return await store.runs_of(self.conn, job_ids)

    async def component_types(self, component_ids: Sequence[str]) -> dict[str, str]:
        return await store.component_types(self.conn, component_ids) if component_ids else {}

    # ------------------------------------------------------------ persisting transitions

    async def add(self, job: Job) -> bool:
        """A new job with its planned runs; False (its events dropped) when the job id is known."""
        if not await store.insert_job(self.conn, job.state):
            job.events.clear()
            return False
        if job.planned:
            await store.insert_runs(self.conn, job.job_id, job.planned)
        return True

    async def approve_after_cancel(self, job: Job) -> bool:
        return self._applied(job, await store.fill_tombstone(self.conn, job.state))

    async def cancel_waiting(self, job: Job) -> bool:
        return self._refreshed(job, await store.cancel_waiting(self.conn, job.job_id, job.state.cancelled_by or ""))

    async def begin_stopping(self, job: Job) -> bool:
        return self._refreshed(job, await store.begin_stopping(self.conn, job.state))

    def stopping(self, job: Job) -> Statement:
        """The same write, for a unit that commits it in one statement (`commit_guarded`)."""
        return Statement(store.BEGIN_STOPPING, store.begin_stopping_args(job.state))

    async def finish(self, job: Job) -> bool:
        return self._refreshed(job, await store.finalize(self.conn, job.job_id))

    async def skip_pending(self, job: Job) -> list[RunRecord]:
        """Skip what never started (the job ends); all its runs as they now are."""
        return await store.skip_pending_runs(self.conn, job.job_id, reason=job.state.failure_reason)

    async def skip_round(self, job_id: str, round_: int | None, reason: str) -> int:
        return await store.skip_runs(self.conn, job_id, round_=round_, reason=reason)

    async def complete(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs that went running -> completed; the others (a cancel came first) drop their events."""
        rows = {record.job_id: record for record in await store.complete(self.conn, [j.job_id for j in jobs])}
        return [job for job in jobs if self._refreshed(job, rows.get(job.job_id))]

    async def start(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs that went waiting -> running (with the deadline each carries)."""
        if not jobs:
            return []
        rows = {record.job_id: record for record in await store.mark_started(
            self.conn, {job.job_id: job.state.deadline for job in jobs})}
        return [job for job in jobs if self._refreshed(job, rows.get(job.job_id))]

    async def record_allocations(self, placements: Mapping[str, Allocation]) -> dict[str, RunRecord]:
        return await store.mark_runs_allocated(self.conn, placements)

    def run_end(self, run: RunRecord) -> Statement:
        """The end a run carries, written once (`commit_guarded`)."""
        return Statement(store.FINISH_RUN, store.finish_run_args(run))

    async def end_run(self, run: RunRecord) -> bool:
        return await store.finish_run(self.conn, run) is not None

    @staticmethod
    def _applied(job: Job, applied: bool) -> bool:
        if not applied:
            job.events.clear()
        return applied

    @classmethod
    def _refreshed(cls, job: Job, record: JobRecord | None) -> bool:
        if record is not None:
            job.refresh(record)
        return cls._applied(job, record is not None)


class SchedulerTables:
    """The scheduler's other state changes: the queue's ranks, the library read model, node overrides."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def set_queue_positions(self, positions: Iterable[tuple[str, str, float]]) -> None:
        for job_id, priority, rank in positions:
            await store.set_queue_position(self.conn, job_id, priority, rank)

    async def record_component(self, component: ComponentSnapshot, published_at: datetime) -> None:
        await store.record_component(self.conn, component, published_at)

    async def set_node_override(self, name: str, status: str, set_by: str) -> None:
        await store.set_node_override(self.conn, name, status, set_by)


class SchedulerUnitOfWork(UnitOfWork):
    jobs: JobRepository
    tables: SchedulerTables

    def bind(self, conn: asyncpg.Connection) -> None:
        self.jobs = JobRepository(conn)
        self.tables = SchedulerTables(conn)

    def wake_engine(self) -> None:
        """Wake the leading replica's engine once this unit has committed."""
        self.wake(store.WAKE_CHANNEL)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def in_span(self, job: Job, span: Span) -> Job:
        """Track a job whose events are children of `span` (a scheduling round works on many jobs at
        once, none of their spans current, each event in its own job's trace)."""
        return self.track(job, trace=inject_headers(span=span))
