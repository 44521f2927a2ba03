"""Who calls: a browser session (cookie + CSRF token), an API token (`avt_...`) or a platform JWT.

The proxy resolves every request through `GatewayIdentity.resolve`, so the answer is cached in the
process for `identity_cache_seconds`: a cache hit costs a SHA-256 and a dict lookup, no database round
trip. A deactivation, revocation or role change is therefore seen by every gateway process within that
time, and at once by the process that made it (it forgets its own entries for that user or token).
Every kind of caller acts with at most the account's current role: a session with it, an API token and a
JWT with the lower of their own role and it (a JWT of a user without an account keeps its own).

Only hashes of secrets are stored: the session cookie, its CSRF token and API tokens are kept as SHA-256
(they are long random strings, so a fast hash is enough; passwords are argon2, services/gateway/passwords.py).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, replace

import asyncpg
from fastapi import HTTPException, Request, Response
from pydantic import TypeAdapter, ValidationError

from services.gateway import accounts, passwords
from services.gateway.accounts import Deactivated, User
from services.gateway.identity import Caller, at_most
from services.kit.auth import Subject, verify_token
from services.kit.errors import Invalid

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PREFIX = "avt_"
TOUCH_EVERY_SECONDS = 60.0   # last_seen_at / last_used_at are written at most this often
MAX_CACHED = 50_000          # per kind; past it, stale entries go first, then all
CSRF_MESSAGE = "CSRF token missing or wrong"
_BEARER = {"WWW-Authenticate": "Bearer"}


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers=_BEARER)


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user: str
    role: str
    active: bool
    csrf_hash: bytes
    expires_at: float   # epoch seconds
    last_seen: float
    revoked: bool


@dataclass(frozen=True)
class TokenRecord:
    id: str
    user: str
    role: str           # the token's own role
    owner_role: str     # the owner's current role
    active: bool
    expires_at: float | None
    last_used: float | None
    revoked: bool


def session_refusal(record: SessionRecord, now: float, idle_seconds: float) -> str | None:
    """Why a session no longer lets its holder in (None: it does)."""
    if record.revoked:
        return "session ended: log in again"
    if now >= record.expires_at:
        return "session expired: log in again"
    if now - record.last_seen > idle_seconds:
        return "session expired after inactivity: log in again"
    if not record.active:
        return f"user '{record.user}' is deactivated"
    return None


def token_refusal(record: TokenRecord, now: float) -> str | None:
    if record.revoked:
        return f"API token {record.id} is revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return f"API token {record.id} expired"
    if not record.active:
        return f"user '{record.user}' is deactivated"
    return None


def _expiry(token: str) -> float:
    """The `exp` of a JWT that verify_token has just accepted (so it is well-formed and has one)."""
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


def csrf_ok(sent: str | None, expected_hash: bytes) -> bool:
    return bool(sent) and hmac.compare_digest(secret_hash(sent), expected_hash)


class _Cache(dict):
    """key -> (time looked up, value); entries older than `ttl` are looked up again."""

    def __init__(self, ttl: float) -> None:
        super().__init__()
        self.ttl = ttl

    def fresh(self, key, now: float):
        hit = self.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, key, value, now: float) -> None:
        if self.ttl <= 0:
            return
        if len(self) >= MAX_CACHED:
            for stale in [k for k, (at, _) in self.items() if now - at >= self.ttl]:
                del self[stale]
            if len(self) >= MAX_CACHED:
                self.clear()
        self[key] = (now, value)


_SESSION_SQL = ("SELECT s.id, s.user_id, s.csrf_hash, s.expires_at, s.last_seen_at, s.revoked_at IS NOT NULL AS revoked,"
                " u.role, u.active FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1")
_TOKEN_SQL = ("SELECT t.id, t.user_id, t.role, t.expires_at, t.last_used_at, t.revoked_at IS NOT NULL AS revoked,"
              " u.role AS owner_role, u.active FROM api_tokens t JOIN users u ON u.id = t.user_id"
              " WHERE t.secret_hash = $1")


class GatewayIdentity:
    def __init__(self, pool: asyncpg.Pool, settings) -> None:
        self.pool, self.settings = pool, settings
        ttl = settings.identity_cache_seconds
        self._sessions, self._tokens, self._users, self._jwts = _Cache(ttl), _Cache(ttl), _Cache(ttl), _Cache(ttl)

    async def resolve(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if header:
            scheme, _, credentials = header.partition(" ")
            credentials = credentials.strip()
            if scheme.lower() != "bearer" or not credentials:
                raise _unauthorized("the Authorization header must be 'Bearer <token>'")
            if credentials.startswith(TOKEN_PREFIX):
                return await self._api_token(credentials)
            return await self._jwt(credentials)
        secret = request.cookies.get(self.settings.session_cookie)
        if secret:
            return await self._session(request, secret)
        raise _unauthorized("log in or send a bearer token")

    # ---------------------------------------------------------------- sessions

    async def _session(self, request: Request, secret: str) -> Caller:
        key, now, clock = secret_hash(secret), time.time(), time.monotonic()
        record: SessionRecord | None = self._sessions.fresh(key, clock)
        if record is None:
            row = await self.pool.fetchrow(_SESSION_SQL, key)
            if row is None:
                raise _unauthorized("unknown session: log in again")
            record = SessionRecord(row["id"], row["user_id"], row["role"], row["active"], row["csrf_hash"],
                                   row["expires_at"].timestamp(), row["last_seen_at"].timestamp(), row["revoked"])
            self._sessions.put(key, record, clock)
        refusal = session_refusal(record, now, self.settings.session_idle_seconds)
        if refusal:
            raise _unauthorized(refusal)
        if request.method not in SAFE_METHODS and not csrf_ok(request.headers.get(self.settings.csrf_header),
                                                               record.csrf_hash):
            raise HTTPException(403, CSRF_MESSAGE)
        if now - record.last_seen >= TOUCH_EVERY_SECONDS:
            touched = replace(record, last_seen=now)
            if key in self._sessions:
                self._sessions[key] = (self._sessions[key][0], touched)
            await self.pool.execute("UPDATE sessions SET last_seen_at = now() WHERE id = $1", record.id)
        return Caller(user=record.user, role=record.role, via="session", session_id=record.id)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- API tokens

    async def _api_token(self, secret: str) -> Caller:
        key, now, clock = secret_hash(secret), time.time(), time.monotonic()
        record: TokenRecord | None = self._tokens.fresh(key, clock)
        if record is None:
            row = await self.pool.fetchrow(_TOKEN_SQL, key)
            if row is None:
                raise _unauthorized("unknown API token")
            record = TokenRecord(row["id"], row["user_id"], row["role"], row["owner_role"], row["active"],
                                 row["expires_at"].timestamp() if row["expires_at"] else None,
                                 row["last_used_at"].timestamp() if row["last_used_at"] else None, row["revoked"])
            self._tokens.put(key, record, clock)
        refusal = token_refusal(record, now)
        if refusal:
            raise _unauthorized(refusal)
        if record.last_used is None or now - record.last_used >= TOUCH_EVERY_SECONDS:
            touched = replace(record, last_used=now)
            if key in self._tokens:
                self._tokens[key] = (self._tokens[key][0], touched)
            await self.pool.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", record.id)
        return Caller(user=record.user, role=at_most(record.role, record.owner_role),  # type: ignore[arg-type]
                      via="api_token", token_id=record.id)

    # ---------------------------------------------------------------- JWTs (local CLI tokens, an IdP's)

    async def _jwt(self, token: str) -> Caller:
        key, now, clock = secret_hash(token), time.time(), time.monotonic()
        verified = self._jwts.fresh(key, clock)
        if verified is None or now >= verified[2]:
            # verifying costs ~0.1 ms (PyJWT): a token seen again within the cache time is trusted until its exp
            principal = verify_token(self.settings, token)
            verified = (principal.user, principal.role, _expiry(token))
            self._jwts.put(key, verified, clock)
        user, role, _ = verified
        # (active, role) of the user's account, (None, None) without one: a JWT acts with at most the
        # account's *current* role, so a demotion reaches a JWT minted before it, as it does a session
        account = self._users.fresh(user, clock)
        if account is None:
            found = await self.pool.fetchrow("SELECT active, role FROM users WHERE id = $1", user)
            account = (None, None) if found is None else (found["active"], found["role"])
            self._users.put(user, account, clock)
        active, account_role = account
        if active is False:
            raise _unauthorized(f"user '{user}' is deactivated")
        if account_role is not None:
            role = at_most(role, account_role)
        return Caller(user=user, role=role, via="jwt")  # type: ignore[arg-type]

    # ---------------------------------------------------------------- changes seen at once here

    def forget_user(self, user_id: str) -> None:
        """The user changed (deactivated, reactivated, new role, sessions ended): look everything up again."""
        self._users.pop(user_id, None)
        for cache in (self._sessions, self._tokens):
            for key in [k for k, (_, record) in cache.items() if record.user == user_id]:
                cache.pop(key, None)

    def forget_session(self, session_id: str) -> None:
        for key in [k for k, (_, record) in self._sessions.items() if record.id == session_id]:
            self._sessions.pop(key, None)

    def forget_token(self, token_id: str) -> None:
        for key in [k for k, (_, record) in self._tokens.items() if record.id == token_id]:
            self._tokens.pop(key, None)


# ------------------------------------------------------------------ opening and closing a session

def _set_cookies(response: Response, settings, secret: str, csrf: str) -> None:
    secure = settings.secure_cookies
    response.set_cookie(settings.session_cookie, secret, max_age=settings.session_ttl_seconds, path="/",
                        httponly=True, samesite="lax", secure=secure)
    # read by the console's JavaScript and sent back in settings.csrf_header: a page on another site can
    # neither read it nor make the browser send it (SameSite=Strict)
    response.set_cookie(settings.csrf_cookie, csrf, max_age=settings.session_ttl_seconds, path="/",
                        httponly=False, samesite="strict", secure=secure)


def clear_cookies(response: Response, settings) -> None:
    secure = settings.secure_cookies
    response.delete_cookie(settings.session_cookie, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(settings.csrf_cookie, path="/", httponly=False, samesite="strict", secure=secure)


async def open_session(request: Request, response: Response, user: User) -> str:
    """Log `user` in: a new session, its cookie and CSRF cookie on `response`; returns the CSRF token."""
    if not user.active:
        raise Deactivated(user.id)
    identity: GatewayIdentity = request.app.state.identity
    settings = identity.settings
    secret, csrf = new_secret(), new_secret()
    address = request.client.host if request.client else None
    agent = (request.headers.get("user-agent") or "")[:500] or None
    await identity.pool.execute(
        "INSERT INTO sessions (id, secret_hash, csrf_hash, user_id, expires_at, address, user_agent)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)",
        "ses_" + secrets.token_urlsafe(12), secret_hash(secret), secret_hash(csrf), user.id,
        float(settings.session_ttl_seconds), address, agent)
    _set_cookies(response, settings, secret, csrf)
    return csrf


async def close_session(request: Request, response: Response, session_id: str | None) -> None:
    identity: GatewayIdentity = request.app.state.identity
    if session_id is not None:
        await identity.pool.execute("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                                    session_id)
        identity.forget_session(session_id)
    clear_cookies(response, identity.settings)


async def prune_sessions(pool: asyncpg.Pool, *, older_than_days: float = 30.0) -> int:
    """Delete sessions that ended (expired or revoked) more than `older_than_days` ago; returns how many.
    Until then they stay for the record of who was logged in from where."""
    result = await pool.execute(
        "DELETE FROM sessions WHERE least(expires_at, coalesce(revoked_at, expires_at))"
        " < now() - make_interval(secs => $1)", older_than_days * 86400.0)
    return int(result.split()[-1])


# ------------------------------------------------------------------ the first admin

async def bootstrap_admin(pool: asyncpg.Pool, settings) -> None:
    """Create settings.bootstrap_admin as an admin when no such user exists. Without a password (allowed
    only with AVATAR_ENV=local) one is generated and logged once."""
    await asyncio.to_thread(passwords.warm)
    user_id = settings.bootstrap_admin
    if not user_id:
        return
    try:
        TypeAdapter(Subject).validate_python(user_id)
    except ValidationError:
        raise ValueError(f"AVATAR_BOOTSTRAP_ADMIN {user_id!r} is not a valid user id") from None
    if await pool.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
        return
    password, generated = settings.bootstrap_admin_password, False
    if not password:
        if settings.env != "local":
            raise ValueError("AVATAR_BOOTSTRAP_ADMIN needs AVATAR_BOOTSTRAP_ADMIN_PASSWORD outside AVATAR_ENV=local")
        password, generated = secrets.token_urlsafe(18), True
    try:
        accounts.check_password(password, min_length=settings.min_password_length, user_id=user_id)
    except Invalid as exc:
        raise ValueError(f"AVATAR_BOOTSTRAP_ADMIN_PASSWORD: {exc.message}") from None
    hashed = await passwords.hash_password(password)
    async with pool.acquire() as conn, conn.transaction():
        created = await conn.fetchrow(
            f"INSERT INTO users (id, display_name, role, kind, password_hash, created_by, updated_by)"
            f" VALUES ($1, $1, 'admin', 'person', $2, 'bootstrap', 'bootstrap') ON CONFLICT (id) DO NOTHING"
            f" RETURNING {accounts.COLUMNS}", user_id, hashed)
        if created:
            await accounts.record_change(conn, action="user.create", user_id=user_id, before=None, after=created,
                                         by="bootstrap")
    if created and generated:
        log.warning("created the first admin '%s' with the generated password %s (shown once; AVATAR_ENV=local)",
                    user_id, password)
    elif created:
        log.info("created the first admin '%s' from AVATAR_BOOTSTRAP_ADMIN", user_id)
