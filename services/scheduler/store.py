"""All of the scheduler's SQL (asyncpg, parameterised). PostgreSQL is the durable record."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import asyncpg

from contracts.events import ComponentSnapshot
from services.scheduler.core.allocator import Allocation
from services.scheduler.domain import PlannedRun
from services.scheduler.records import JobRecord, RunRecord


class LibraryEntry(NamedTuple):
    """One library version as the scheduler heard of it: what a component of that version runs."""

    version: str
    command: tuple[str, ...]


WAKE_CHANNEL = "scheduler_wake"  # the leading replica's engine listens (services/kit/wakeups.py wakes it)


def _job(row: asyncpg.Record | None) -> JobRecord | None:
    return None if row is None else JobRecord.of(row)


def _run(row: asyncpg.Record | None) -> RunRecord | None:
    return None if row is None else RunRecord.of(row)


# ---------------------------------------------------------------- jobs

async def insert_job(conn: asyncpg.Connection, job: JobRecord) -> bool:
    """Record a new job; False (and nothing changed) when the job id is known."""
    created = await conn.fetchval(
        """INSERT INTO jobs (job_id, kind, workload_id, test_run_id, mode, rounds, episodes, workload, priority,
                             queue_rank, requester, name, status, submitted_at, max_runtime_s, trace_headers,
                             cancelled_by, outcome, failure_stage, failure_reason, finished_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                   CASE WHEN $13 IN ('completed', 'failed', 'cancelled') THEN now() END)
           ON CONFLICT DO NOTHING RETURNING true""",
        job.job_id, job.kind, job.workload_id, job.test_run_id, job.mode, job.rounds, job.episodes, job.workload,
        job.priority, job.queue_rank, job.requester, job.name, job.status, job.submitted_at, job.max_runtime_s,
        job.trace_headers or {}, job.cancelled_by, job.outcome, job.failure_stage, job.failure_reason)
    return bool(created)


async def fill_tombstone(conn: asyncpg.Connection, job: JobRecord) -> bool:
    """A cancel arrived before the approval: keep the cancellation, record what was approved."""
    return bool(await conn.fetchval(
        """UPDATE jobs SET workload = $2, priority = $3, requester = $4, name = $5, submitted_at = $6,
                  max_runtime_s = $7, updated_at = now()
           WHERE job_id = $1 AND workload IS NULL RETURNING true""",
        job.job_id, job.workload, job.priority, job.requester, job.name, job.submitted_at, job.max_runtime_s))


async def get_job(conn: asyncpg.Connection, job_id: str, *, lock: bool = False) -> JobRecord | None:
    return _job(await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1" + (" FOR UPDATE" if lock else ""), job_id))


async def jobs_by_ids(conn: asyncpg.Connection, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    rows = await conn.fetch("SELECT * FROM jobs WHERE job_id = ANY($1::text[])", list(job_ids))
    return {row["job_id"]: JobRecord.of(row) for row in rows}


async def jobs_in(conn: asyncpg.Connection, statuses: Iterable[str]) -> list[JobRecord]:
    return [JobRecord.of(row) for row in await conn.fetch(
        "SELECT * FROM jobs WHERE status = ANY($1::text[]) ORDER BY started_at NULLS LAST, queued_at, job_id",
        list(statuses))]


async def looptests_of(conn: asyncpg.Connection, workload_id: str) -> list[JobRecord]:
    return [JobRecord.of(row) for row in await conn.fetch(
        "SELECT * FROM jobs WHERE workload_id = $1 AND kind = 'looptest' ORDER BY queued_at", workload_id)]


async def list_jobs(conn: asyncpg.Connection, *, status: str | None, kind: str | None, limit: int,
                    offset: int) -> tuple[list[JobRecord], int]:
    where = "workload IS NOT NULL AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)"
    rows = await conn.fetch(f"SELECT * FROM jobs WHERE {where} ORDER BY queued_at DESC, job_id LIMIT $3 OFFSET $4",
                            status, kind, limit, offset)
    total = await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}", status, kind)
    return [JobRecord.of(row) for row in rows], int(total)


async def unsynced_jobs(conn: asyncpg.Connection) -> list[JobRecord]:
    return [JobRecord.of(row) for row in await conn.fetch("SELECT * FROM jobs WHERE NOT redis_synced ORDER BY queued_at")]


async def mark_synced(conn: asyncpg.Connection, jobs: Sequence[JobRecord]) -> None:
    """The jobs as read are mirrored; a row changed after we read it stays unsynced and is looked at again."""
    await conn.execute(
        "UPDATE jobs SET redis_synced = true FROM unnest($1::text[], $2::timestamptz[]) AS s(id, ts)"
        " WHERE jobs.job_id = s.id AND jobs.updated_at = s.ts",
        [job.job_id for job in jobs], [job.updated_at for job in jobs])


async def mark_all_unsynced(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE jobs SET redis_synced = false WHERE status IN ('waiting', 'running', 'stopping')")


async def set_queue_position(conn: asyncpg.Connection, job_id: str, priority: str, rank: float) -> JobRecord | None:
    return _job(await conn.fetchrow(
        """UPDATE jobs SET priority = $2, queue_rank = $3, updated_at = now()
           WHERE job_id = $1 AND status = 'waiting' RETURNING *""", job_id, priority, rank))


async def lock_jobs(conn: asyncpg.Connection, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    """The jobs' rows, locked until the transaction ends (in id order, so two lockers never deadlock)."""
    rows = await conn.fetch("SELECT * FROM jobs WHERE job_id = ANY($1::text[]) ORDER BY job_id FOR UPDATE",
                            list(job_ids))
    return {row["job_id"]: JobRecord.of(row) for row in rows}


async def mark_started(conn: asyncpg.Connection, deadlines: Mapping[str, datetime]) -> list[JobRecord]:
    """waiting -> running on each job's first component start (with its deadline); a job that was
    already running is not returned."""
    return [JobRecord.of(row) for row in await conn.fetch(
        """UPDATE jobs SET status = 'running', started_at = now(), deadline = s.deadline, redis_synced = false,
                  updated_at = now()
           FROM unnest($1::text[], $2::timestamptz[]) AS s(job_id, deadline)
           WHERE jobs.job_id = s.job_id AND jobs.status = 'waiting' RETURNING jobs.*""",
        list(deadlines), list(deadlines.values()))]


# Record the job's outcome before compensating, so a crash mid-way still finishes it.
BEGIN_STOPPING = """UPDATE jobs SET status = 'stopping', outcome = $2, failure_stage = $3, failure_reason = $4,
                           failure_component = $5, cancelled_by = $6, was_running = (status = 'running'),
                           redis_synced = false, updated_at = now()
                    WHERE job_id = $1 AND status IN ('waiting', 'running') RETURNING *"""


def begin_stopping_args(job: JobRecord) -> tuple[Any, ...]:
    return (job.job_id, job.outcome, job.failure_stage, job.failure_reason, job.failure_component, job.cancelled_by)


async def begin_stopping(conn: asyncpg.Connection, job: JobRecord) -> JobRecord | None:
    """waiting/running -> stopping with the outcome `job` carries."""
    return _job(await conn.fetchrow(BEGIN_STOPPING, *begin_stopping_args(job)))


async def finalize(conn: asyncpg.Connection, job_id: str) -> JobRecord | None:
    """stopping -> its outcome, once: the caller records the terminal event in the same transaction."""
    return _job(await conn.fetchrow(
        """UPDATE jobs SET status = outcome, finished_at = now(), redis_synced = false, updated_at = now()
           WHERE job_id = $1 AND status = 'stopping' RETURNING *""", job_id))


async def complete(conn: asyncpg.Connection, job_ids: Sequence[str]) -> list[JobRecord]:
    """running -> completed for jobs whose every run is done: nothing is live, so nothing to
    compensate, and the outcome is final at once (no `stopping`). Jobs that stopped meanwhile
    (a cancel got there first) are left to their finisher."""
    return [JobRecord.of(row) for row in await conn.fetch(
        """UPDATE jobs SET status = 'completed', outcome = 'completed', failure_stage = NULL,
                  failure_reason = NULL, failure_component = NULL, cancelled_by = NULL, was_running = true,
                  finished_at = now(), redis_synced = false, updated_at = now()
           WHERE job_id = ANY($1::text[]) AND status = 'running' RETURNING *""", list(job_ids))]


async def cancel_waiting(conn: asyncpg.Connection, job_id: str, cancelled_by: str) -> JobRecord | None:
    return _job(await conn.fetchrow(
        """UPDATE jobs SET status = 'cancelled', outcome = 'cancelled', cancelled_by = $2, finished_at = now(),
                  failure_stage = 'cancel', was_running = false, redis_synced = false, updated_at = now()
           WHERE job_id = $1 AND status = 'waiting' RETURNING *""", job_id, cancelled_by))


# ---------------------------------------------------------------- runs

async def insert_runs(conn: asyncpg.Connection, job_id: str, planned: Sequence[PlannedRun]) -> None:
    await conn.executemany(
        """INSERT INTO runs (run_id, job_id, round, seq, task_id, component_id, name, output_prefix)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [(p.run_id, job_id, p.round, p.seq, p.task_id, p.component_id, p.name, p.output_prefix) for p in planned])


async def runs_of(conn: asyncpg.Connection, job_ids: Sequence[str]) -> dict[str, list[RunRecord]]:
    rows = await conn.fetch("SELECT * FROM runs WHERE job_id = ANY($1::text[]) ORDER BY job_id, round, seq",
                            list(job_ids))
    out: dict[str, list[RunRecord]] = {job_id: [] for job_id in job_ids}
    for row in rows:
        out[row["job_id"]].append(RunRecord.of(row))
    return out


async def get_run(conn: asyncpg.Connection, run_id: str) -> RunRecord | None:
    return _run(await conn.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id))


async def runs_by_ids(conn: asyncpg.Connection, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    rows = await conn.fetch("SELECT * FROM runs WHERE run_id = ANY($1::text[])", list(run_ids))
    return {row["run_id"]: RunRecord.of(row) for row in rows}


async def live_runs(conn: asyncpg.Connection) -> list[RunRecord]:
    return [RunRecord.of(row) for row in await conn.fetch(
        "SELECT * FROM runs WHERE status IN ('starting', 'running') ORDER BY started_at NULLS LAST")]


async def live_allocations(conn: asyncpg.Connection) -> list[tuple[RunRecord, datetime | None]]:
    """Every live run holding an allocation, with its job's deadline: what Redis must hold."""
    rows = await conn.fetch("SELECT r.*, j.deadline FROM runs r JOIN jobs j USING (job_id)"
                            " WHERE r.status IN ('starting', 'running') AND r.allocation_id IS NOT NULL"
                            " AND r.node IS NOT NULL")
    return [(RunRecord.of(row), row["deadline"]) for row in rows]


async def output_prefixes(conn: asyncpg.Connection, run: RunRecord, component_ids: Sequence[str]) -> dict[str, str]:
    """component id -> output prefix of the given components of the run's task and round (its inputs)."""
    rows = await conn.fetch(
        "SELECT component_id, output_prefix FROM runs WHERE job_id = $1 AND round = $2"
        " AND task_id = $3 AND component_id = ANY($4::text[])",
        run.job_id, run.round, run.task_id, list(component_ids))
    return {row["component_id"]: row["output_prefix"] for row in rows}


async def claim_runs(conn: asyncpg.Connection, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    """pending -> starting, only while the run's job may still run; one loop iteration wins each."""
    rows = await conn.fetch(
        """UPDATE runs SET status = 'starting', attempt = attempt + 1,
                  allocation_id = run_id || '#' || (attempt + 1)::text
           WHERE run_id = ANY($1::text[]) AND status = 'pending'
             AND EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = runs.job_id AND j.status IN ('waiting', 'running'))
           RETURNING *""", list(run_ids))
    return {row["run_id"]: RunRecord.of(row) for row in rows}


async def unclaim_runs(conn: asyncpg.Connection, run_ids: Sequence[str]) -> None:
    await conn.execute("UPDATE runs SET status = 'pending', allocation_id = NULL"
                       " WHERE run_id = ANY($1::text[]) AND status = 'starting'", list(run_ids))


async def mark_runs_allocated(conn: asyncpg.Connection, placements: Mapping[str, Allocation]) -> dict[str, RunRecord]:
    """Record where each claimed run (by run id) was allocated: a fresh attempt, so the last
    attempt's outcome is cleared."""
    allocations = list(placements.values())
    rows = await conn.fetch(
        """UPDATE runs SET node = p.node, gpu_type = p.gpu_type, gpu_indices = p.gpu_indices::int[],
                  memory_bytes = p.memory_bytes, cpu_millis = p.cpu_millis, started_at = now(),
                  finished_at = NULL, exit_code = NULL, last_line = NULL, reason = NULL, metrics = NULL,
                  log_url = NULL
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[])
                AS p(run_id, node, gpu_type, gpu_indices, memory_bytes, cpu_millis)
           WHERE runs.run_id = p.run_id AND runs.status = 'starting' RETURNING runs.*""",
        list(placements), [a.node for a in allocations], [a.gpu_type for a in allocations],
        # unnest takes no ragged int[][]: each run's indices travel as the text of an int[]
        ["{" + ",".join(str(int(i)) for i in a.gpu_indices) + "}" for a in allocations],
        [a.memory_bytes for a in allocations], [a.cpu_millis for a in allocations])
    return {row["run_id"]: RunRecord.of(row) for row in rows}


async def mark_runs_running(conn: asyncpg.Connection, runner_refs: Mapping[str, str]) -> None:
    """starting -> running with the runner's reference; a run that already ended stays ended."""
    await conn.execute(
        """UPDATE runs SET status = 'running', runner_ref = s.runner_ref
           FROM unnest($1::text[], $2::text[]) AS s(run_id, runner_ref)
           WHERE runs.run_id = s.run_id AND runs.status = 'starting'""",
        list(runner_refs), list(runner_refs.values()))


# A live run ends, once (a second report of the same end changes nothing).
FINISH_RUN = """UPDATE runs SET status = $2, exit_code = $3, last_line = $4, reason = $5, log_url = $6, metrics = $7,
                       finished_at = now()
                WHERE run_id = $1 AND status IN ('starting', 'running') RETURNING *"""


def finish_run_args(run: RunRecord) -> tuple[Any, ...]:
    return (run.run_id, run.status, run.exit_code, run.last_line, run.reason, run.log_url, run.metrics)


async def finish_run(conn: asyncpg.Connection, run: RunRecord) -> RunRecord | None:
    """Record the end `run` carries (its status, exit code, last line, reason, log, metrics)."""
    return _run(await conn.fetchrow(FINISH_RUN, *finish_run_args(run)))


async def reset_run(conn: asyncpg.Connection, run_id: str, reason: str, *, attempt: str | None = None) -> bool:
    """A run that died (its process or node gone) goes back to pending, to run again, with why on it (after
    the reasons of its earlier deaths);
    components are idempotent. With `attempt`, only if that attempt is still the run's."""
    return bool(await conn.fetchval(
        """UPDATE runs SET status = 'pending', allocation_id = NULL, node = NULL, gpu_type = NULL,
                  gpu_indices = '{}', memory_bytes = 0, cpu_millis = 0, runner_ref = NULL, started_at = NULL,
                  rerun_reason = left(concat_ws('; ', rerun_reason, $2::text), 2000)
           WHERE run_id = $1 AND status IN ('starting', 'running')
             AND ($3::text IS NULL OR allocation_id = $3) RETURNING true""", run_id, reason[:500], attempt))


# what skipping means: the job's runs that never started (of one round, with $2), with the reason
_SKIP_RUNS = """UPDATE runs SET status = 'skipped', reason = COALESCE(reason, $3), finished_at = now()
                WHERE job_id = $1 AND status = 'pending' AND ($2::int IS NULL OR round = $2)"""


async def skip_runs(conn: asyncpg.Connection, job_id: str, *, round_: int | None = None,
                    reason: str | None = None) -> int:
    result = await conn.execute(_SKIP_RUNS, job_id, round_, reason)
    return int(result.split()[-1])


async def skip_pending_runs(conn: asyncpg.Connection, job_id: str, *, reason: str | None) -> list[RunRecord]:
    """Skip the job's runs that never started; returns all its runs as they now are (one round trip)."""
    return [RunRecord.of(row) for row in await conn.fetch(
        f"""WITH skipped AS ({_SKIP_RUNS} RETURNING *)
            SELECT * FROM skipped
            UNION ALL SELECT * FROM runs WHERE job_id = $1 AND run_id NOT IN (SELECT run_id FROM skipped)
            ORDER BY round, seq""", job_id, None, reason)]


async def allocation_owners(conn: asyncpg.Connection, allocation_ids: Sequence[str]) -> dict[str, RunRecord]:
    rows = await conn.fetch("SELECT * FROM runs WHERE allocation_id = ANY($1::text[])", list(allocation_ids))
    return {row["allocation_id"]: RunRecord.of(row) for row in rows}


# ---------------------------------------------------------------- library read model

async def record_component(conn: asyncpg.Connection, component: ComponentSnapshot, published_at: datetime) -> None:
    """Keep this version beside the others heard of; a version is never changed, so hearing it again
    (a redelivery) changes nothing."""
    await conn.execute(
        """INSERT INTO library_components (component_id, version, name, type, image_registry, image_tag, command,
                                           published_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (component_id, version) DO NOTHING""",
        component.component_id, component.version, component.name, component.type, component.image.registry,
        component.image.tag, list(component.command), published_at)


async def library_entry(conn: asyncpg.Connection, component_id: str, library_version: str | None, registry: str,
                        tag: str) -> LibraryEntry | None:
    """CL-05: the library version a spec component names, exactly (None: never heard of). A component
    of a spec that names no version (written before placements recorded it) gets the latest version of
    its id with the spec's image (what it most likely placed), else the latest of its id; a spec component
    the library does not know by id, the latest entry with its image, else its repository (None: none)."""
    if library_version is not None:
        row = await conn.fetchrow("SELECT version, command FROM library_components"
                                  " WHERE component_id = $1 AND version = $2", component_id, library_version)
    else:
        row = await conn.fetchrow(
            """SELECT version, command FROM library_components
               WHERE component_id = $1 OR image_registry = $2
               ORDER BY (component_id = $1) DESC, (image_registry = $2 AND image_tag = $3) DESC,
                        published_at DESC LIMIT 1""",
            component_id, registry, tag)
    return None if row is None else LibraryEntry(row["version"], tuple(row["command"]))


async def component_types(conn: asyncpg.Connection, component_ids: Sequence[str]) -> dict[str, str]:
    """Each component's type as its latest version has it."""
    rows = await conn.fetch("SELECT DISTINCT ON (component_id) component_id, type FROM library_components"
                            " WHERE component_id = ANY($1::text[]) ORDER BY component_id, published_at DESC",
                            list(component_ids))
    return {row["component_id"]: row["type"] for row in rows}


# ---------------------------------------------------------------- nodes

async def set_node_override(conn: asyncpg.Connection, name: str, status: str, set_by: str) -> None:
    await conn.execute(
        """INSERT INTO node_overrides (name, status, set_by) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET status = $2, set_by = $3, set_at = now()""", name, status, set_by)


async def node_overrides(conn: asyncpg.Connection) -> dict[str, str]:
    return {row["name"]: row["status"] for row in await conn.fetch("SELECT name, status FROM node_overrides")}
