"""Bearer-token auth: JWTs carrying the user id (`sub`) and role (admin | researcher | viewer).

Which key verifies a token is decided by the service's settings and the token's header, never by the
token alone (the algorithm is pinned for each key, so no token can pick HS256 with a public key as secret):
- a token naming a `kid`, when AVATAR_JWT_JWKS_URL is set: RS256 only, with that key of the gateway's JWKS
  (services/kit/jwks.py: cached, refetched for a kid it does not know, at most every few seconds);
- otherwise RS256 with AVATAR_JWT_PUBLIC_KEY (PEM) where an identity provider signs the tokens, else
  HS256 with AVATAR_JWT_SECRET (local runs and the CLI's tokens, services/kit/token.py).
The user is the whole subject, exactly as signed: two subjects are two users however long their common
prefix (ownership and "mine" compare them).
"""
from __future__ import annotations

import time
import unicodedata
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.kit.jwks import MAX_KID, JwksCache, JwksUnavailable, http_fetcher
from services.kit.settings import LOCAL_JWT_SECRET, Settings

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


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _jwks_kid(settings: Settings, token: str) -> str | None:
    """The `kid` of a token this service verifies against the JWKS, None for the static-key paths."""
    if not settings.jwt_jwks_url:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    if "kid" not in header:
        return None
    kid = header["kid"]
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID:
        raise _unauthorized(f"invalid token: the key id (kid) must be a string of 1 to {MAX_KID} characters")
    return kid


def _decode(settings: Settings, token: str, key: Any, algorithm: str) -> dict:
    try:
        return jwt.decode(token, key, algorithms=[algorithm], issuer=settings.jwt_issuer,
                          options={"require": ["sub", "exp", "iss"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from None


def _static_claims(settings: Settings, token: str) -> dict:
    if settings.jwt_public_key:
        return _decode(settings, token, settings.jwt_public_key, "RS256")
    if settings.env != "local" and settings.jwt_secret == LOCAL_JWT_SECRET:
        # a service trusting only the gateway's JWKS needs no HMAC secret; the published local default
        # must then verify nothing
        raise _unauthorized("invalid token: HS256 tokens are not accepted here (AVATAR_JWT_SECRET is not set)")
    return _decode(settings, token, settings.jwt_secret, "HS256")


def _claims(settings: Settings, token: str) -> dict:
    """The claims of a token verified with a static key (HS256 secret or RS256 PEM) only."""
    if _jwks_kid(settings, token) is not None:
        raise _unauthorized("invalid token: a token signed with a published key (kid) is verified only on the "
                            "async path (current_principal, verify_token_async)")
    return _static_claims(settings, token)


def jwks_cache(app_state: Any, settings: Settings) -> JwksCache:
    """The app's JWKS cache, made on first use (one per app: a test's apps never share keys)."""
    cache = getattr(app_state, "jwks_cache", None)
    if cache is None:
        assert settings.jwt_jwks_url
        cache = app_state.jwks_cache = JwksCache(http_fetcher(settings.jwt_jwks_url))
    return cache


async def claims_async(settings: Settings, token: str, cache: JwksCache | None) -> dict:
    """The claims of a token, its key found in the JWKS when it names one (see the module's docstring)."""
    kid = _jwks_kid(settings, token)
    if kid is None:
        return _static_claims(settings, token)
    assert cache is not None, "a JWKS url needs a JwksCache"
    try:
        key = await cache.key(kid)
    except JwksUnavailable:
        # not the token's fault: 503 with Retry-After, shaped as services/kit/errors.py's dependency refusals
        raise HTTPException(503, {"code": "signing_keys_unavailable", "dependency": "gateway",
                                  "message": "cannot verify token: signing keys unavailable (the gateway's JWKS "
                                             "does not answer); try again shortly"},
                            headers={"Retry-After": str(settings.dependency_retry_after_seconds)}) from None
    if key is None:
        raise _unauthorized(f"invalid token: signing key {kid!r} is not (or no longer) published")
    return _decode(settings, token, key, "RS256")


def verify_token(settings: Settings, token: str) -> Principal:
    """Synchronous verification with the static keys (HS256 secret, RS256 PEM). A token signed with a JWKS
    key (a `kid`, AVATAR_JWT_JWKS_URL set) needs the fetch: use `verify_token_async` or the dependencies."""
    return _principal(_claims(settings, token))


async def verify_token_async(settings: Settings, token: str, cache: JwksCache | None = None) -> Principal:
    return _principal(await claims_async(settings, token, cache))


def _principal(claims: dict) -> Principal:
    role = claims.get("role")
    if role not in ROLES:
        raise _unauthorized(f"token carries an unknown role {role!r}")
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
        raise _unauthorized(f"invalid token: the subject (sub) {problem}")
    return sub


_bearer = HTTPBearer(auto_error=False)


async def _request_claims(request: Request, credentials: HTTPAuthorizationCredentials | None) -> dict:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    settings = request.app.state.settings
    cache = jwks_cache(request.app.state, settings) if settings.jwt_jwks_url else None
    return await claims_async(settings, credentials.credentials, cache)


# async also for the static keys: FastAPI runs a plain `def` dependency in a worker thread, a thread hop
# per request for a few microseconds of HMAC
async def current_principal(request: Request,
                            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    return _principal(await _request_claims(request, credentials))


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
        claims = await _request_claims(request, credentials)
        if claims.get("role") != SERVICE_ROLE or claims.get("sub") not in services:
            raise HTTPException(403, f"only the {' or '.join(services)} service may do this")
        return str(claims["sub"])

    return dependency


Reader = Annotated[Principal, Depends(require_roles(*EVERYONE))]
Writer = Annotated[Principal, Depends(require_roles(*WRITERS))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
