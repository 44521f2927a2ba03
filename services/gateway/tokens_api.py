"""Personal and service API tokens for other systems and scripts (`Authorization: Bearer avt_...`).

A token is shown once, when it is created; only its SHA-256 is stored. Its role is at most its owner's
when it is made, and it acts with at most the owner's *current* role (services/gateway/sessions.py), so a
demotion or deactivation of the owner reaches every token they made. Tokens are made by a logged-in
person (a session) or a platform JWT (the local CLI), never by another API token: a short-lived or
revocable token could otherwise mint a child that outlives it.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.gateway import accounts, sessions
from services.gateway.identity import AnyCaller, Caller, at_most
from services.kit.auth import Role, Subject
from services.kit.errors import Forbidden, Invalid, NotFound

router = APIRouter(tags=["api tokens"])
MAX_TOKEN_DAYS = 3650
NO_TOKEN_FROM_TOKEN = "an API token cannot create API tokens: log in to make one"

_COLUMNS = "id, user_id, name, role, created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at"


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
    role: Role | None = Field(default=None, description="at most the owner's role; the owner's when omitted")
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS,
                                        description=f"none: no expiry; at most {MAX_TOKEN_DAYS} days")
    user: Subject | None = Field(default=None, description="a service account's id (admins only); yourself when omitted")


class CreatedToken(BaseModel):
    id: str
    token: str = Field(description="the secret: shown only in this answer, send it as 'Authorization: Bearer <token>'")
    name: str
    role: Role
    user: str
    expires_at: datetime | None


class TokenView(BaseModel):
    id: str
    user: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> "TokenView":
        return cls(user=row["user_id"], **{k: row[k] for k in _COLUMNS.split(", ") if k != "user_id"})


def _view(row: Any) -> dict[str, Any]:
    """The token as the audit log records it (never its secret or hash)."""
    return {"id": row["id"], "user": row["user_id"], "name": row["name"], "role": row["role"],
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "revoked": row["revoked_at"] is not None}


async def _audit(request: Request, action: str, caller: Caller, row: Any, before: Any, after: Any, conn) -> None:
    await request.app.state.audit.decision(
        action=action, actor=caller, target_type="api_token", target_id=row["id"], before=before, after=after,
        comment=None, outcome="ok", request=request, conn=conn, actor_user=None)


@router.post("/api/tokens", status_code=201, response_model=CreatedToken,
             summary="Create an API token (yours, or an admin's for a service account)",
             responses={422: {"description": "role above the owner's"},
                        403: {"description": "not yours to make, or the caller is itself an API token"}})
async def create_token(body: NewToken, caller: AnyCaller, request: Request) -> CreatedToken:
    if caller.via == "api_token":
        raise Forbidden(NO_TOKEN_FROM_TOKEN)
    owner_id = body.user or caller.user
    pool = request.app.state.platform.pool
    async with pool.acquire() as conn, conn.transaction():
        owner = await accounts.get(conn, owner_id, for_update=True)
        if owner_id != caller.user:
            if not caller.is_admin:
                raise Forbidden("only an admin may make a token for another user (and only for a service account)")
            if owner is None:
                raise NotFound(f"user '{owner_id}' not found")
            if owner["kind"] != "service":
                raise Forbidden(f"'{owner_id}' is a person: only they may make their own tokens")
        elif owner is None:
            raise Invalid(f"'{owner_id}' has no account here: an admin creates it first", code="no_account")
        if not owner["active"]:
            raise Invalid(f"user '{owner_id}' is deactivated", code="deactivated")
        # a caller acting with less than their role (itself a capped token) makes no token above that
        ceiling = owner["role"] if owner_id != caller.user else at_most(owner["role"], caller.role)
        role = accounts.token_role(body.role, ceiling, owner_id)
        secret = sessions.new_secret(sessions.TOKEN_PREFIX)
        row = await conn.fetchrow(
            f"INSERT INTO api_tokens (id, user_id, name, secret_hash, role, created_by, expires_at)"
            f" VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7)) RETURNING {_COLUMNS}",
            "tok_" + secrets.token_urlsafe(12), owner_id, body.name, sessions.secret_hash(secret), role, caller.user,
            body.expires_in_days)
        await _audit(request, "token.create", caller, row, None, _view(row), conn)
    return CreatedToken(id=row["id"], token=secret, name=row["name"], role=row["role"], user=owner_id,
                        expires_at=row["expires_at"])


@router.get("/api/tokens", response_model=list[TokenView], summary="List your API tokens (admins: ?user=)")
async def list_tokens(caller: AnyCaller, request: Request,
                      user: Annotated[Subject | None, Query(description="whose (admins only)")] = None,
                      revoked: Annotated[bool, Query(description="include revoked tokens")] = False):
    owner = user or caller.user
    if owner != caller.user and not caller.is_admin:
        raise Forbidden("only an admin may list another user's tokens")
    rows = await request.app.state.platform.pool.fetch(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE user_id = $1 AND ($2 OR revoked_at IS NULL)"
        " ORDER BY created_at DESC, id LIMIT 1000", owner, revoked)
    return [TokenView.of(row) for row in rows]


@router.delete("/api/tokens/{token_id}", response_model=TokenView, summary="Revoke an API token (its owner or an admin)")
async def revoke_token(token_id: str, caller: AnyCaller, request: Request) -> TokenView:
    async with request.app.state.platform.pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1 FOR UPDATE", token_id)
        if before is None or (before["user_id"] != caller.user and not caller.is_admin):
            raise NotFound(f"API token {token_id} not found")  # another's token is not even confirmed to exist
        if before["revoked_at"] is not None:
            return TokenView.of(before)
        after = await conn.fetchrow(f"UPDATE api_tokens SET revoked_at = now(), revoked_by = $2 WHERE id = $1"
                                    f" RETURNING {_COLUMNS}", token_id, caller.user)
        await _audit(request, "token.revoke", caller, after, _view(before), _view(after), conn)
    request.app.state.identity.forget_token(token_id)
    return TokenView.of(after)
