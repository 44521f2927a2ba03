"""User accounts (AU-02): the rules about them (pure, at the top) and their store (asyncpg, below).

A user's id is the subject of every token the services see, so it is validated like a token subject
(services/kit/auth.py `Subject`) and never changes. The store's functions take a connection so that a
route runs the change and its audit record in one transaction; each change returns the user before and
after it, as the audit log shows them (never a password or its hash).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterator

import asyncpg

from services.gateway.audit import AuditLog
from services.kit.auth import MAX_SUBJECT, ROLES, Role
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.paging import PageQuery, contains_pattern

KINDS = ("person", "service")
MAX_PASSWORD = 1024  # argon2 hashes anything, but an unbounded password is CPU for the asking
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
RANK: dict[str, int] = {"viewer": 0, "researcher": 1, "admin": 2}


@dataclass(frozen=True)
class User:
    id: str
    display_name: str
    email: str | None
    role: Role
    kind: str
    active: bool


class Deactivated(Exception):
    """The user exists but is deactivated: no login, session or token of theirs is accepted."""

    def __init__(self, user: str) -> None:
        super().__init__(f"user '{user}' is deactivated")
        self.user = user


# ------------------------------------------------------------------ rules (no I/O)

def check_password(password: str, *, min_length: int, user_id: str | None = None) -> None:
    if len(password) < min_length:
        raise Invalid(f"the password must have at least {min_length} characters", code="password_too_short",
                      min_length=min_length)
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"the password may have at most {MAX_PASSWORD} characters", code="password_too_long")
    if user_id is not None and password.casefold() == user_id.casefold():
        raise Invalid("the password may not be the user's id", code="password_is_user")


def check_keeps_admin(active_admins: set[str], user_id: str, *, new_role: str | None = None,
                      deactivating: bool = False) -> None:
    """Refuse a change that would leave the platform with no active admin (nobody could undo it)."""
    if user_id not in active_admins:
        return
    if deactivating or (new_role is not None and new_role != "admin"):
        if active_admins == {user_id}:
            what = "deactivate" if deactivating else f"make '{new_role}' of"
            raise Conflict(f"cannot {what} '{user_id}': it is the last active admin; make another admin first",
                           code="last_admin")


def token_role(requested: Role | None, ceiling: Role, owner: str) -> Role:
    """The role of a new API token: at most its owner's (`ceiling`); the owner's when none is asked."""
    if requested is None:
        return ceiling
    if RANK[requested] > RANK[ceiling]:
        raise Invalid(f"a token's role '{requested}' may not be above its owner's role '{ceiling}' ('{owner}')",
                      code="role_above_owner", role=requested, owner_role=ceiling)
    return requested


def oidc_id_base(email: str | None, subject: str) -> str:
    """What a user first seen through OIDC is called: the email's local part, else the IdP's subject,
    cleaned to a valid token subject (no control characters, no surrounding blanks, not too long)."""
    base = email.partition("@")[0] if email and "@" in email else subject
    base = "".join(ch for ch in base if unicodedata.category(ch) != "Cc").strip().lower()
    base = base[:MAX_SUBJECT - 8]  # room for a "-NNN" suffix
    return base or "user"


def candidate_ids(base: str) -> Iterator[str]:
    yield base
    for n in range(2, 10_000):
        yield f"{base}-{n}"


def audit_view(row: asyncpg.Record | dict[str, Any] | None) -> dict[str, Any] | None:
    """The user as the audit log records it (no password or hash)."""
    if row is None:
        return None
    return {"id": row["id"], "display_name": row["display_name"], "email": row["email"], "role": row["role"],
            "kind": row["kind"], "active": row["active"]}


def to_user(row: asyncpg.Record) -> User:
    return User(id=row["id"], display_name=row["display_name"], email=row["email"], role=row["role"],
                kind=row["kind"], active=row["active"])


# ------------------------------------------------------------------ store

COLUMNS = ("id, display_name, email, role, kind, active, password_hash IS NOT NULL AS has_password, "
           "idp_issuer, created_at, created_by, updated_at, updated_by, deactivated_at, deactivated_by")


async def get(conn: asyncpg.Connection, user_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1{lock}", user_id)


async def require(conn: asyncpg.Connection, user_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await get(conn, user_id, for_update=for_update)
    if row is None:
        raise NotFound(f"user '{user_id}' not found")
    return row


async def password_hash(conn: asyncpg.Connection, user_id: str) -> tuple[asyncpg.Record | None, str | None]:
    row = await conn.fetchrow(f"SELECT {COLUMNS}, password_hash FROM users WHERE id = $1", user_id)
    return row, (row["password_hash"] if row else None)


async def search(conn: asyncpg.Connection, *, role: str | None, active: bool | None, q: str | None,
                 page: PageQuery) -> tuple[list[asyncpg.Record], int]:
    where, args = [], []
    if role is not None:
        args.append(role)
        where.append(f"role = ${len(args)}")
    if active is not None:
        args.append(active)
        where.append(f"active = ${len(args)}")
    if q:
        args.append(contains_pattern(q))
        n = len(args)
        where.append(f"(id ILIKE ${n} OR display_name ILIKE ${n} OR email ILIKE ${n})")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = await conn.fetchval(f"SELECT count(*) FROM users{clause}", *args)
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM users{clause} ORDER BY id LIMIT ${len(args) + 1} "
                            f"OFFSET ${len(args) + 2}", *args, page.page_size, page.offset)
    return rows, total


async def record_change(conn: asyncpg.Connection, *, action: str, user_id: str, before: Any, after: Any,
                        by: str) -> None:
    """Audit an account change made outside a request (the CLI, the bootstrap admin, an OIDC login
    applying the IdP's groups) in `conn`'s transaction, as a route does; `by` names who made it
    ("cli:<os user>", "bootstrap", "oidc:<issuer>")."""
    await AuditLog(None, None).decision(  # type: ignore[arg-type]  # with conn= it needs no pool of its own
        action=action, actor=None, actor_user=by, target_type="user", target_id=user_id,
        before=before if before is None or isinstance(before, dict) else audit_view(before),
        after=after if after is None or isinstance(after, dict) else audit_view(after),
        comment=None, outcome="ok", request=None, conn=conn)


async def create(conn: asyncpg.Connection, *, user_id: str, display_name: str, email: str | None, role: Role,
                 kind: str, password_hash: str | None, by: str | None,
                 idp: tuple[str, str] | None = None) -> asyncpg.Record:
    if role not in ROLES or kind not in KINDS:
        raise Invalid(f"unknown role {role!r} or kind {kind!r}")
    if kind == "service" and password_hash is not None:
        raise Invalid("a service account has no password: it calls with API tokens", code="service_password")
    try:
        return await conn.fetchrow(
            f"INSERT INTO users (id, display_name, email, role, kind, password_hash, idp_issuer, idp_subject,"
            f" created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}",
            user_id, display_name, email, role, kind, password_hash, *(idp or (None, None)), by)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"user '{user_id}' already exists", code="user_exists") from None


async def update_profile(conn: asyncpg.Connection, user_id: str, *, changes: dict[str, Any], by: str):
    before = await require(conn, user_id, for_update=True)
    if not changes:
        return before, before
    sets = ", ".join(f"{column} = ${n}" for n, column in enumerate(changes, start=3))
    after = await conn.fetchrow(f"UPDATE users SET {sets}, updated_at = now(), updated_by = $2 WHERE id = $1 "
                                f"RETURNING {COLUMNS}", user_id, by, *changes.values())
    return before, after


async def _active_admins(conn: asyncpg.Connection) -> set[str]:
    # locked: two admins demoting each other at once are serialised, so one of them is refused
    rows = await conn.fetch("SELECT id FROM users WHERE role = 'admin' AND active ORDER BY id FOR UPDATE")
    return {row["id"] for row in rows}


async def set_role(conn: asyncpg.Connection, user_id: str, role: Role, *, by: str):
    admins = await _active_admins(conn)
    before = await require(conn, user_id, for_update=True)
    check_keeps_admin(admins, user_id, new_role=role)
    after = await conn.fetchrow(f"UPDATE users SET role = $2, updated_at = now(), updated_by = $3 WHERE id = $1 "
                                f"RETURNING {COLUMNS}", user_id, role, by)
    return before, after


async def deactivate(conn: asyncpg.Connection, user_id: str, *, by: str):
    admins = await _active_admins(conn)
    before = await require(conn, user_id, for_update=True)
    if not before["active"]:
        raise Conflict(f"user '{user_id}' is already deactivated", code="already_deactivated")
    check_keeps_admin(admins, user_id, deactivating=True)
    after = await conn.fetchrow(
        f"UPDATE users SET active = false, deactivated_at = now(), deactivated_by = $2, updated_at = now(),"
        f" updated_by = $2 WHERE id = $1 RETURNING {COLUMNS}", user_id, by)
    await revoke_sessions(conn, user_id)
    return before, after


async def reactivate(conn: asyncpg.Connection, user_id: str, *, by: str):
    before = await require(conn, user_id, for_update=True)
    if before["active"]:
        raise Conflict(f"user '{user_id}' is already active", code="already_active")
    after = await conn.fetchrow(
        f"UPDATE users SET active = true, deactivated_at = NULL, deactivated_by = NULL, updated_at = now(),"
        f" updated_by = $2 WHERE id = $1 RETURNING {COLUMNS}", user_id, by)
    return before, after


async def set_password(conn: asyncpg.Connection, user_id: str, new_hash: str, *, by: str | None,
                       keep_session: str | None = None) -> asyncpg.Record:
    """Store a new password hash; every other open session of the user ends (whoever knew the old one
    is logged out), except `keep_session` (the one changing it)."""
    row = await require(conn, user_id, for_update=True)
    if row["kind"] == "service":
        raise Invalid("a service account has no password: it calls with API tokens", code="service_password")
    if row["idp_issuer"] is not None:
        raise Invalid(f"user '{user_id}' logs in through single sign-on; its password is the IdP's",
                      code="oidc_user")
    await conn.execute("UPDATE users SET password_hash = $2, updated_at = now(), updated_by = $3 WHERE id = $1",
                       user_id, new_hash, by)
    await revoke_sessions(conn, user_id, keep=keep_session)
    return row


async def rehash(pool_or_conn, user_id: str, new_hash: str) -> None:
    """A login found the hash made with older parameters: the same password, hashed as today."""
    await pool_or_conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash IS NOT NULL",
                               user_id, new_hash)


async def revoke_sessions(conn: asyncpg.Connection, user_id: str, *, keep: str | None = None) -> int:
    result = await conn.execute("UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL"
                                " AND id IS DISTINCT FROM $2", user_id, keep)
    return int(result.split()[-1])


async def upsert_oidc_user(pool: asyncpg.Pool, *, issuer: str, subject: str, email: str | None,
                           display_name: str | None, role: str) -> User:
    """The user an IdP's (issuer, subject) names, provisioned on the first login and brought up to date
    (role, email, name) on each; raises Deactivated for a deactivated user. A new user's id is the email's
    local part (or the subject), with a suffix when a user of that id exists (a local account is never
    taken over by an IdP user of the same name)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    name = (display_name or email or subject)[:200]
    async with pool.acquire() as conn:
        for _ in range(3):  # a concurrent first login of the same person: the second finds the first's row
            async with conn.transaction():
                row = await conn.fetchrow(f"SELECT {COLUMNS} FROM users WHERE idp_issuer = $1 AND idp_subject = $2"
                                          " FOR UPDATE", issuer, subject)
                if row is not None:
                    if not row["active"]:
                        raise Deactivated(row["id"])
                    if (row["role"], row["email"], row["display_name"]) != (role, email, name):
                        before, row = row, await conn.fetchrow(
                            f"UPDATE users SET role = $2, email = $3, display_name = $4, updated_at = now(),"
                            f" updated_by = 'oidc' WHERE id = $1 RETURNING {COLUMNS}", row["id"], role, email, name)
                        # the IdP's groups changed the role: a decision of its own, not only part of a login
                        action = "user.role" if before["role"] != role else "user.update"
                        await record_change(conn, action=action, user_id=row["id"], before=before, after=row,
                                            by=f"oidc:{issuer}")
                    return to_user(row)
            base = oidc_id_base(email, subject)
            for candidate in candidate_ids(base):
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(
                            f"INSERT INTO users (id, display_name, email, role, kind, idp_issuer, idp_subject,"
                            f" created_by, updated_by) VALUES ($1, $2, $3, $4, 'person', $5, $6, 'oidc', 'oidc')"
                            f" ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}",
                            candidate, name, email, role, issuer, subject)
                        if row is not None:
                            await record_change(conn, action="user.create", user_id=row["id"], before=None,
                                                after=row, by=f"oidc:{issuer}")
                except asyncpg.UniqueViolationError:
                    break  # (issuer, subject) was inserted meanwhile: read it above
                if row is not None:
                    return to_user(row)
    raise RuntimeError(f"could not provision the OIDC user {issuer} / {subject}")
