"""Bearer-token auth: JWTs carrying the user id (`sub`) and role (admin | researcher | viewer).

HS256 with AVATAR_JWT_SECRET for local runs; RS256 with AVATAR_JWT_PUBLIC_KEY (PEM) where an
identity provider signs the tokens. The user is the whole subject, exactly as signed: two subjects are two
users however long their common prefix (ownership and "mine" compare them).
"""
from __future__ import annotations

import time
import unicodedata
from typing import Annotated, Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.kit.settings import Settings

Role = Literal["admin", "researcher", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "researcher", "viewer")
WRITERS: tuple[Role, ...] = ("admin", "researcher")
EVERYONE: tuple[Role, ...] = ROLES
# A platform service calling another's internal route (services/kit/secrets.py): never a user's role, so no
# user route accepts it and no user token passes `require_service`.
SERVICE_ROLE = "service"
# OpenID Connect Core §2: a subject "MUST NOT exceed 255 ASCII characters"; a longer one is refused, never cut.
MAX_SUBJECT = 255

# A user named in a request (a new owner, an ?owner= filter): what a token subject may be (`_subject`).
_NO_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"  # no control character (Unicode category Cc)
Subject = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SUBJECT,
                                           pattern=rf"^{_NO_CONTROL}*[^\s\x00-\x1f\x7f-\x9f]{_NO_CONTROL}*$")]


class NewOwner(BaseModel):
    """The body of an ownership transfer (services/kit/ownership.py)."""

    model_config = ConfigDict(extra="forbid")
    owner: Subject = Field(description="the user (token subject) who owns it from now on")


class Principal(BaseModel):
    user: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def mint_token(settings: Settings, user: str, role: Role, *, ttl_seconds: int = 3600,
               private_key: str | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    now = int(time.time())
    claims = {"sub": user, "role": role, "iss": settings.jwt_issuer, "iat": now, "exp": now + ttl_seconds}
    if private_key:
        return jwt.encode(claims, private_key, algorithm="RS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def mint_service_token(settings: Settings, service: str, *, ttl_seconds: int = 3600) -> str:
    """A local service identity (role "service"); outside local runs the identity provider issues it."""
    now = int(time.time())
    claims = {"sub": service, "role": SERVICE_ROLE, "iss": settings.jwt_issuer, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def _claims(settings: Settings, token: str) -> dict:
    key, algorithm = ((settings.jwt_public_key, "RS256") if settings.jwt_public_key
                      else (settings.jwt_secret, "HS256"))
    try:
        return jwt.decode(token, key, algorithms=[algorithm], issuer=settings.jwt_issuer,
                          options={"require": ["sub", "exp", "iss"]})
    except jwt.ExpiredSignatureError:
        raise HTTPException(401, "token expired", headers={"WWW-Authenticate": "Bearer"}) from None
    except jwt.PyJWTError as exc:
        raise HTTPException(401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None


def verify_token(settings: Settings, token: str) -> Principal:
    claims = _claims(settings, token)
    role = claims.get("role")
    if role not in ROLES:
        raise HTTPException(401, f"token carries an unknown role {role!r}", headers={"WWW-Authenticate": "Bearer"})
    return Principal(user=_subject(claims["sub"]), role=role)


def _subject(sub: object) -> str:
    """The token's subject as the user id, refused (401) when it cannot name one user."""
    problem = None
    if not isinstance(sub, str):
        problem = "is not a string"
    elif not sub.strip():
        problem = "is empty or only whitespace"
    elif len(sub) > MAX_SUBJECT:
        problem = f"is longer than {MAX_SUBJECT} characters"
    elif any(unicodedata.category(ch) == "Cc" for ch in sub):
        problem = "contains control characters"
    if problem:
        raise HTTPException(401, f"invalid token: the subject (sub) {problem}", headers={"WWW-Authenticate": "Bearer"})
    return sub


_bearer = HTTPBearer(auto_error=False)


# async, though nothing is awaited: FastAPI runs a plain `def` dependency in a worker thread, a
# thread hop per request for a few microseconds of HMAC
async def current_principal(request: Request,
                            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return verify_token(request.app.state.settings, credentials.credentials)


def require_roles(*roles: Role):
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"role '{principal.role}' may not do this; requires {' or '.join(roles)}")
        return principal

    return dependency


def require_service(*services: str):
    """Only these services' own identity (role "service", subject the service's name): a user is 403."""
    async def dependency(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        claims = _claims(request.app.state.settings, credentials.credentials)
        if claims.get("role") != SERVICE_ROLE or claims.get("sub") not in services:
            raise HTTPException(403, f"only the {' or '.join(services)} service may do this")
        return str(claims["sub"])

    return dependency


Reader = Annotated[Principal, Depends(require_roles(*EVERYONE))]
Writer = Annotated[Principal, Depends(require_roles(*WRITERS))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
