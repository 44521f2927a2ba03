"""All of the approval service's SQL: thresholds, approval requests and test runs."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from contracts.workload import LoopTest, Workload
from services.approval.domain import ApprovalRequest, TestRun, Thresholds

Conn = asyncpg.Connection | asyncpg.Pool


async def thresholds(conn: Conn) -> Thresholds:
    row = await conn.fetchrow("SELECT gpu_count, memory FROM thresholds")
    return Thresholds(gpu_count=row["gpu_count"], memory=row["memory"])


async def threshold_row(conn: Conn) -> asyncpg.Record:
    return await conn.fetchrow("SELECT gpu_count, memory, updated_by, updated_at FROM thresholds")


async def set_thresholds(conn: Conn, limits: Thresholds, by: str) -> None:
    await conn.execute("UPDATE thresholds SET gpu_count = $1, memory = $2, updated_by = $3, updated_at = now()",
                       limits.gpu_count, limits.memory, by)


def _loop_test(value: dict | None) -> LoopTest | None:
    return None if value is None else LoopTest.model_validate(value)


def _dump(loop_test: LoopTest | None) -> dict | None:
    return None if loop_test is None else loop_test.model_dump(mode="json", by_alias=True)


def _request(row: asyncpg.Record) -> ApprovalRequest:
    return ApprovalRequest(
        workload=Workload.model_validate(row["workload"]), needs_approval=row["needs_approval"],
        reasons=row["reasons"], loop_test=_loop_test(row["loop_test"]), test_run_id=row["test_run_id"],
        decision=row["status"] if row["status"] in ("approved", "rejected", "cancelled") else None,
        decided_by=row["decided_by"], decided_at=row["decided_at"], comment=row["comment"])


async def insert_request(conn: asyncpg.Connection, request: ApprovalRequest) -> bool:
    """Record a request once per workload; False when it is a duplicate (even under a new event id)."""
    workload = request.workload
    inserted = await conn.fetchval(
        "INSERT INTO approval_requests (workload_id, app_id, spec_version, requester, priority, submitted_at,"
        " workload, needs_approval, reasons, status, loop_test, test_run_id, decided_by, decided_at, comment)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (workload_id) DO NOTHING RETURNING true",
        workload.workload_id, workload.app_id, workload.spec_version, workload.requester, workload.priority,
        workload.submitted_at, workload.to_wire(), request.needs_approval, request.reasons, request.status,
        _dump(request.loop_test), request.test_run_id, request.decided_by, request.decided_at, request.comment)
    return bool(inserted)


async def find_request(conn: Conn, workload_id: str, *, for_update: bool = False) -> ApprovalRequest | None:
    row = await conn.fetchrow("SELECT * FROM approval_requests WHERE workload_id = $1"
                              + (" FOR UPDATE" if for_update else ""), workload_id)
    return None if row is None else _request(row)


async def save_request(conn: asyncpg.Connection, request: ApprovalRequest) -> None:
    await conn.execute(
        "UPDATE approval_requests SET status = $2, loop_test = $3, test_run_id = $4, decided_by = $5,"
        " decided_at = $6, comment = $7, updated_at = now() WHERE workload_id = $1",
        request.workload_id, request.status, _dump(request.loop_test), request.test_run_id, request.decided_by,
        request.decided_at, request.comment)


async def list_requests(conn: Conn, *, status: str | None, app_id: str | None, requester: str | None,
                        limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    where = ("($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR app_id = $2)"
             " AND ($3::text IS NULL OR requester = $3)")
    rows = await conn.fetch(
        "SELECT workload_id, app_id, spec_version, requester, priority, submitted_at, needs_approval, reasons,"
        " status, loop_test, test_run_id, decided_by, decided_at, workload->'resources' AS resources,"
        f" workload->>'name' AS name FROM approval_requests WHERE {where}"
        " ORDER BY submitted_at DESC, workload_id LIMIT $4 OFFSET $5", status, app_id, requester, limit, offset)
    total = await conn.fetchval(f"SELECT count(*) FROM approval_requests WHERE {where}", status, app_id, requester)
    return rows, total


def _test_run(row: asyncpg.Record) -> TestRun:
    return TestRun(
        test_run_id=row["test_run_id"], workload_id=row["workload_id"], app_id=row["app_id"],
        spec_version=row["spec_version"], mode=row["mode"], episodes=row["episodes"],
        requested_by=row["requested_by"], requested_at=row["requested_at"], resources=row["resources"],
        loop_test=LoopTest.model_validate(row["loop_test"]), completed_at=row["completed_at"], raw=row["raw"])


async def insert_test_run(conn: asyncpg.Connection, run: TestRun) -> None:
    await conn.execute(
        "INSERT INTO test_runs (test_run_id, workload_id, app_id, spec_version, mode, episodes, status, requested_by,"
        " requested_at, resources, loop_test) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        run.test_run_id, run.workload_id, run.app_id, run.spec_version, run.mode, run.episodes, run.status,
        run.requested_by, run.requested_at, run.resources, _dump(run.loop_test))


async def find_test_run(conn: Conn, test_run_id: str, *, for_update: bool = False) -> TestRun | None:
    row = await conn.fetchrow("SELECT * FROM test_runs WHERE test_run_id = $1"
                              + (" FOR UPDATE" if for_update else ""), test_run_id)
    return None if row is None else _test_run(row)


async def save_test_run(conn: asyncpg.Connection, run: TestRun) -> None:
    """Only the outcome changes; the resource snapshot is written once and never rewritten."""
    await conn.execute("UPDATE test_runs SET status = $2, loop_test = $3, completed_at = $4, raw = $5"
                       " WHERE test_run_id = $1",
                       run.test_run_id, run.status, _dump(run.loop_test), run.completed_at, run.raw)


async def list_test_runs(conn: Conn, *, app_id: str | None, workload_id: str | None, status: str | None,
                         limit: int, offset: int) -> tuple[list[TestRun], int]:
    where = ("($1::text IS NULL OR app_id = $1) AND ($2::text IS NULL OR workload_id = $2)"
             " AND ($3::text IS NULL OR status = $3)")
    rows = await conn.fetch(f"SELECT * FROM test_runs WHERE {where} ORDER BY requested_at DESC, test_run_id"
                            " LIMIT $4 OFFSET $5", app_id, workload_id, status, limit, offset)
    total = await conn.fetchval(f"SELECT count(*) FROM test_runs WHERE {where}", app_id, workload_id, status)
    return [_test_run(row) for row in rows], total


async def overdue_test_runs(conn: asyncpg.Connection, started_before: datetime, limit: int = 100) -> list[TestRun]:
    """Running tests nobody answered for (each is re-read under a lock before it is failed)."""
    rows = await conn.fetch(
        "SELECT * FROM test_runs WHERE status = 'running' AND requested_at < $1 ORDER BY requested_at LIMIT $2",
        started_before, limit)
    return [_test_run(row) for row in rows]
