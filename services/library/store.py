"""All of the library's SQL. Every function runs on the caller's connection (and transaction)."""
from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from contracts.events import ComponentSnapshot
from contracts.spec import AppSpec
from services.library import domain
from services.kit.errors import Conflict, NotFound
from services.kit.paging import contains_pattern

log = logging.getLogger(__name__)
_SEED_LOCK = 0x1B5EED


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a component named {name!r} is already registered; update it to publish a new version",
                    code="name_taken")


async def lock_seeding(conn: asyncpg.Connection) -> None:
    """One replica seeds; the others wait, then find the catalog no longer empty."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK)


async def any_component(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM components)")


async def next_number(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT nextval('component_number')")


async def insert(conn: asyncpg.Connection, number: int, component: ComponentSnapshot, user: str,
                 owner: str | None) -> None:
    """Store a new component as its first version."""
    try:
        await conn.execute(
            "INSERT INTO components (component_id, number, name, description, type, version, snapshot,"
            " created_by, updated_by, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
            component.component_id, number, component.name, component.description, component.type,
            component.version, component.model_dump(mode="json"), user, owner)
    except asyncpg.UniqueViolationError:
        raise _name_taken(component.name) from None
    await add_version(conn, component, [], user)


async def component(conn: asyncpg.Connection, component_id: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM components WHERE component_id = $1" + (" FOR UPDATE" if lock else ""),
                              component_id)
    if row is None:
        raise NotFound(f"component {component_id} not found")
    return row


def snapshot(row: asyncpg.Record) -> ComponentSnapshot:
    return ComponentSnapshot.model_validate(row["snapshot"])


async def save(conn: asyncpg.Connection, component: ComponentSnapshot, changed: list[str], user: str) -> None:
    try:
        await conn.execute(
            "UPDATE components SET name = $2, description = $3, type = $4, version = $5, snapshot = $6,"
            " updated_by = $7, updated_at = now() WHERE component_id = $1",
            component.component_id, component.name, component.description, component.type, component.version,
            component.model_dump(mode="json"), user)
    except asyncpg.UniqueViolationError:
        raise _name_taken(component.name) from None
    await add_version(conn, component, changed, user)


async def transfer(conn: asyncpg.Connection, component_id: str, previous: str | None, new_owner: str,
                   by: str) -> None:
    """The component's new owner, and the transfer in the audit trail."""
    await conn.execute("UPDATE components SET owner = $2 WHERE component_id = $1", component_id, new_owner)
    await conn.execute("INSERT INTO owner_transfers (component_id, from_owner, to_owner, transferred_by)"
                       " VALUES ($1, $2, $3, $4)", component_id, previous, new_owner, by)


async def add_version(conn: asyncpg.Connection, component: ComponentSnapshot, changed: list[str], user: str) -> None:
    await conn.execute(
        "INSERT INTO component_versions (component_id, version, snapshot, changed, created_by)"
        " VALUES ($1, $2, $3, $4, $5)",
        component.component_id, component.version, component.model_dump(mode="json"), changed, user)


async def versions(conn: asyncpg.Connection, component_id: str) -> list[asyncpg.Record]:
    """Newest first."""
    return await conn.fetch("SELECT version, snapshot, changed, created_by, created_at FROM component_versions"
                            " WHERE component_id = $1 ORDER BY id DESC", component_id)


async def version(conn: asyncpg.Connection, component_id: str, version: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT version, snapshot, changed, created_by, created_at FROM component_versions"
                              " WHERE component_id = $1 AND version = $2", component_id, version)
    if row is None:
        raise NotFound(f"component {component_id} has no version {version}")
    return row


async def search(conn: asyncpg.Connection, query: str | None, component_type: str | None, owner: str | None,
                 limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    pattern = contains_pattern(query) if query else None
    where = (" FROM components c WHERE ($1::text IS NULL OR c.name ILIKE $1 OR c.description ILIKE $1)"
             " AND ($2::text IS NULL OR c.type = $2) AND ($3::text IS NULL OR c.owner = $3)")
    total = await conn.fetchval("SELECT count(*)" + where, pattern, component_type, owner)
    rows = await conn.fetch(
        "SELECT c.*, (SELECT count(*) FROM component_usage u WHERE u.component_id = c.component_id) AS used_in_count"
        + where + " ORDER BY c.number LIMIT $4 OFFSET $5", pattern, component_type, owner, limit, offset)
    return list(rows), total


async def used_in(conn: asyncpg.Connection, component_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT u.app_id, a.app_name, a.spec_version, u.task_id, u.task_name, u.library_version FROM component_usage u"
        " JOIN app_usage a USING (app_id) WHERE u.component_id = $1 ORDER BY u.app_id, u.task_id", component_id)


async def record_spec(conn: asyncpg.Connection, spec: AppSpec) -> bool:
    """Make `used_in` reflect this App's spec, unless a newer spec (or the App's deletion) is already known."""
    newer = await conn.fetchval(
        "INSERT INTO app_usage (app_id, app_name, spec_version, spec_created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (app_id) DO UPDATE SET app_name = EXCLUDED.app_name, spec_version = EXCLUDED.spec_version,"
        "   spec_created_at = EXCLUDED.spec_created_at, deleted_at = NULL"
        " WHERE app_usage.spec_created_at < EXCLUDED.spec_created_at"
        "   AND (app_usage.deleted_at IS NULL OR app_usage.deleted_at < EXCLUDED.spec_created_at)"
        " RETURNING true", spec.app_id, spec.name, spec.version, spec.created_at)
    if not newer:
        return False
    await conn.execute("DELETE FROM component_usage WHERE app_id = $1", spec.app_id)
    usages = domain.usages(spec)
    recorded = await conn.fetch(
        "INSERT INTO component_usage (component_id, app_id, task_id, task_name, library_version)"
        " SELECT u.component_id, $1, u.task_id, u.task_name, u.library_version"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(component_id, task_id, task_name,"
        " library_version) JOIN components c USING (component_id) ON CONFLICT DO NOTHING RETURNING component_id",
        spec.app_id, [u.component_id for u in usages], [u.task_id for u in usages], [u.task_name for u in usages],
        [u.library_version for u in usages])
    unknown = {u.component_id for u in usages} - {r["component_id"] for r in recorded}
    if unknown:
        log.warning("spec %s/%s places components the library does not know: %s",
                    spec.app_id, spec.version, sorted(unknown))
    return True


async def forget_app(conn: asyncpg.Connection, app_id: str, deleted_at: datetime) -> None:
    """The App is gone: drop its usage, and remember when, so a late spec event cannot bring it back."""
    await conn.execute(
        "INSERT INTO app_usage (app_id, app_name, spec_version, spec_created_at, deleted_at)"
        " VALUES ($1, '', '', '-infinity', $2)"
        " ON CONFLICT (app_id) DO UPDATE SET deleted_at = GREATEST(app_usage.deleted_at, EXCLUDED.deleted_at)",
        app_id, deleted_at)
    await conn.execute("DELETE FROM component_usage WHERE app_id = $1", app_id)
