"""Local login, the caller's own account (/api/auth/...) and the users admin (/api/users..., AU-02).

Every change runs in one transaction with its audit record (request.app.state.audit.decision with conn=),
then the process forgets what it cached about that user, so its next request sees the change at once
(other gateway processes within identity_cache_seconds).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.gateway import accounts, passwords, sessions
from services.gateway.identity import AdminCaller, AnyCaller, Caller
from services.gateway.throttle import LoginThrottle, Pause
from services.kit.auth import MAX_SUBJECT, Role, Subject
from services.kit.errors import Forbidden, Invalid
from services.kit.paging import Page, Paging

router = APIRouter(tags=["accounts"])
LOGIN_FAILED = "wrong user or password"
DisplayName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Email = Annotated[str, Field(max_length=320, pattern=accounts.EMAIL.pattern)]
Password = Annotated[str, Field(min_length=1, max_length=accounts.MAX_PASSWORD)]


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT)]
    password: Password


class LoggedIn(BaseModel):
    user: str
    display_name: str
    role: Role
    csrf_token: str = Field(description="send it back in the CSRF header (X-CSRF-Token) on every state-changing request")


class Me(BaseModel):
    user: str
    display_name: str
    email: str | None
    role: Role
    via: str
    kind: str | None = Field(description="person or service; None for a JWT caller without an account")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: Password
    new: Password


class PasswordSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Password


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Subject = Field(description="the user's id: the subject of the tokens the services see; never changes")
    display_name: DisplayName
    email: Email | None = None
    role: Role
    kind: Literal["person", "service"] = "person"
    password: Password | None = Field(default=None, description="for local login; none for a service account")


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName | None = None
    email: Email | None = None


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class UserView(BaseModel):
    id: str
    display_name: str
    email: str | None
    role: Role
    kind: str
    active: bool
    login: Literal["password", "oidc", "none"]
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    deactivated_at: datetime | None
    deactivated_by: str | None

    @classmethod
    def of(cls, row: Any) -> "UserView":
        login = "oidc" if row["idp_issuer"] else "password" if row["has_password"] else "none"
        return cls(login=login, **{k: row[k] for k in ("id", "display_name", "email", "role", "kind", "active",
                                                       "created_at", "created_by", "updated_at", "updated_by",
                                                       "deactivated_at", "deactivated_by")})


def _pool(request: Request):
    return request.app.state.platform.pool


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _audit(request: Request, action: str, actor: Caller | None, target: str, before: Any, after: Any, *,
                 conn=None, outcome: str = "ok", comment: str | None = None, actor_user: str | None = None) -> None:
    await request.app.state.audit.decision(
        action=action, actor=actor, target_type="user", target_id=target,
        before=accounts.audit_view(before) if before is not None and not isinstance(before, dict) else before,
        after=accounts.audit_view(after) if after is not None and not isinstance(after, dict) else after,
        comment=comment, outcome=outcome, request=request, conn=conn, actor_user=actor_user)


def _self_or_admin(caller: Caller, user_id: str) -> None:
    if caller.user != user_id and not caller.is_admin:
        raise Forbidden(f"only an admin or '{user_id}' themselves may do this")


# ------------------------------------------------------------------ login

@router.post("/api/auth/login", response_model=LoggedIn, summary="Log in with a password (local accounts)",
             responses={401: {"description": "wrong user or password, or deactivated"},
                        429: {"description": "too many failed logins; see Retry-After"}})
async def login(body: Login, request: Request, response: Response) -> LoggedIn:
    throttle = LoginThrottle.of(request.app.state.redis, request.app.state.identity.settings)
    address = _address(request)
    # the attempt counts as a failure from before the password is checked (taken back if it is right), so
    # concurrent guesses cannot all slip past the limit while argon2 runs
    reserved = await throttle.reserve(body.user, address)
    if isinstance(reserved, Pause):
        await _audit(request, "auth.login", None, body.user, None, None, outcome="refused",
                     comment=f"throttled per {reserved.scope}", actor_user=body.user)
        raise HTTPException(429, f"too many failed logins for this {reserved.scope};"
                                 f" try again in {reserved.retry_after} s",
                            headers={"Retry-After": str(reserved.retry_after)})
    async with _pool(request).acquire() as conn:
        row, stored = await accounts.password_hash(conn, body.user)
    checked = await passwords.verify_password(stored, body.password)
    if not checked.ok or not row["active"]:
        # a deactivated user is told so only once the password proved who they are
        message = LOGIN_FAILED if not checked.ok else f"user '{body.user}' is deactivated"
        await _audit(request, "auth.login", None, body.user, None, None, outcome="refused", comment=message,
                     actor_user=body.user)
        raise HTTPException(401, message)
    await throttle.succeeded(body.user, reserved)
    if checked.new_hash:
        await accounts.rehash(_pool(request), body.user, checked.new_hash)
    user = accounts.to_user(row)
    csrf = await sessions.open_session(request, response, user)
    await _audit(request, "auth.login", Caller(user=user.id, role=user.role, via="session"), user.id, None, None)
    return LoggedIn(user=user.id, display_name=user.display_name, role=user.role, csrf_token=csrf)


@router.post("/api/auth/logout", status_code=204, summary="End this browser session")
async def logout(caller: AnyCaller, request: Request) -> Response:
    response = Response(status_code=204)
    await sessions.close_session(request, response, caller.session_id)
    if caller.session_id is not None:
        await _audit(request, "auth.logout", caller, caller.user, None, None)
    return response


@router.get("/api/auth/me", response_model=Me, summary="Who am I")
async def me(caller: AnyCaller, request: Request) -> Me:
    async with _pool(request).acquire() as conn:
        row = await accounts.get(conn, caller.user)
    if row is None:  # a platform JWT (local CLI) for a user without an account
        return Me(user=caller.user, display_name=caller.user, email=None, role=caller.role, via=caller.via, kind=None)
    return Me(user=row["id"], display_name=row["display_name"], email=row["email"], role=caller.role,
              via=caller.via, kind=row["kind"])


@router.put("/api/auth/me/password", status_code=204, summary="Change my password",
            responses={401: {"description": "the current password is wrong"}, 429: {"description": "throttled"}})
async def change_my_password(body: PasswordChange, caller: AnyCaller, request: Request) -> Response:
    settings = request.app.state.identity.settings
    throttle = LoginThrottle.of(request.app.state.redis, settings)
    reserved = await throttle.reserve(caller.user, _address(request))  # counted until the password proves right
    if isinstance(reserved, Pause):
        raise HTTPException(429, f"too many failed attempts; try again in {reserved.retry_after} s",
                            headers={"Retry-After": str(reserved.retry_after)})
    async with _pool(request).acquire() as conn:
        row, stored = await accounts.password_hash(conn, caller.user)
    if row is None or stored is None:
        await throttle.release(reserved)
        raise Invalid(f"'{caller.user}' has no local password to change", code="no_password")
    if not (await passwords.verify_password(stored, body.current)).ok:
        raise HTTPException(401, "the current password is wrong")
    await throttle.release(reserved)
    accounts.check_password(body.new, min_length=settings.min_password_length, user_id=caller.user)
    new_hash = await passwords.hash_password(body.new)
    async with _pool(request).acquire() as conn, conn.transaction():
        await accounts.set_password(conn, caller.user, new_hash, by=caller.user, keep_session=caller.session_id)
        await _audit(request, "user.password_change", caller, caller.user, None, {"password": "changed"}, conn=conn)
    request.app.state.identity.forget_user(caller.user)
    return Response(status_code=204)


# ------------------------------------------------------------------ users admin

@router.get("/api/users", response_model=Page[UserView], summary="List users (admin)")
async def list_users(caller: AdminCaller, request: Request, paging: Paging, role: Role | None = None,
                     active: bool | None = None,
                     q: Annotated[str | None, Query(max_length=200, description="in id, name or email")] = None):
    async with _pool(request).acquire() as conn:
        rows, total = await accounts.search(conn, role=role, active=active, q=q, page=paging)
    return Page.of([UserView.of(row) for row in rows], total, paging)


@router.post("/api/users", status_code=201, response_model=UserView, summary="Create a user (admin)")
async def create_user(body: NewUser, caller: AdminCaller, request: Request) -> UserView:
    settings = request.app.state.identity.settings
    hashed = None
    if body.password is not None:
        if body.kind == "service":
            raise Invalid("a service account has no password: it calls with API tokens", code="service_password")
        accounts.check_password(body.password, min_length=settings.min_password_length, user_id=body.id)
        hashed = await passwords.hash_password(body.password)
    async with _pool(request).acquire() as conn, conn.transaction():
        row = await accounts.create(conn, user_id=body.id, display_name=body.display_name, email=body.email,
                                    role=body.role, kind=body.kind, password_hash=hashed, by=caller.user)
        await _audit(request, "user.create", caller, body.id, None, row, conn=conn)
    request.app.state.identity.forget_user(body.id)  # a JWT caller of that name was cached as having no account
    return UserView.of(row)


@router.get("/api/users/{user_id}", response_model=UserView, summary="One user (admin or the user)")
async def get_user(user_id: str, caller: AnyCaller, request: Request) -> UserView:
    _self_or_admin(caller, user_id)
    async with _pool(request).acquire() as conn:
        return UserView.of(await accounts.require(conn, user_id))


@router.patch("/api/users/{user_id}", response_model=UserView, summary="Change name or email (admin or the user)")
async def update_user(user_id: str, body: ProfileChange, caller: AnyCaller, request: Request) -> UserView:
    _self_or_admin(caller, user_id)
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    if changes.get("display_name", "") is None:
        raise Invalid("display_name may not be null")
    async with _pool(request).acquire() as conn, conn.transaction():
        before, after = await accounts.update_profile(conn, user_id, changes=changes, by=caller.user)
        if changes:
            await _audit(request, "user.update", caller, user_id, before, after, conn=conn)
    return UserView.of(after)


@router.put("/api/users/{user_id}/role", response_model=UserView, summary="Change a user's role (admin)",
            responses={409: {"description": "it would leave no active admin"}})
async def set_role(user_id: str, body: RoleChange, caller: AdminCaller, request: Request) -> UserView:
    async with _pool(request).acquire() as conn, conn.transaction():
        before, after = await accounts.set_role(conn, user_id, body.role, by=caller.user)
        await _audit(request, "user.role", caller, user_id, before, after, conn=conn)
    request.app.state.identity.forget_user(user_id)
    return UserView.of(after)


@router.post("/api/users/{user_id}/deactivate", response_model=UserView,
             summary="Deactivate a user: their sessions end, their tokens are refused (admin)",
             responses={409: {"description": "already deactivated, or the last active admin"}})
async def deactivate_user(user_id: str, caller: AdminCaller, request: Request) -> UserView:
    async with _pool(request).acquire() as conn, conn.transaction():
        before, after = await accounts.deactivate(conn, user_id, by=caller.user)
        await _audit(request, "user.deactivate", caller, user_id, before, after, conn=conn)
    request.app.state.identity.forget_user(user_id)
    return UserView.of(after)


@router.post("/api/users/{user_id}/reactivate", response_model=UserView, summary="Reactivate a user (admin)")
async def reactivate_user(user_id: str, caller: AdminCaller, request: Request) -> UserView:
    async with _pool(request).acquire() as conn, conn.transaction():
        before, after = await accounts.reactivate(conn, user_id, by=caller.user)
        await _audit(request, "user.reactivate", caller, user_id, before, after, conn=conn)
    request.app.state.identity.forget_user(user_id)
    return UserView.of(after)


@router.put("/api/users/{user_id}/password", status_code=204,
            summary="Set a user's password (admin); the user's open sessions end")
async def set_password(user_id: str, body: PasswordSet, caller: AdminCaller, request: Request) -> Response:
    settings = request.app.state.identity.settings
    accounts.check_password(body.password, min_length=settings.min_password_length, user_id=user_id)
    hashed = await passwords.hash_password(body.password)
    keep = caller.session_id if caller.user == user_id else None
    async with _pool(request).acquire() as conn, conn.transaction():
        await accounts.set_password(conn, user_id, hashed, by=caller.user, keep_session=keep)
        await _audit(request, "user.password_set", caller, user_id, None, {"password": "set"}, conn=conn)
    request.app.state.identity.forget_user(user_id)
    return Response(status_code=204)
