"""The audit log is append-only for the gateway's own database role; only the retention job, as the
schema's owner, removes rows, and only old ones."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from services.gateway import retention
from tests.integration.gateway.conftest import GATEWAY_ROLE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@contextlib.asynccontextmanager
async def as_owner(gateway):
    conn = await asyncpg.connect(gateway.settings.postgres_admin_url, server_settings={"search_path": "gateway"})
    try:
        yield conn
    finally:
        await conn.close()


async def add_rows(conn, *ages_in_days: int) -> None:
    now = datetime.now(timezone.utc)
    for age in ages_in_days:
        await conn.execute("INSERT INTO audit_log (at, kind, actor, action, target_type, target_id) "
                           "VALUES ($1, 'decision', 'ada', 'user.deactivate', 'user', $2)",
                           now - timedelta(days=age), f"aged-{age}")


async def test_runtime_role_may_insert_and_read_but_never_change(gateway):
    pool = gateway.platform.pool
    assert await pool.fetchval("SELECT current_user") == GATEWAY_ROLE
    row_id = await pool.fetchval("INSERT INTO audit_log (kind, actor) VALUES ('decision', 'ada') RETURNING id")
    assert await pool.fetchval("SELECT actor FROM audit_log WHERE id = $1", row_id) == "ada"
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log",
                      "SELECT setval('audit_log_id_seq', 1)"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(statement)
    # the retention switch is a setting anyone may set: it opens nothing to the runtime role
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL avatar.audit_retention = 'on'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")
    # nor may it take the guard away
    for statement in ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
                      "DROP TRIGGER audit_log_no_change ON audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'ada'") == 1


async def test_even_the_owner_changes_nothing_outside_retention(gateway):
    async with as_owner(gateway) as conn:
        await add_rows(conn, 0)
        for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        async with conn.transaction():
            await conn.execute("SET LOCAL avatar.audit_retention = 'on'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute("UPDATE audit_log SET actor = 'mallory'")
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'ada'") == 1


async def test_restrictions_hold_after_a_restart(fresh):
    # the generic grants run again on every start; the revoke after them must too
    from services.gateway.main import create_app
    from tests.integration.gateway.conftest import gateway_settings
    from tests.support.services import running_service

    settings = gateway_settings(fresh)
    for _ in range(2):
        async with running_service(create_app, settings) as running:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await running.platform.pool.execute("DELETE FROM audit_log")


async def test_retention_deletes_only_old_rows(gateway):
    async with as_owner(gateway) as conn:
        await add_rows(conn, 800, 401, 399, 10, 0)
    deleted = await retention.prune(gateway.settings.postgres_admin_url, 400, batch=1)  # several batches
    assert deleted == 2
    async with as_owner(gateway) as conn:
        left = await conn.fetch("SELECT target_id FROM audit_log WHERE action = 'user.deactivate' ORDER BY at")
        assert [r["target_id"] for r in left] == ["aged-399", "aged-10", "aged-0"]
        (record,) = await conn.fetch("SELECT * FROM audit_log WHERE action = 'audit.retention'")
        assert record["kind"] == "decision" and json.loads(record["after"])["deleted"] == 2
        assert record["actor"] == await conn.fetchval("SELECT current_user")
    with pytest.raises(ValueError):
        await retention.prune(gateway.settings.postgres_admin_url, 0)


async def test_retention_command_line(gateway, fresh):
    async with as_owner(gateway) as conn:
        await add_rows(conn, 40, 20)
    env = {**os.environ, **fresh.environ(AVATAR_POSTGRES_ADMIN_URL=gateway.settings.postgres_admin_url,
                                         AVATAR_POSTGRES_URL=gateway.settings.postgres_url)}
    done = subprocess.run([sys.executable, "-m", "services.gateway.retention", "--older-than-days", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"deleted": 1, "older_than_days": 30}
    async with as_owner(gateway) as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE target_id LIKE 'aged-%'") == 1
    refused = subprocess.run([sys.executable, "-m", "services.gateway.retention", "--older-than-days", "0"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "at least 1" in refused.stderr
