"""deploy/k8s/base/gateway-role.sql, run by psql against a real PostgreSQL, as compose's postgres-roles
and the gateway's db-role init container run it: the gateway's own role is made (or its password set
again), never a superuser, and is then all services/kit/db.py grant_runtime_role needs outside local.

Needs `psql` (postgresql-client) and the tests' PostgreSQL (AVATAR_TEST_POSTGRES_URL, a superuser).
"""

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.kit.db import grant_runtime_role

REPO = Path(__file__).resolve().parents[3]
ROLE_SQL = REPO / "deploy" / "k8s" / "base" / "gateway-role.sql"
SERVER = os.environ.get("AVATAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (apt-get install postgresql-client)")


def with_db(url, database, user=None):
    parts = urlsplit(url)
    netloc = parts.netloc if user is None else f"{user}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def run_sql(url, *, password, role=None):
    """psql -f gateway-role.sql as the manifests run it; the credentials through the environment."""
    parts = urlsplit(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AVATAR_GATEWAY_DB_"))}
    env.update(PGUSER=parts.username or "postgres", **({"PGPASSWORD": parts.password} if parts.password else {}))
    if password is not None:
        env["AVATAR_GATEWAY_DB_PASSWORD"] = password
    if role is not None:
        env["AVATAR_GATEWAY_DB_USER"] = role
    target = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5432}"))
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(ROLE_SQL), "-d", target],
                          env=env, capture_output=True, text=True, timeout=60)


def scram_matches(verifier, password):
    """Whether PostgreSQL's stored SCRAM-SHA-256 verifier is of `password` (RFC 5802/7677)."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key, _, server_key = keys.partition(":")
    assert method == "SCRAM-SHA-256"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
            and base64.b64encode(hmac.new(salted, b"Server Key", hashlib.sha256).digest()).decode() == server_key)


@pytest.fixture
async def database():
    """A fresh database and a unique role name; both dropped afterwards."""
    name, role = f"deploy_role_{uuid.uuid4().hex[:8]}", f"gw_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_db(SERVER, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_db(SERVER, name), role
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for leftover in (role, f"{role}_owner"):
            await admin.execute(f'DROP ROLE IF EXISTS "{leftover}"')
        await admin.close()


async def role_row(url, role):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow("SELECT r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, a.rolpassword,"
                                   " has_database_privilege(r.rolname, current_database(), 'CONNECT') AS can_connect"
                                   " FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = $1", role)
    finally:
        await conn.close()


async def test_makes_a_login_role_with_the_password_and_sets_it_again(database):
    url, role = database
    first = run_sql(url, password="first-password-1", role=role)
    assert first.returncode == 0, first.stderr
    row = await role_row(url, role)
    assert row["rolcanlogin"] and not (row["rolsuper"] or row["rolcreaterole"] or row["rolcreatedb"])
    assert scram_matches(row["rolpassword"], "first-password-1")
    # again (every start of the gateway's pod, every `docker compose up`): no error, the new password
    again = run_sql(url, password="second-password-2", role=role)
    assert again.returncode == 0, again.stderr
    assert scram_matches((await role_row(url, role))["rolpassword"], "second-password-2")


@pytest.mark.parametrize("password", [None, "", "short"])
async def test_refuses_without_a_real_password_and_makes_nothing(database, password):
    url, role = database
    result = run_sql(url, password=password, role=role)
    assert result.returncode != 0
    assert "AVATAR_GATEWAY_DB_PASSWORD must be set" in result.stderr
    assert await role_row(url, role) is None


async def test_refuses_a_superuser_role(database):
    url, role = database
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    await admin.close()
    result = run_sql(url, password="long-enough-password", role=role)
    assert result.returncode != 0 and "superuser" in result.stderr


async def test_works_for_an_owner_with_createrole_only_and_grants_connect(database):
    """A managed PostgreSQL's owner is no superuser: CREATEROLE is enough, and CONNECT is granted where the
    database does not give it to PUBLIC."""
    url, role = database
    owner = f"{role}_owner"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
    database_name = urlsplit(url).path.lstrip("/")
    await admin.execute(f'REVOKE CONNECT ON DATABASE "{database_name}" FROM PUBLIC')
    await admin.execute(f'GRANT CONNECT ON DATABASE "{database_name}" TO "{owner}" WITH GRANT OPTION')
    await admin.close()
    result = run_sql(with_db(url, database_name, user=owner), password="owner-made-password", role=role)
    assert result.returncode == 0, result.stderr
    row = await role_row(url, role)
    assert row["rolcanlogin"] and row["can_connect"] and scram_matches(row["rolpassword"], "owner-made-password")


async def test_the_role_is_what_grant_runtime_role_needs_outside_local(database):
    """Outside AVATAR_ENV=local the kit does not create the role (create=False): after the script the grants
    succeed and the role reads and writes the schema's tables."""
    url, role = database
    assert run_sql(url, password="runtime-password-1", role=role).returncode == 0
    admin = await asyncpg.connect(url)
    await admin.execute("CREATE SCHEMA gateway; CREATE TABLE gateway.users (id text PRIMARY KEY)")
    await admin.close()
    await grant_runtime_role(url, "gateway", role, create=False)
    conn = await asyncpg.connect(with_db(url, urlsplit(url).path.lstrip("/"), user=role))
    try:
        await conn.execute("INSERT INTO gateway.users VALUES ('kim')")
        assert await conn.fetchval("SELECT id FROM gateway.users") == "kim"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE gateway.mine (x int)")  # not the owner: no DDL
    finally:
        await conn.close()
