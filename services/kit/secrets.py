"""Secret environment variables: which names are secrets, their values encrypted at rest, and the one way
a value leaves the service that stores it (to the scheduler's runner, when it starts a component).

- A variable is a secret when its owner says so (`{"value": ..., "secret": true}`), or by default when its
  name contains SECRET, TOKEN, PASSWORD, PASSWD or KEY, unless what matches is one of the documented
  non-secret words (`NOT_SECRET`): token counts and tokenizer switches of ML code, database key columns,
  the keyboard. `{"secret": false}` makes any name plain.
- A value is stored only as a Fernet token (`cryptography`: AES-128-CBC + HMAC-SHA256) under
  AVATAR_SECRETS_KEY, in the storing service's own `secret_values` table, one row per version; every change
  is a `secret_changes` row (who, when, which variable and version; never the value) and a log line.
- Nothing else ever carries a value: APIs answer `{"name", "secret": true, "set"}`, events and spec
  snapshots a `SecretRef` (service, owner, version). The scheduler's runner resolves refs when it starts a
  component, through `POST /internal/secrets/resolve` of the storing service, which only the scheduler's
  service token may call.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Iterable, Mapping

import asyncpg
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.spec import SecretRef
from services.kit.auth import require_service
from services.kit.errors import Invalid
from services.kit.metrics import Counter
from services.kit.settings import LOCAL_SECRETS_KEY, Settings

log = logging.getLogger(__name__)

SECRET_WORDS = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY", re.IGNORECASE)
# Matches of SECRET_WORDS that name no secret: removed before the check, so `MAX_NEW_TOKENS`,
# `TOKENIZERS_PARALLELISM` and `PRIMARY_KEY_COLUMN` stay plain while `HF_TOKEN` or `DB_PASSWORD` do not.
NOT_SECRET = re.compile(r"TOKENIZERS?|TOKENS(?![A-Z])|(?:PRIMARY|FOREIGN|PARTITION|SORT|SHARD|CACHE)_KEYS?"
                        r"|KEY_(?:COLUMNS?|FIELDS?)|KEYBOARD|MONKEY", re.IGNORECASE)
SECRETS_RESOLVER = "scheduler"  # the one service identity that may resolve references

CHANGES = Counter("avatar_secret_changes_total", "Secret env var values set or removed", ["action"])
RESOLVED = Counter("avatar_secrets_resolved_total", "Secret references resolved for a component start")


def looks_secret(name: str) -> bool:
    return SECRET_WORDS.search(NOT_SECRET.sub("", name)) is not None


class EnvVarInput(BaseModel):
    """One variable as its owner gives it: `secret` null = by its name; a secret without `value` keeps the
    value it has (or is declared, not set)."""

    model_config = ConfigDict(extra="forbid")
    value: Annotated[str, StringConstraints(max_length=4096)] | None = None
    secret: bool | None = None


EnvValue = Annotated[str, StringConstraints(max_length=4096)] | EnvVarInput


class SecretView(BaseModel):
    """What every API shows of a secret: that it is one and whether it has a value, never the value."""

    name: str
    secret: bool = True
    set: bool
    version: int | None = Field(default=None, description="the value's version (each change makes one)")


@dataclass(frozen=True)
class EnvPlan:
    """What an edit of env vars means: the plain values, the secrets given a new value, the secrets kept
    (as they are) and the names that stopped being secrets."""

    plain: dict[str, str] = field(default_factory=dict)
    new_values: dict[str, str] = field(default_factory=dict)
    kept: dict[str, int | None] = field(default_factory=dict)
    removed: tuple[str, ...] = ()

    @property
    def secret_names(self) -> list[str]:
        return sorted({*self.new_values, *self.kept})


def plan_env(given: Mapping[str, str | EnvVarInput | Mapping[str, Any]],
             current: Mapping[str, int | None] | None = None) -> EnvPlan:
    """Split `given` (name -> value or EnvVarInput) into plain values and secrets; `current` are the
    secrets there are now (name -> version, None: declared, not set)."""
    current = dict(current or {})
    plain: dict[str, str] = {}
    new_values: dict[str, str] = {}
    kept: dict[str, int | None] = {}
    for name, item in given.items():
        item = item if isinstance(item, (str, EnvVarInput)) else EnvVarInput.model_validate(item)
        value, secret = (item, None) if isinstance(item, str) else (item.value, item.secret)
        if secret is None:
            secret = looks_secret(name) or (value is None and name in current)
        if not secret:
            if value is None:
                raise Invalid(f"environment variable {name} is not a secret and has no value", code="env_no_value")
            plain[name] = value
        elif value is not None:
            new_values[name] = value
        else:
            kept[name] = current.get(name)
    removed = tuple(sorted(n for n in current if n not in new_values and n not in kept))
    return EnvPlan(plain, new_values, kept, removed)


# ---------------------------------------------------------------- at rest

class SecretCipher:
    """Fernet under the platform's AVATAR_SECRETS_KEY: authenticated, so a changed ciphertext is refused."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("AVATAR_SECRETS_KEY is not a Fernet key (32 url-safe base64-encoded bytes; "
                             "make one with `python -c 'from cryptography.fernet import Fernet; "
                             "print(Fernet.generate_key().decode())'`)") from exc

    def encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            raise ValueError("a stored secret does not decrypt under AVATAR_SECRETS_KEY (another key?)") from None


def cipher_for(settings: Settings) -> SecretCipher:
    """The cipher of a service that stores secrets; outside local runs the local key is refused."""
    if settings.env != "local" and settings.secrets_key == LOCAL_SECRETS_KEY:
        raise ValueError(f"AVATAR_ENV={settings.env} refuses the local default secrets: set AVATAR_SECRETS_KEY")
    return SecretCipher(settings.secrets_key)


async def store_value(conn: asyncpg.Connection, cipher: SecretCipher, *, owner: str, name: str, value: str,
                      by: str, version: int | None = None) -> int:
    """A new version of the secret `owner`/`name` (the next one, or `version`), audited; its version."""
    version = await conn.fetchval(
        "INSERT INTO secret_values (owner, name, version, ciphertext, set_by)"
        " VALUES ($1, $2, COALESCE($5, (SELECT COALESCE(max(version), 0) + 1 FROM secret_values"
        "                              WHERE owner = $1 AND name = $2)), $3, $4)"
        " ON CONFLICT (owner, name, version) DO NOTHING RETURNING version",
        owner, name, cipher.encrypt(value), by, version)
    if version is None:  # a retried write of the same version: it is there already
        return int(await conn.fetchval("SELECT max(version) FROM secret_values WHERE owner = $1 AND name = $2",
                                       owner, name))
    await _audit(conn, owner, name, version, "set", by)
    return int(version)


async def record_removed(conn: asyncpg.Connection, *, owner: str, name: str, by: str) -> None:
    """A secret no longer in use: audited. Its versions stay, for the spec versions that name them."""
    await _audit(conn, owner, name, None, "removed", by)


async def _audit(conn: asyncpg.Connection, owner: str, name: str, version: int | None, action: str, by: str) -> None:
    await conn.execute("INSERT INTO secret_changes (owner, name, version, action, changed_by)"
                       " VALUES ($1, $2, $3, $4, $5)", owner, name, version, action, by)
    CHANGES.labels(action).inc()
    log.info("secret %s of %s %s by %r (version %s)", name, owner, action, by, version)


class SecretChange(BaseModel):
    name: str
    version: int | None
    action: str
    changed_by: str
    changed_at: datetime


async def changes(conn: asyncpg.Connection, owner: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT name, version, action, changed_by, changed_at FROM secret_changes"
                            " WHERE owner = $1 ORDER BY id", owner)
    return [dict(row) for row in rows]


class SecretValues:
    """The repository a unit of work binds: a service's secret values, written in the unit's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def apply(self, plan: EnvPlan, cipher: SecretCipher | None, *, owner: str, by: str,
                    version: int | None = None) -> dict[str, int | None]:
        """Store the plan's new values (as the next version, or `version`) and audit its removals; the secrets
        as they now are (name -> version)."""
        if plan.new_values and cipher is None:
            raise RuntimeError("this service was built without a secret cipher")
        versions = dict(plan.kept)
        for name, value in sorted(plan.new_values.items()):
            versions[name] = await store_value(self._conn, cipher, owner=owner, name=name, value=value, by=by,
                                               version=version)
        for name in plan.removed:
            await record_removed(self._conn, owner=owner, name=name, by=by)
        return versions


def refs(service: str, owner: str, versions: Mapping[str, int | None]) -> dict[str, SecretRef]:
    """The references a spec or workload carries for the secrets that have a value."""
    return {name: SecretRef(service=service, owner=owner, version=version)
            for name, version in sorted(versions.items()) if version is not None}


def views(versions: Mapping[str, int | None]) -> list[SecretView]:
    return [SecretView(name=name, set=version is not None, version=version) for name, version in sorted(versions.items())]


# ---------------------------------------------------------------- resolving, for the scheduler only

class ResolveItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    owner: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    version: int = Field(ge=1)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="the run the values are for (logged)")
    secrets: list[ResolveItem] = Field(max_length=500)


class ResolvedValue(BaseModel):
    name: str
    owner: str
    version: int
    value: str


class Resolved(BaseModel):
    values: list[ResolvedValue]


async def resolve(conn: asyncpg.Connection, cipher: SecretCipher, items: Iterable[ResolveItem]) -> list[ResolvedValue]:
    items = list(items)
    rows = await conn.fetch(
        "SELECT v.owner, v.name, v.version, v.ciphertext FROM secret_values v"
        " JOIN unnest($1::text[], $2::text[], $3::int[]) AS r(owner, name, version)"
        "   ON v.owner = r.owner AND v.name = r.name AND v.version = r.version",
        [i.owner for i in items], [i.name for i in items], [i.version for i in items])
    found = {(r["owner"], r["name"], r["version"]): r["ciphertext"] for r in rows}
    missing = [f"{i.owner}/{i.name} v{i.version}" for i in items if (i.owner, i.name, i.version) not in found]
    if missing:
        raise Invalid(f"no such secret: {', '.join(missing)}", code="unknown_secret")
    return [ResolvedValue(name=i.name, owner=i.owner, version=i.version, value=cipher.decrypt(found[i.owner, i.name, i.version]))
            for i in items]


def resolve_router() -> APIRouter:
    """`POST /internal/secrets/resolve`, for the scheduler's service token only (not in the OpenAPI page)."""
    router = APIRouter(include_in_schema=False)

    @router.post("/internal/secrets/resolve", response_model=Resolved)
    async def resolve_secrets(body: ResolveBody, request: Request,
                              caller: Annotated[str, Depends(require_service(SECRETS_RESOLVER))]) -> Resolved:
        platform = request.app.state.platform
        cipher: SecretCipher | None = getattr(request.app.state, "secret_cipher", None)
        if cipher is None:
            raise HTTPException(503, "this service stores no secrets")
        async with platform.snapshot() as conn:
            values = await resolve(conn, cipher, body.secrets)
        RESOLVED.inc(len(values))
        log.info("%d secret(s) resolved for run %s by %s: %s", len(values), body.run, caller,
                 ", ".join(f"{v.owner}/{v.name} v{v.version}" for v in values))
        return Resolved(values=values)

    return router
