"""The RS256 keys the gateway signs the services' access tokens with, their JWKS, and their rotation.

- Keys live in `signing_keys` (migration 0002): the private key only as a Fernet token under
  AVATAR_SECRETS_KEY (services/kit/secrets.py), the public part as a JWK whose `kid` is its RFC 7638
  thumbprint. One key is active; a gateway starting with none makes one (an advisory lock and a unique
  index make it exactly one however many start together).
- `GET /api/auth/jwks.json` (public) publishes the active key and the keys retired less than
  AVATAR_SIGNING_KEY_OVERLAP_SECONDS ago, so a token signed just before a rotation verifies until it
  expires. The services fetch it (services/kit/jwks.py).
- `POST /api/auth/keys/rotate` (admin) or `python -m services.gateway.signing rotate` makes a new active key
  and retires the old one now. Every replica reloads the keys every RELOAD_SECONDS, so the others follow.
- `Signer.access_token(user, role)` runs on every proxied request and is synchronous: a token is signed
  once per (user, role) and reused until less than a third of its life is left (an RSA signature costs
  about a millisecond, the proxy's whole budget).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import getpass
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import RSAAlgorithm
from pydantic import BaseModel

from services.gateway.identity import AdminCaller
from services.kit.auth import ROLES
from services.kit.db import advisory_lock_key, create_pool
from services.kit.secrets import SecretCipher, cipher_for
from services.kit.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

KEY_BITS = 2048
RELOAD_SECONDS = 30.0          # how stale a replica's view of the keys may get
JWKS_FRESH_SECONDS = 5.0       # the JWKS route reloads a view older than this (a rotation on another replica)
JWKS_MAX_AGE_SECONDS = 60      # Cache-Control of the JWKS
MAX_CACHED_TOKENS = 10_000     # (user, role) pairs whose signed token is kept
SCHEMA = "gateway"
_LOCK = advisory_lock_key("signing-keys", SCHEMA)
# JWK members that carry private material (RFC 7518 §6.3.2): never published, never answered
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


# ---------------------------------------------------------------- pure rules

def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of an RSA key: its kid."""
    canonical = json.dumps({"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class NewKey:
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]


def new_key() -> NewKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    public = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk = {"kty": "RSA", "n": public["n"], "e": public["e"]}
    kid = thumbprint(jwk)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return NewKey(kid, pem, {**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    public_jwk: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None

    @property
    def active(self) -> bool:
        return self.activated_at is not None and self.retired_at is None

    def published(self, now: datetime, overlap_seconds: float) -> bool:
        """In the JWKS: active (or made but not yet active), or retired less than the overlap ago."""
        return self.retired_at is None or (now - self.retired_at).total_seconds() < overlap_seconds

    def state(self, now: datetime, overlap_seconds: float) -> str:
        if self.active:
            return "active"
        if self.activated_at is None:
            return "pending"
        return "retired" if self.published(now, overlap_seconds) else "expired"


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """The JWK without any private member, whatever a row holds."""
    return {name: value for name, value in jwk.items() if name not in PRIVATE_MEMBERS}


def renew_at(issued_at: float, ttl_seconds: float) -> float:
    """When a cached token is re-signed: once less than a third of its life is left."""
    return issued_at + ttl_seconds * 2 / 3


# ---------------------------------------------------------------- the signer

_COLUMNS = "kid, public_jwk, created_at, activated_at, retired_at"
_ACTIVE = "activated_at IS NOT NULL AND retired_at IS NULL"


def _info(row: asyncpg.Record) -> KeyInfo:
    return KeyInfo(row["kid"], row["public_jwk"], row["created_at"], row["activated_at"], row["retired_at"])


Audit = Callable[[asyncpg.Connection, str | None, str], Awaitable[None]]


class Signer:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool, self.settings = pool, settings
        self._cipher: SecretCipher = cipher_for(settings)
        self._ttl: int = getattr(settings, "access_token_ttl_seconds", 300)
        self.overlap_seconds: int = getattr(settings, "signing_key_overlap_seconds", 900)
        self._keys: list[KeyInfo] = []
        self._active: tuple[str, Any] | None = None   # kid, private key (cryptography object)
        self._loaded_at = -math.inf                   # monotonic: when the keys were last read
        self._tried_at = -math.inf                    # when a read last started, successful or not
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._reload_lock = asyncio.Lock()
        self._reloading: asyncio.Task | None = None
        self._refresher: asyncio.Task | None = None

    # -- lifecycle

    async def start(self) -> None:
        await self.reload()
        if self._active is None:
            await self._ensure_active()
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="signing-keys-reload")

    async def aclose(self) -> None:
        for task in (self._refresher, self._reloading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._refresher = self._reloading = None

    async def __aenter__(self) -> "Signer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _refresh_forever(self) -> None:
        while not self.pool.is_closing():
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.reload()
            except Exception as exc:  # the keys in memory keep signing; the next round tries again
                if self.pool.is_closing():
                    return
                log.warning("signing keys not reloaded (%s: %s)", type(exc).__name__, exc)

    # -- keys

    @property
    def active_kid(self) -> str | None:
        return self._active[0] if self._active else None

    async def reload(self) -> None:
        """Read the keys; a changed active key is decrypted and cached tokens of the old one dropped."""
        async with self._reload_lock:
            self._tried_at = time.monotonic()
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(f"SELECT {_COLUMNS}, CASE WHEN {_ACTIVE} THEN private_key END AS private_key "
                                        "FROM signing_keys ORDER BY created_at DESC, kid")
            keys = [_info(row) for row in rows]
            active = next((row for row in rows if row["private_key"] is not None), None)
            if active is None:
                self._active = None
            elif active["kid"] != self.active_kid:
                self._active = (active["kid"], self._private_key(active["kid"], active["private_key"]))
                self._tokens.clear()  # new tokens carry the new kid at once
                log.info("signing with key %s", active["kid"])
            self._keys, self._loaded_at = keys, time.monotonic()

    def _private_key(self, kid: str, stored: str) -> Any:
        try:
            pem = self._cipher.decrypt(stored.encode())
        except ValueError:
            raise RuntimeError(f"signing key {kid} does not decrypt under AVATAR_SECRETS_KEY (another key?); "
                               "restore the key or rotate with `python -m services.gateway.signing rotate`") from None
        return serialization.load_pem_private_key(pem.encode(), password=None)

    async def reload_if_older(self, seconds: float) -> None:
        """Reload a view older than `seconds`; a failed read is retried no sooner either (PostgreSQL away
        must not make every JWKS request wait for a connection)."""
        if time.monotonic() - max(self._loaded_at, self._tried_at) <= seconds:
            return
        try:
            await self.reload()
        except (OSError, asyncpg.PostgresError) as exc:  # the keys in memory still answer
            log.warning("signing keys not reloaded (%s: %s)", type(exc).__name__, exc)

    async def _ensure_active(self) -> None:
        """Make an active key unless another gateway just did: one key, however many start at once."""
        key = await asyncio.to_thread(new_key)  # ~100 ms of prime search, off the loop
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            if await conn.fetchval(f"SELECT kid FROM signing_keys WHERE {_ACTIVE}") is None:
                await self._insert(conn, key)
                log.info("made signing key %s (there was no active one)", key.kid)
        await self.reload()

    async def _insert(self, conn: asyncpg.Connection, key: NewKey) -> None:
        await conn.execute("INSERT INTO signing_keys (kid, private_key, public_jwk, activated_at) "
                           "VALUES ($1, $2, $3, now())",
                           key.kid, self._cipher.encrypt(key.private_pem).decode(), key.public_jwk)

    async def rotate(self, audit: Audit | None = None) -> tuple[str, str | None]:
        """A new active key, the old one retired now (still published for the overlap): (new kid, old kid).
        `audit(conn, old, new)` records the decision in the same transaction."""
        key = await asyncio.to_thread(new_key)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            old = await conn.fetchval(f"UPDATE signing_keys SET retired_at = now() WHERE {_ACTIVE} RETURNING kid")
            await self._insert(conn, key)
            if audit is not None:
                await audit(conn, old, key.kid)
        log.info("rotated signing keys: %s active, %s retired", key.kid, old)
        await self.reload()
        return key.kid, old

    def published(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or datetime.now(timezone.utc)
        return [public_jwk(key.public_jwk) for key in self._keys if key.published(now, self.overlap_seconds)]

    async def history(self) -> list[KeyInfo]:
        async with self.pool.acquire() as conn:
            return [_info(row) for row in await conn.fetch(
                f"SELECT {_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid")]

    # -- tokens

    def access_token(self, user: str, role: str) -> str:
        """A token the services accept for this caller, signed at most once per two thirds of its life."""
        now = time.time()
        cached = self._tokens.get((user, role))
        if cached is not None and now < cached[1]:
            return cached[0]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if self._active is None:
            raise RuntimeError("the signer has no active key (not started?)")
        self._reload_soon()
        kid, private = self._active
        issued = int(now)
        token = jwt.encode({"sub": user, "role": role, "iss": self.settings.jwt_issuer, "iat": issued,
                            "exp": issued + self._ttl}, private, algorithm="RS256", headers={"kid": kid})
        if len(self._tokens) >= MAX_CACHED_TOKENS:
            del self._tokens[next(iter(self._tokens))]  # the oldest entry
        self._tokens[(user, role)] = (token, renew_at(issued, self._ttl))
        return token

    def _reload_soon(self) -> None:
        """A background reload when the view is stale and the refresher did not run (it died, or was never
        started): the token being signed now still uses the key in memory."""
        if time.monotonic() - self._loaded_at <= 2 * RELOAD_SECONDS:
            return
        if self._reloading is not None and not self._reloading.done():
            return
        try:
            self._reloading = asyncio.get_running_loop().create_task(self.reload_if_older(RELOAD_SECONDS))
        except RuntimeError:
            pass  # no loop (a synchronous caller): nothing to schedule


def signer_of(request: Request) -> Signer:
    return request.app.state.signer


# ---------------------------------------------------------------- routes

class SigningKeyView(BaseModel):
    kid: str
    state: str  # active | pending | retired (still published) | expired (no longer published)
    published: bool
    public_jwk: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class Rotated(BaseModel):
    kid: str
    retired_kid: str | None


@router.get("/api/auth/jwks.json", summary="The public keys the gateway's access tokens are signed with",
            tags=["auth"])
async def jwks(request: Request) -> JSONResponse:
    signer = signer_of(request)
    await signer.reload_if_older(JWKS_FRESH_SECONDS)  # at most one query per interval, whatever the traffic
    return JSONResponse({"keys": signer.published()},
                        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"})


@router.get("/api/auth/keys", response_model=list[SigningKeyView], summary="Signing keys (admin)", tags=["auth"])
async def list_keys(request: Request, caller: AdminCaller) -> list[SigningKeyView]:
    signer = signer_of(request)
    now = datetime.now(timezone.utc)
    overlap = signer.overlap_seconds
    return [SigningKeyView(kid=key.kid, state=key.state(now, overlap), published=key.published(now, overlap),
                           public_jwk=public_jwk(key.public_jwk), created_at=key.created_at,
                           activated_at=key.activated_at, retired_at=key.retired_at)
            for key in await signer.history()]


@router.post("/api/auth/keys/rotate", status_code=201, response_model=Rotated,
             summary="Sign with a new key; the old one stays published for the overlap (admin)", tags=["auth"])
async def rotate_keys(request: Request, caller: AdminCaller) -> Rotated:
    async def audit(conn: asyncpg.Connection, old: str | None, new: str) -> None:
        await request.app.state.audit.decision(
            action="signing_key.rotate", actor=caller, target_type="signing_key", target_id=new,
            before={"kid": old} if old else None, after={"kid": new}, comment=None, outcome="ok",
            request=request, conn=conn)

    new, old = await signer_of(request).rotate(audit)
    return Rotated(kid=new, retired_kid=old)


# ---------------------------------------------------------------- CLI

async def _rotate_from_cli(settings: Settings) -> int:
    url = settings.postgres_admin_url or settings.postgres_url
    pool = await create_pool(url, SCHEMA, max_size=2)
    try:
        signer = Signer(pool, settings)
        operator = f"cli:{getpass.getuser()}"

        async def audit(conn: asyncpg.Connection, old: str | None, new: str) -> None:
            from services.gateway.audit import AuditLog  # the gateway's own audit log, no request behind it
            await AuditLog(pool, settings).decision(
                action="signing_key.rotate", actor=None, actor_user=operator, target_type="signing_key",
                target_id=new, before={"kid": old} if old else None, after={"kid": new}, comment=None,
                outcome="ok", request=None, conn=conn)

        try:
            new, old = await signer.rotate(audit)
        except asyncpg.UndefinedTableError:
            print("no signing_keys table in the gateway's schema: start the gateway once (it migrates)",
                  file=sys.stderr)
            return 1
    finally:
        await pool.close()
    overlap = getattr(settings, "signing_key_overlap_seconds", 900)
    print(f"active signing key: {new}" + (f" (retired {old}; published for {overlap} s more)" if old else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    from services.gateway.settings import GatewaySettings

    parser = argparse.ArgumentParser(prog="python -m services.gateway.signing",
                                     description="The gateway's token signing keys")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rotate", help="make a new active key; the old one stays published for the overlap")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return asyncio.run(_rotate_from_cli(GatewaySettings(service=SCHEMA)))


if __name__ == "__main__":
    sys.exit(main())
