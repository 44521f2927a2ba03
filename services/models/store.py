"""All SQL of the models service (asyncpg, parameterised)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.kit.paging import contains_pattern
from services.kit.telemetry import recalled_trace_sql
from services.models.domain import Alias, AliasTarget, Model, NewModel, StagedArtifact, UndoableMove
from services.models.objects import StoredObject

NOTIFY_CHANNEL = "models_pending"  # the store workers listen: a model is pending (services/kit/wakeups.py)
SUMMARY_COLUMNS = ("model_id, workload_id, app_id, app_name, version, name, status, size_bytes, file_count,"
                   " attempts, last_error, created_at, stored_at, workload->>'name' AS workload_name")


# ---------------------------------------------------------------- recording a completed workload

# concurrent deliveries of one workload's completion queue up on this lock (taken with the inbox claim:
# main.py registers the handler with it) instead of racing to insert
WORKLOAD_LOCK = "models.workload"


async def insert_pending(conn: asyncpg.Connection, model: NewModel) -> int | None:
    """Record the model as pending under the App's next version; returns the version, or None when the
    workload already has a model (its completion re-published under a new id).

    One statement, the last of the handler's transaction: the App's `app_versions` row stays locked from
    here to the commit only, so completions of many workloads of one App (a sweep) do not queue behind
    each other's whole transaction. (Two deliveries of one workload's completion do not race here: they
    queue on the workload's lock, taken with the inbox claim.)"""
    return await conn.fetchval(
        "WITH version AS (INSERT INTO app_versions (app_id, last_version)"
        "  SELECT $3, 1 WHERE NOT EXISTS (SELECT 1 FROM models WHERE workload_id = $2)"
        "  ON CONFLICT (app_id) DO UPDATE SET last_version = app_versions.last_version + 1 RETURNING last_version),"
        " added AS (INSERT INTO models (model_id, workload_id, app_id, app_name, version, name, workload, artifacts,"
        "  metrics) SELECT $1::text, $2::text, $3, $4::text, last_version, $5::text || last_version,"
        "  $6::jsonb, $7::jsonb, $8::jsonb FROM version"
        "  RETURNING version)"
        " SELECT version FROM added",
        model.model_id, model.workload_id, model.app_id, model.app_name, model.name_prefix, model.workload,
        [asdict(a) for a in model.artifacts], model.metrics)


# ---------------------------------------------------------------- the store worker

@dataclass(frozen=True)
class Claimed:
    """One pass of the store worker: the models it leased, with what their copy needs, and what waits."""

    models: list[Model]  # with the files an earlier attempt verified and the workload's trace context
    pending: int  # models waiting to be stored, the ones just leased included
    due: float | None  # seconds until the first of the others is due (None: none is)


async def claim_due(pool: asyncpg.Pool, owner: str, lease_seconds: float, limit: int) -> Claimed:
    """Lease up to `limit` pending models that are due and not leased by a live replica, and say how many
    wait and when the next is due: one round trip per pass of the worker.

    The counts are of the statement's snapshot, taken before the lease: a model leased here is due again
    when its new lease runs out, not now."""
    rows = await pool.fetch(
        "WITH claimed AS (UPDATE models SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)"
        "  WHERE model_id IN (SELECT model_id FROM models WHERE status = 'pending' AND next_attempt_at <= now()"
        "   AND (lease_until IS NULL OR lease_until < now())"
        "   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
        "  RETURNING model_id, workload_id, app_id, version, artifacts, attempts),"
        " waiting AS (SELECT count(*) AS pending, extract(epoch FROM min(CASE WHEN c.model_id IS NOT NULL"
        "  THEN now() + make_interval(secs => $2)"
        "  ELSE greatest(m.next_attempt_at, coalesce(m.lease_until, m.next_attempt_at)) END) - now())::float8 AS due"
        "  FROM models m LEFT JOIN claimed c USING (model_id) WHERE m.status = 'pending')"
        " SELECT w.pending, w.due, c.model_id, c.workload_id, c.app_id, c.version, c.artifacts, c.attempts,"
        f"  {recalled_trace_sql('c.workload_id')} AS trace_headers,"
        f"  {VERIFIED_FILES.format(model='c.model_id')}"
        " FROM waiting w LEFT JOIN claimed c ON true", owner, lease_seconds, limit)
    # the clamp at 0 is made here: SQL's greatest(0, …) ignores a NULL, which would turn "nothing
    # pending" (no due time) into "due now"
    due = rows[0]["due"]
    models = [_model(row, trace_headers=row["trace_headers"]) for row in rows if row["model_id"] is not None]
    return Claimed(models, rows[0]["pending"], None if due is None else max(0.0, due))


# the files of a model verified so far ({path: source} pairs) and their bytes
VERIFIED_FILES = ("(SELECT coalesce(array_agg(ARRAY[f.path, f.source]), '{{}}') FROM model_files f"
                  " WHERE f.model_id = {model}) AS verified,"
                  " (SELECT coalesce(sum(f.size_bytes), 0)::bigint FROM model_files f WHERE f.model_id = {model})"
                  " AS verified_bytes")


def _model(row: asyncpg.Record, **known: Any) -> Model:
    return Model(model_id=row["model_id"], workload_id=row["workload_id"], app_id=row["app_id"],
                 version=row["version"], artifacts=[StagedArtifact(**a) for a in row["artifacts"]],
                 attempts=row["attempts"], verified={path: source for path, source in row["verified"]},
                 verified_bytes=row["verified_bytes"], **known)


async def renew_lease(pool: asyncpg.Pool, model_id: str, owner: str, lease_seconds: float) -> bool:
    renewed = await pool.fetchval(
        "UPDATE models SET lease_until = now() + make_interval(secs => $3)"
        " WHERE model_id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING true",
        model_id, owner, lease_seconds)
    return bool(renewed)


async def release_lease(pool: asyncpg.Pool, model_id: str, owner: str) -> None:
    await pool.execute("UPDATE models SET lease_owner = NULL, lease_until = NULL"
                       " WHERE model_id = $1 AND lease_owner = $2", model_id, owner)


async def record_file(pool: asyncpg.Pool, model_id: str, *, path: str, component: str, source: str,
                      object_key: str, stored: StoredObject) -> None:
    await pool.execute(
        "INSERT INTO model_files (model_id, path, component, source, object_key, size_bytes, sha256, etag, verified_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (model_id, path) DO NOTHING",
        model_id, path, component, source, object_key, stored.size, stored.sha256, stored.etag, stored.verified_by)


async def leased_model(conn: asyncpg.Connection, model_id: str, owner: str) -> Model | None:
    """The pending model this replica holds the lease on, locked; None if it lost the lease."""
    row = await conn.fetchrow(
        "SELECT m.model_id, m.workload_id, m.app_id, m.version, m.artifacts, m.attempts, m.last_error,"
        f" m.outage_reported, {VERIFIED_FILES.format(model='m.model_id')}"
        " FROM models m WHERE m.model_id = $1 AND m.lease_owner = $2 AND m.status = 'pending' FOR UPDATE",
        model_id, owner)
    if row is None:
        return None
    return _model(row, last_error=row["last_error"], outage_reported=row["outage_reported"])


async def save_model(conn: asyncpg.Connection, model: Model) -> None:
    """Write the outcome of a store attempt (stored, or failed and due again in `retry_in` seconds); the
    attempt is over, so the lease is released."""
    await conn.execute(
        "UPDATE models SET status = $2::text, attempts = $3, last_error = $4, outage_reported = $5,"
        " size_bytes = $6, file_count = $7,"
        " stored_at = CASE WHEN $2::text = 'stored' THEN coalesce(stored_at, now()) END,"
        " next_attempt_at = CASE WHEN $8::float8 IS NULL THEN next_attempt_at"
        "  ELSE now() + make_interval(secs => $8::float8) END,"
        " lease_owner = NULL, lease_until = NULL WHERE model_id = $1",
        model.model_id, model.status, model.attempts, model.last_error, model.outage_reported, model.size_bytes,
        model.file_count, model.retry_in)


# ---------------------------------------------------------------- reads

async def list_models(pool: asyncpg.Pool, *, app_id: str | None, q: str | None, status: str | None,
                      limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    where = ("($1::text IS NULL OR app_id = $1) AND ($3::text IS NULL OR status = $3) AND ($2::text IS NULL"
             " OR name ILIKE $2 OR app_name ILIKE $2 OR workload_id ILIKE $2 OR workload->>'name' ILIKE $2)")
    args = (app_id, contains_pattern(q) if q else None, status)
    rows = await pool.fetch(f"SELECT {SUMMARY_COLUMNS} FROM models WHERE {where}"
                            " ORDER BY created_at DESC, model_id LIMIT $4 OFFSET $5", *args, limit, offset)
    total = await pool.fetchval(f"SELECT count(*) FROM models WHERE {where}", *args)
    return rows, total


async def get_model(pool: asyncpg.Pool, model_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {SUMMARY_COLUMNS}, workload, artifacts, metrics FROM models"
                               " WHERE model_id = $1", model_id)


async def get_models(pool: asyncpg.Pool, model_ids: list[str]) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT {SUMMARY_COLUMNS}, metrics FROM models WHERE model_id = ANY($1::text[])",
                            model_ids)


async def model_files(pool: asyncpg.Pool, model_id: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT path, component, object_key, size_bytes, sha256, etag, verified_by, stored_at"
                            " FROM model_files WHERE model_id = $1 ORDER BY path", model_id)


async def app_models(pool: asyncpg.Pool, app_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT {SUMMARY_COLUMNS}, metrics->'summary' AS summary FROM models"
                            " WHERE app_id = $1 ORDER BY version DESC", app_id)


async def aliases_of_model(pool: asyncpg.Pool, model_id: str) -> list[str]:
    return [row["alias"] for row in await pool.fetch(
        "SELECT alias FROM aliases WHERE model_id = $1 ORDER BY alias", model_id)]


# ---------------------------------------------------------------- App owners (who may move an App's aliases)

async def remember_owner(conn: asyncpg.Connection, app_id: str, owner: str | None, as_of: datetime) -> None:
    """Keep the newest owner the builder announced: a late, older event never overwrites a newer one."""
    await conn.execute(
        "INSERT INTO app_owners (app_id, owner, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (app_id) DO UPDATE SET owner = EXCLUDED.owner, updated_at = EXCLUDED.updated_at"
        " WHERE app_owners.updated_at <= EXCLUDED.updated_at", app_id, owner, as_of)


async def app_owner(conn: asyncpg.Connection, app_id: str) -> str | None:
    """The App's owner; None when it is the platform's or not heard of."""
    return await conn.fetchval("SELECT owner FROM app_owners WHERE app_id = $1", app_id)


# ---------------------------------------------------------------- aliases

async def lock_alias(conn: asyncpg.Connection, app_id: str, alias: str, *, undoable: bool = False) -> Alias:
    """The alias (model_id None when it does not exist yet), locked for this transaction, which serialises
    moves of one alias, its first one too; with `undoable`, with the newest move not yet undone.

    The number its move takes is reserved once the lock is held (the lock's subquery runs first), so one
    alias's moves are numbered in the order they commit."""
    sequence = await conn.fetchval(
        "SELECT nextval(pg_get_serial_sequence('alias_moves', 'id'))"
        " FROM (SELECT pg_advisory_xact_lock(hashtextextended('alias:' || $1 || '/' || $2, 0))) AS locked",
        app_id, alias)
    current = await conn.fetchval("SELECT model_id FROM aliases WHERE app_id = $1 AND alias = $2 FOR UPDATE",
                                  app_id, alias)
    last = None
    if undoable and current is not None:
        row = await conn.fetchrow(
            "SELECT id, from_model_id FROM alias_moves"
            " WHERE app_id = $1 AND alias = $2 AND action = 'move' AND NOT undone ORDER BY id DESC LIMIT 1",
            app_id, alias)
        last = UndoableMove(row["id"], row["from_model_id"]) if row else None
    return Alias(app_id=app_id, name=alias, model_id=current, next_sequence=sequence, last_move=last)


async def alias_target(conn: asyncpg.Connection, model_id: str) -> AliasTarget | None:
    row = await conn.fetchrow("SELECT model_id, app_id, version, status, metrics FROM models WHERE model_id = $1",
                              model_id)
    return AliasTarget(row["model_id"], row["app_id"], row["version"], row["status"], row["metrics"]) if row else None


async def save_alias(conn: asyncpg.Connection, alias: Alias) -> None:
    """Write the moves the alias made in this unit: where it points, its history, what a rollback undid."""
    for move in alias.moves:
        if move.undoes is not None:
            await conn.execute("UPDATE alias_moves SET undone = true WHERE id = $1", move.undoes)
        await conn.execute(
            "INSERT INTO aliases (app_id, alias, model_id, moved_by) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (app_id, alias) DO UPDATE SET model_id = $3, moved_by = $4, moved_at = now()",
            alias.app_id, alias.name, move.to_model_id, move.moved_by)
        await conn.execute(
            "INSERT INTO alias_moves (id, app_id, alias, action, from_model_id, to_model_id, gate, gate_observed,"
            " moved_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            move.sequence, alias.app_id, alias.name, move.action, move.from_model_id, move.to_model_id, move.gate,
            move.gate_observed, move.moved_by)
    alias.moves = []


async def list_aliases(pool: asyncpg.Pool, app_id: str, alias: str | None = None,
                       history_limit: int = 50) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT a.alias, a.model_id, a.moved_at, a.moved_by, m.version, m.name FROM aliases a"
        " JOIN models m USING (model_id) WHERE a.app_id = $1 AND ($2::text IS NULL OR a.alias = $2)"
        " ORDER BY a.alias", app_id, alias)
    moves = await pool.fetch(
        "SELECT alias, action, from_model_id, to_model_id, gate, gate_observed, undone, moved_by, moved_at FROM"
        " (SELECT *, row_number() OVER (PARTITION BY alias ORDER BY id DESC) AS n FROM alias_moves"
        "  WHERE app_id = $1 AND ($2::text IS NULL OR alias = $2)) h WHERE n <= $3 ORDER BY alias, id DESC",
        app_id, alias, history_limit)
    history: dict[str, list[dict[str, Any]]] = {}
    for move in moves:
        history.setdefault(move["alias"], []).append({k: move[k] for k in move.keys() if k != "alias"})
    return [{**dict(row), "history": history.get(row["alias"], [])} for row in rows]
