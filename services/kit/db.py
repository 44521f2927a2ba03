"""asyncpg pool per service schema, and the migration runner (numbered SQL under an advisory lock)."""
from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.kit.instrument import TracedConnection

log = logging.getLogger(__name__)
KIT_MIGRATIONS = Path(__file__).parent / "migrations"
# beside a service's migrations: what its own runtime role may not do (see grant_runtime_role)
RESTRICTIONS = "restrictions.sql"
_MIGRATION_FILE = re.compile(r"^(\d{4})_[\w-]+\.sql$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _quote_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}")
    return f'"{name}"'


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# While PostgreSQL is away a request must fail in seconds, well inside a client's own timeout, so that it
# answers 503 (services/kit/errors.py) instead of hanging: asyncpg waits 60 s for a connect by default and
# for a pooled connection for ever. An acquire includes the connect a lost connection needs.
CONNECT_TIMEOUT_SECONDS = 3.0
ACQUIRE_TIMEOUT_SECONDS = 8.0


class Pool(asyncpg.Pool):
    """asyncpg's pool whose acquire gives up after `acquire_timeout` unless the caller says otherwise."""

    def __init__(self, *args, acquire_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None):
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(url: str, schema: str, *, max_size: int = 10, connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                      acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS) -> asyncpg.Pool:
    _quote_ident(schema)
    pool = Pool(
        url, min_size=1, max_size=max_size, max_queries=50000, max_inactive_connection_lifetime=300.0,
        init=_init_connection, loop=None, connection_class=TracedConnection, record_class=asyncpg.Record,
        acquire_timeout=acquire_timeout, timeout=connect_timeout,
        server_settings={"search_path": f"{schema},public", "application_name": f"avatar-{schema}"},
    )
    return await pool


async def ensure_database(url: str) -> None:
    """Create the database named in the URL if it does not exist (local runs and tests)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # created concurrently by another process
    finally:
        await conn.close()


def advisory_lock_key(purpose: str, name: str) -> int:
    """The PostgreSQL advisory-lock key for one purpose (migrations, an outbox relay, the scheduler's
    leadership) and one schema or channel: stable across processes and versions, distinct per pair."""
    digest = hashlib.sha256(f"avatar-{purpose}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        if path.name == RESTRICTIONS:
            continue
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} must be named NNNN_name.sql")
        found.append((int(match.group(1)), path))
    numbers = [number for number, _ in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return found


async def apply_migrations(pool: asyncpg.Pool, schema: str, sources: dict[str, Path]) -> list[str]:
    """Apply each source's numbered migrations once, in order; concurrent callers serialise on a lock."""
    quoted = _quote_ident(schema)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        key = advisory_lock_key("migrations", schema)
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
                " source TEXT NOT NULL, version INT NOT NULL, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (source, version))"
            )
            for source, directory in sources.items():
                done = {row["version"] for row in await conn.fetch(
                    f"SELECT version FROM {quoted}.schema_migrations WHERE source = $1", source)}
                for number, path in migration_files(directory):
                    if number in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL search_path TO {quoted}, public")
                        await conn.execute(path.read_text())
                        await conn.execute(
                            f"INSERT INTO {quoted}.schema_migrations (source, version, name) VALUES ($1, $2, $3)",
                            source, number, path.name)
                    applied_now.append(f"{source}/{path.name}")
                    log.info("applied migration %s/%s to schema %s", source, path.name, schema)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
    return applied_now


def url_user(url: str) -> str:
    """The role a PostgreSQL URL connects as."""
    return urlsplit(url).username or "postgres"


async def grant_runtime_role(admin_url: str, schema: str, role: str, *, create: bool,
                             restrictions: Path | None = None) -> None:
    """Let `role` (the service's own, not the schema's owner) read and write the schema's tables, then apply
    the service's `restrictions` (SQL with `{role}` for the quoted role name: e.g. REVOKE UPDATE, DELETE on an
    append-only table). `create`: make the role when it is missing (local runs; elsewhere it is provisioned)."""
    quoted_schema, quoted_role = _quote_ident(schema), _quote_ident(role)
    conn = await asyncpg.connect(admin_url, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        key = advisory_lock_key("grants", schema)
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            if create and not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                try:
                    await conn.execute(f"CREATE ROLE {quoted_role} LOGIN")
                except asyncpg.DuplicateObjectError:
                    pass  # created concurrently by another database's service
            async with conn.transaction():
                await conn.execute(f"GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted_role}")
                await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quoted_schema} "
                                   f"TO {quoted_role}")
                await conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {quoted_schema} "
                                   f"TO {quoted_role}")
                await conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {quoted_schema} TO {quoted_role}")
                if restrictions is not None and restrictions.exists():
                    await conn.execute(f"SET LOCAL search_path TO {quoted_schema}, public")
                    await conn.execute(restrictions.read_text().replace("{role}", quoted_role))
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        await conn.close()
