"""OIDC login at the gateway: authorization code + PKCE (S256) with authlib, against any OpenID provider.

`/api/auth/oidc/login` sends the browser to the IdP with a fresh state, nonce and PKCE challenge; what the
callback needs to finish (nonce, verifier, where to go next) waits in Redis under the state for ten minutes
and is taken once. The browser also gets the state in a short-lived HttpOnly cookie (with those of its
other logins under way, a few at most): a callback whose state is not in it (a link forwarded to another
browser, a login forced on someone) is refused. The callback
exchanges the code, checks the ID token's signature against the IdP's JWKS and its iss/aud/exp/nonce, maps
the user's IdP groups to a platform role (services/gateway/roles.py), provisions or updates the user and
opens a browser session.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from redis.exceptions import RedisError

from services.gateway import accounts, sessions
from services.gateway.roles import groups_from_claim, role_for
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])

CALLBACK_PATH = "/api/auth/oidc/callback"
LOGIN_PATH = "/api/auth/oidc/login"
STATE_COOKIE = "avatar_oidc_state"
COOKIE_PATH = "/api/auth/oidc"
# logins one browser may have under way at once (two tabs, a double click): the cookie holds their states
MAX_PENDING_LOGINS = 3
STATE_TTL_SECONDS = 600
# how long the IdP's discovery document is trusted before it is read again (its keys are re-read sooner,
# whenever an ID token names a key id the cached JWKS lacks)
DISCOVERY_TTL_SECONDS = 3600
IDP_TIMEOUT_SECONDS = 10.0
# clock skew tolerated on exp/iat/nbf between the IdP and the gateway
LEEWAY_SECONDS = 60
# ID tokens signed with a shared secret (HS*) or unsigned ("none") are never accepted: the client secret
# would be the only thing standing between anyone who knows it and any identity
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_NEXT_LENGTH = 2048
ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # the shape of an OAuth error code (RFC 6749 §4.1.2.1)
try:  # authlib's httpx client runs on httpx2 when that is installed, else on httpx: its errors are either's
    import httpx2
    HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:
    HTTP_ERRORS = (httpx.HTTPError,)


class LoginRefused(Exception):
    """A login that may not go on: the HTTP status, what the person is told, and who they said they were."""

    def __init__(self, status: int, detail: str, *, who: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.who = status, detail, who


@dataclass(frozen=True)
class Person:
    """Who the IdP says logged in, from the validated ID token (and userinfo)."""
    subject: str
    email: str | None
    display_name: str
    groups: list[str]


def safe_next(value: str | None) -> str:
    """Where to send the browser after login: a path on this origin, else "/" (never an open redirect).

    A browser reads "//host", "/\\host" and "/\\t/host" as another host, so any of those, a scheme, a host,
    a backslash, whitespace or a control character means "/"."""
    if not value or len(value) > MAX_NEXT_LENGTH or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ch.isspace() or ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def states_in(cookie: str | None) -> list[str]:
    """The states of the logins a browser has under way, newest first, from its state cookie."""
    return [state for state in (cookie or "").split(".") if state][:MAX_PENDING_LOGINS]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class OidcLogin:
    """The gateway's client of one OpenID provider: discovery and keys (cached), login start and finish."""

    def __init__(self, settings: GatewaySettings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise ValueError("OIDC login needs AVATAR_OIDC_ISSUER and AVATAR_OIDC_CLIENT_ID")
        if settings.env != "local" and not settings.oidc_issuer.startswith("https://"):
            raise ValueError("AVATAR_OIDC_ISSUER must be an https:// URL outside AVATAR_ENV=local")
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.redirect_uri = settings.public_url.rstrip("/") + CALLBACK_PATH
        self._prefix = f"{settings.redis_prefix}gateway:oidc:state:"
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------- the IdP's published configuration

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, read once an hour; a stale copy serves while the IdP does not answer."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS:
                return self._metadata
            try:
                async with httpx.AsyncClient(timeout=IDP_TIMEOUT_SECONDS) as client:
                    answer = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                    answer.raise_for_status()
                    document = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                if self._metadata is not None:
                    log.warning("OIDC discovery at %s failed (%s); using the copy read earlier", self.issuer, exc)
                    return self._metadata
                raise LoginRefused(502, "the identity provider did not answer; try again shortly") from exc
            # OpenID Connect Discovery §4.3: the document must name exactly the issuer it was read from
            if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise LoginRefused(502, "the identity provider's discovery document names another issuer")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(field), str):
                    raise LoginRefused(502, f"the identity provider's discovery document lacks {field}")
            self._metadata, self._metadata_at = document, time.monotonic()
            return document

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh:
            return self._keys
        metadata = await self.metadata()
        try:
            async with httpx.AsyncClient(timeout=IDP_TIMEOUT_SECONDS) as client:
                answer = await client.get(metadata["jwks_uri"])
                answer.raise_for_status()
                self._keys = KeySet.import_key_set(answer.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise LoginRefused(502, "the identity provider's signing keys could not be read") from exc
        return self._keys

    def _token_auth_method(self, metadata: dict[str, Any]) -> str:
        if not self.settings.oidc_client_secret:
            return "none"  # a public client: PKCE is what binds the code to this login
        # OpenID Connect Discovery §3: client_secret_basic is the default when the IdP names none
        supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        for method in ("client_secret_basic", "client_secret_post"):
            if method in supported:
                return method
        raise LoginRefused(502, f"the identity provider accepts none of client_secret_basic/post ({supported})")

    def _client(self, metadata: dict[str, Any]) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(client_id=self.client_id, client_secret=self.settings.oidc_client_secret,
                                 token_endpoint_auth_method=self._token_auth_method(metadata),
                                 scope=self.settings.oidc_scopes, redirect_uri=self.redirect_uri,
                                 code_challenge_method="S256", timeout=IDP_TIMEOUT_SECONDS)

    # ---------------------------------------------------------------- login start

    async def begin(self, redis: Any, next_path: str | None) -> tuple[str, str]:
        """(the IdP's authorize URL, the state) for a new login; what the callback needs is kept in Redis."""
        metadata = await self.metadata()
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        async with self._client(metadata) as client:
            url, _ = client.create_authorization_url(metadata["authorization_endpoint"], state=state,
                                                     code_verifier=verifier, nonce=nonce)
        pending = {"nonce": nonce, "verifier": verifier, "next": safe_next(next_path)}
        try:
            await redis.set(self._prefix + state, json.dumps(pending), ex=STATE_TTL_SECONDS)
        except RedisError as exc:
            raise LoginRefused(503, "single sign-on is unavailable for a moment; try again shortly") from exc
        return url, state

    async def take_pending(self, redis: Any, state: str) -> dict[str, str] | None:
        """The login `state` started, removed as it is read (GETDEL): a second callback with it finds nothing."""
        try:
            raw = await redis.getdel(self._prefix + state)
        except RedisError as exc:
            raise LoginRefused(503, "single sign-on is unavailable for a moment; try again shortly") from exc
        return None if raw is None else json.loads(_text(raw))

    # ---------------------------------------------------------------- login finish

    async def finish(self, code: str, pending: dict[str, str]) -> Person:
        """Exchange `code` (with the PKCE verifier) and return the person the validated ID token names."""
        metadata = await self.metadata()
        async with self._client(metadata) as client:
            try:
                token = await client.fetch_token(metadata["token_endpoint"], grant_type="authorization_code",
                                                 code=code, code_verifier=pending["verifier"])
            except OAuthError as exc:
                raise LoginRefused(401, f"the identity provider did not accept the login code ({exc.error}); "
                                        "start the login again") from exc
            except (*HTTP_ERRORS, ValueError) as exc:
                raise LoginRefused(502, "the identity provider's token endpoint failed; try again shortly") from exc
            claims = await self._validated_id_token(token, pending["nonce"], metadata)
            groups_claim = self.settings.oidc_groups_claim
            if groups_claim not in claims and metadata.get("userinfo_endpoint"):
                claims = {**await self._userinfo(client, metadata, claims["sub"]), **claims}
        subject = claims["sub"]
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        name = next((claims[key] for key in ("name", "preferred_username", "email")
                     if isinstance(claims.get(key), str) and claims[key].strip()), subject)
        return Person(subject=subject, email=email, display_name=name.strip(),
                      groups=groups_from_claim(claims.get(groups_claim)))

    async def _validated_id_token(self, token: dict[str, Any], nonce: str, metadata: dict[str, Any]) -> dict:
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise LoginRefused(401, "the identity provider sent no ID token (is the 'openid' scope granted?)")
        algorithms = [alg for alg in metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
                      if alg in ASYMMETRIC_ALGS] or ["RS256"]
        registry = JWSRegistry(algorithms=algorithms)
        try:
            try:
                decoded = jwt.decode(raw, await self._key_set(), registry=registry)
            except (InvalidKeyIdError, BadSignatureError):  # the IdP may have rotated its keys since we read them
                decoded = jwt.decode(raw, await self._key_set(refresh=True), registry=registry)
            # the issuer exactly as the IdP spells it (some end it with "/"), checked against ours at discovery
            options = {"iss": {"essential": True, "value": metadata["issuer"]},
                       "aud": {"essential": True, "value": self.client_id},
                       "exp": {"essential": True}, "nonce": {"essential": True}}
            claims = CodeIDToken(decoded.claims, decoded.header, options,
                                 {"nonce": nonce, "client_id": self.client_id,
                                  "access_token": token.get("access_token")})
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            log.warning("refused an ID token from %s: %s", self.issuer, exc)
            raise LoginRefused(401, f"the identity provider's ID token is not valid for this login ({exc})") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise LoginRefused(401, "the identity provider's ID token names no subject")
        return dict(claims)

    async def _userinfo(self, client: AsyncOAuth2Client, metadata: dict[str, Any], subject: str) -> dict:
        try:
            answer = await client.get(metadata["userinfo_endpoint"])
            answer.raise_for_status()
            info = answer.json()
        except (*HTTP_ERRORS, ValueError, OAuthError) as exc:
            raise LoginRefused(502, "the identity provider's userinfo endpoint failed; try again shortly") from exc
        # OpenID Connect Core §5.3.2: userinfo about another subject than the ID token's must not be used
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise LoginRefused(401, "the identity provider's userinfo names another user", who=subject)
        return info


# -------------------------------------------------------------------- routes


def _login(request: Request) -> OidcLogin | None:
    return getattr(request.app.state, "oidc", None)


@router.get("/api/auth/providers", summary="How people can log in (public)")
async def providers(request: Request) -> dict[str, Any]:
    oidc = _login(request)
    settings: GatewaySettings = request.app.state.settings
    return {"local": True,
            "oidc": {"name": settings.oidc_display_name, "login_url": LOGIN_PATH} if oidc else None}


@router.get(LOGIN_PATH, summary="Start an OIDC login: redirects to the identity provider", status_code=302,
            response_class=RedirectResponse)
async def login(request: Request, next: str | None = None) -> Response:  # noqa: A002 (the query parameter)
    oidc = _login(request)
    if oidc is None:
        return _refusal(request, 404, "single sign-on is not configured on this gateway")
    try:
        url, state = await oidc.begin(request.app.state.redis, next)
    except LoginRefused as refused:
        return _refusal(request, refused.status, refused.detail)
    response = RedirectResponse(url, status_code=302)
    _set_states(request, response, [state, *states_in(request.cookies.get(STATE_COOKIE))])
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(CALLBACK_PATH, summary="Finish an OIDC login (the identity provider redirects here)",
            status_code=302, response_class=RedirectResponse)
async def callback(request: Request, code: str | None = None, state: str | None = None,
                   error: str | None = None, error_description: str | None = None) -> Response:
    oidc = _login(request)
    if oidc is None:
        return _refusal(request, 404, "single sign-on is not configured on this gateway")
    who: str | None = None
    try:
        if error:
            raise await _idp_error(request, oidc, state, error, error_description)
        pending = await _pending_login(request, oidc, state)
        if not code:
            raise LoginRefused(400, "the identity provider's answer carries no code")
        person = await oidc.finish(code, pending)
        who = person.email or person.subject
        role = role_for(person.groups, oidc.settings.oidc_role_map, oidc.settings.oidc_default_role)
        if role is None:
            raise LoginRefused(403, "none of your identity provider groups gives access to the platform; "
                                    "ask an administrator", who=who)
        response = RedirectResponse(pending["next"], status_code=302)
        try:
            user = await accounts.upsert_oidc_user(request.app.state.platform.pool, issuer=oidc.issuer,
                                                   subject=person.subject, email=person.email,
                                                   display_name=person.display_name, role=role)
            # the session before the audit record: the record then tells of a login that really happened
            # (a session whose cookie never reached the browser, should the record fail, is of no use)
            await sessions.open_session(request, response, user)
        except accounts.Deactivated as exc:
            raise LoginRefused(403, "this account is deactivated; ask an administrator", who=exc.user) from exc
    except LoginRefused as refused:
        await _audit_refusal(request, refused, who=refused.who or who)
        return _refusal(request, refused.status, refused.detail, done=state)
    _set_states(request, response, _other_states(request, state))
    response.headers["Cache-Control"] = "no-store"
    await request.app.state.audit.decision(
        action="login.oidc", actor=None, target_type="user", target_id=user.id, before=None,
        after={"role": user.role, "issuer": oidc.issuer}, comment=None, outcome="ok", request=request,
        conn=None, actor_user=user.id)
    return response


async def _pending_login(request: Request, oidc: OidcLogin, state: str | None) -> dict[str, str]:
    """The login this browser started with `state`, taken (once): the state must match the browser's cookie."""
    if not state:
        raise LoginRefused(400, "the identity provider's answer carries no state; start the login again")
    started_here = states_in(request.cookies.get(STATE_COOKIE))
    if not any(hmac.compare_digest(started.encode(), state.encode()) for started in started_here):
        raise LoginRefused(400, "this login was not started in this browser (or took more than 10 minutes); "
                                "start it again")
    pending = await oidc.take_pending(request.app.state.redis, state)
    if pending is None:
        raise LoginRefused(400, "this login has expired or was already used; start it again")
    return pending


async def _idp_error(request: Request, oidc: OidcLogin, state: str | None, error: str,
                     description: str | None) -> LoginRefused:
    """The refusal for an IdP's error answer (RFC 6749 §4.1.2.1), which some IdPs send without the state.

    The login it ends is used up when the state is there. The IdP's own description is shown only then: a
    link anyone can craft to this callback must not put the crafter's text on the platform's page."""
    code = error if ERROR_CODE.fullmatch(error) else "error"
    try:
        await _pending_login(request, oidc, state)
    except LoginRefused:
        return LoginRefused(401, f"the identity provider refused the login ({code})")
    reason = f": {description[:300]}" if description else ""
    return LoginRefused(401, f"the identity provider refused the login ({code}){reason}")


async def _audit_refusal(request: Request, refused: LoginRefused, *, who: str | None) -> None:
    try:
        await request.app.state.audit.decision(
            action="login.oidc", actor=None, target_type="user", target_id=who or "-", before=None, after=None,
            comment=refused.detail[:2000], outcome="refused", request=request, conn=None, actor_user=who)
    except Exception:  # the person still gets their answer; the audit log's own failure is logged there
        log.exception("could not record a refused OIDC login")


def _other_states(request: Request, state: str | None) -> list[str]:
    return [started for started in states_in(request.cookies.get(STATE_COOKIE)) if started != state]


def _set_states(request: Request, response: Response, states: list[str]) -> None:
    """The state cookie holding `states` (the newest few), or none when no login is under way."""
    settings: GatewaySettings = request.app.state.settings
    if not states:
        if STATE_COOKIE in request.cookies:
            response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax",
                                   secure=settings.secure_cookies)
        return
    # SameSite=Lax, not Strict: the callback is a top-level navigation coming from the IdP's site
    response.set_cookie(STATE_COOKIE, ".".join(states[:MAX_PENDING_LOGINS]), max_age=STATE_TTL_SECONDS,
                        path=COOKIE_PATH, httponly=True, secure=settings.secure_cookies, samesite="lax")


def _refusal(request: Request, status: int, detail: str, *, done: str | None = None) -> Response:
    """The refusal as a small page for a browser, JSON for anything else; the login it ends (`done`) leaves
    the browser's state cookie, the browser's other logins under way stay."""
    if "text/html" in request.headers.get("accept", ""):
        page = (f"<!doctype html><meta charset=utf-8><title>Login refused</title>"
                f"<h1>Login refused</h1><p>{html.escape(detail)}</p><p><a href=\"/\">Back to the platform</a></p>")
        response: Response = Response(page, status_code=status, media_type="text/html")
    else:
        response = JSONResponse({"detail": detail}, status_code=status)
    if done is not None and done in states_in(request.cookies.get(STATE_COOKIE)):
        _set_states(request, response, _other_states(request, done))
    response.headers["Cache-Control"] = "no-store"
    return response
