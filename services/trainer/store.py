"""All of the trainer's SQL: the ready-apps read model, training requests and their timelines."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import asyncpg

from contracts.spec import AppSpec
from contracts.workload import Workload
from services.kit.paging import contains_pattern
from services.kit.unit_of_work import Statement
from services.trainer.domain import TimelineEntry

Conn = asyncpg.Connection | asyncpg.Pool


async def record_spec(conn: asyncpg.Connection, spec: AppSpec) -> None:
    """Keep every spec version; the newest by creation time is the App's latest (re-delivery safe)."""
    await conn.execute(
        "INSERT INTO apps (app_id, name, latest_version, latest_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (app_id) DO UPDATE SET name = EXCLUDED.name, latest_version = EXCLUDED.latest_version,"
        " latest_at = EXCLUDED.latest_at, updated_at = now()"
        " WHERE (apps.latest_at, apps.latest_version) < (EXCLUDED.latest_at, EXCLUDED.latest_version)",
        spec.app_id, spec.name, spec.version, spec.created_at)
    await conn.execute(
        "INSERT INTO app_specs (app_id, version, spec, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (app_id, version) DO NOTHING",
        spec.app_id, spec.version, spec.to_wire(), spec.created_at)


async def record_deleted(conn: asyncpg.Connection, app_id: str) -> None:
    await conn.execute("UPDATE apps SET deleted_at = coalesce(deleted_at, now()), updated_at = now()"
                       " WHERE app_id = $1", app_id)


async def list_apps(conn: Conn, *, query: str | None, limit: int,
                    offset: int) -> tuple[list[asyncpg.Record], int]:
    pattern = contains_pattern(query) if query else None
    where = "a.deleted_at IS NULL AND ($1::text IS NULL OR a.name ILIKE $1 OR a.app_id ILIKE $1)"
    rows = await conn.fetch(
        "SELECT a.app_id, a.latest_version, s.spec, (SELECT count(*) FROM app_specs v WHERE v.app_id = a.app_id)"
        " AS versions FROM apps a JOIN app_specs s ON s.app_id = a.app_id AND s.version = a.latest_version"
        f" WHERE {where} ORDER BY a.updated_at DESC, a.app_id LIMIT $2 OFFSET $3", pattern, limit, offset)
    total = await conn.fetchval(f"SELECT count(*) FROM apps a WHERE {where}", pattern)
    return rows, total


async def app_versions(conn: Conn, app_id: str) -> list[str]:
    rows = await conn.fetch("SELECT version FROM app_specs WHERE app_id = $1 ORDER BY created_at, version", app_id)
    return [row["version"] for row in rows]


async def find_spec(conn: Conn, app_id: str, version: str | None = None) -> AppSpec | None:
    """The given version of a ready (not deleted) App's spec, or its latest one."""
    row = await conn.fetchrow(
        "SELECT s.spec FROM app_specs s JOIN apps a ON a.app_id = s.app_id"
        " WHERE s.app_id = $1 AND s.version = coalesce($2, a.latest_version) AND a.deleted_at IS NULL",
        app_id, version)
    return None if row is None else AppSpec.model_validate(row["spec"])


_INSERTED_COLUMNS = "workload_id, app_id, spec_version, name, requester, priority, submitted_at, source, workload"


async def insert_request(conn: asyncpg.Connection, workload: Workload, *, source: str) -> bool:
    """Record a request once; returns False when it was already known."""
    inserted = await conn.fetchval(
        f"INSERT INTO training_requests ({_INSERTED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (workload_id) DO NOTHING RETURNING true",
        workload.workload_id, workload.app_id, workload.spec_version, workload.name, workload.requester,
        workload.priority, workload.submitted_at, source, workload.to_wire())
    return bool(inserted)


def submitted_request(workload: Workload, requested_version: str | None) -> Statement:
    """The insert of a submitted request (guarded, for `UnitOfWork.commit_guarded`), made only while its
    App is still ready and the version asked for (None: the latest) is still the one the workload was
    built from: an App deleted, or a newer version recorded, meanwhile inserts nothing."""
    return Statement(
        f"INSERT INTO training_requests ({_INSERTED_COLUMNS}) SELECT $1::text, $2::text, $3::text, $4::text,"
        " $5::text, $6::text, $7::timestamptz, 'trainer', $8::jsonb FROM apps a"
        " WHERE a.app_id = $2 AND a.deleted_at IS NULL AND coalesce($9::text, a.latest_version) = $3"
        " ON CONFLICT (workload_id) DO NOTHING RETURNING true",
        [workload.workload_id, workload.app_id, workload.spec_version, workload.name, workload.requester,
         workload.priority, workload.submitted_at, workload.to_wire(), requested_version])


_REQUEST_COLUMNS = ("workload_id, app_id, spec_version, name, requester, priority, submitted_at, source, status,"
                    " cancel_requested_by, cancel_requested_at, updated_at")


async def find_request(conn: Conn, workload_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_REQUEST_COLUMNS}, workload FROM training_requests"
                               f" WHERE workload_id = $1{lock}", workload_id)


async def find_requests(conn: Conn, workload_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_REQUEST_COLUMNS}, workload FROM training_requests"
                            " WHERE workload_id = ANY($1::text[])", workload_ids)


async def list_requests(conn: Conn, *, status: str | None, app_id: str | None, requester: str | None,
                        limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    where = ("($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR app_id = $2)"
             " AND ($3::text IS NULL OR requester = $3)")
    rows = await conn.fetch(
        f"SELECT {_REQUEST_COLUMNS}, workload->'resources' AS resources FROM training_requests WHERE {where}"
        " ORDER BY submitted_at DESC, workload_id LIMIT $4 OFFSET $5", status, app_id, requester, limit, offset)
    total = await conn.fetchval(f"SELECT count(*) FROM training_requests WHERE {where}", status, app_id, requester)
    return rows, total


WORKLOAD_LOCK = "trainer.workload"  # the advisory lock namespace of a workload's timeline


async def lock_workload(conn: asyncpg.Connection, workload_id: str) -> None:
    """Serialise everything that touches one workload's timeline for the rest of the transaction
    (the saga event handlers take the same lock with their inbox claim: handlers.LOCKS)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", WORKLOAD_LOCK, workload_id)


@dataclass(frozen=True)
class Appended:
    added: bool  # new to the timeline (False: delivered before)
    folded: bool  # the request's status now includes it (it was the workload's latest event)
    known: bool  # the request exists (an event may come before the request it is about)
    previous: datetime | None  # the workload's latest event time before this one, when folded


async def append(conn: asyncpg.Connection, entries: Sequence[tuple[str, TimelineEntry, dict[str, str]]]
                 ) -> list[Appended]:
    """Add events to their workloads' timelines and, for each that is its workload's latest (the usual
    case), fold it into the request's status by its `transitions` (status → status after it): one round
    trip for all of them, no timeline read. An event older than the latest is not folded: the caller
    re-derives the status (`set_status`).

    Entries are (workload id, entry, transitions), at most one per workload (a workload's events are
    folded in turn, so its second event waits for the first)."""
    rows = await conn.fetch(
        "WITH input AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
        "  $6::text[], $7::text[], $8::text[]) WITH ORDINALITY"
        "  AS i(workload_id, event_id, type, producer, occurred_at, summary, details, transitions, n)),"
        " added AS (INSERT INTO timeline (workload_id, event_id, type, producer, occurred_at, summary, details)"
        "  SELECT workload_id, event_id, type, producer, occurred_at, summary, details::jsonb FROM input ORDER BY n"
        "  ON CONFLICT (event_id) DO NOTHING RETURNING event_id),"
        " request AS (SELECT workload_id, last_event_at FROM training_requests"
        "  WHERE workload_id IN (SELECT workload_id FROM input)),"
        " folded AS (UPDATE training_requests r SET status = coalesce(i.transitions::jsonb ->> r.status, r.status),"
        "  last_event_at = i.occurred_at, updated_at = now()"
        "  FROM input i JOIN added a ON a.event_id = i.event_id"
        "  WHERE r.workload_id = i.workload_id AND (r.last_event_at IS NULL OR r.last_event_at <= i.occurred_at)"
        "  RETURNING i.event_id)"
        " SELECT a.event_id IS NOT NULL AS added, f.event_id IS NOT NULL AS folded,"
        "  q.workload_id IS NOT NULL AS known, q.last_event_at AS previous"
        " FROM input i LEFT JOIN added a ON a.event_id = i.event_id LEFT JOIN folded f ON f.event_id = i.event_id"
        " LEFT JOIN request q ON q.workload_id = i.workload_id ORDER BY i.n",
        [w for w, _, _ in entries], [e.event_id for _, e, _ in entries], [e.type for _, e, _ in entries],
        [e.producer for _, e, _ in entries], [e.occurred_at for _, e, _ in entries],
        [e.summary for _, e, _ in entries], [json.dumps(e.details) for _, e, _ in entries],
        [json.dumps(t) for _, _, t in entries])
    return [Appended(row["added"], row["folded"], row["known"], row["previous"] if row["folded"] else None)
            for row in rows]


async def set_status(conn: asyncpg.Connection, workload_id: str, status: str, last_event_at: datetime | None) -> None:
    """Store the status derived from the whole timeline and the time of its latest event."""
    await conn.execute(
        "UPDATE training_requests SET status = $2, last_event_at = $3, updated_at = now() WHERE workload_id = $1",
        workload_id, status, last_event_at)


async def timeline(conn: Conn, workload_id: str) -> list[TimelineEntry]:
    rows = await conn.fetch(
        "SELECT event_id, type, producer, occurred_at, summary, details FROM timeline WHERE workload_id = $1"
        " ORDER BY occurred_at, seq", workload_id)
    return [TimelineEntry(type=row["type"], producer=row["producer"], occurred_at=row["occurred_at"],
                          summary=row["summary"], details=row["details"], event_id=str(row["event_id"]))
            for row in rows]


async def mark_cancel_requested(conn: asyncpg.Connection, workload_id: str, by: str) -> datetime:
    """Record who asked to cancel; returns when (the transaction's time)."""
    return await conn.fetchval("UPDATE training_requests SET cancel_requested_by = $2, cancel_requested_at = now(),"
                               " updated_at = now() WHERE workload_id = $1 RETURNING cancel_requested_at",
                               workload_id, by)
