"""OIDC login through the gateway against a real OpenID provider process (oidc-provider-mock from PyPI).

The browser is an httpx client over ASGI (its cookie jar is the browser's); the provider's redirects are
followed by hand: the authorize page is a form that picks the user with a POST, and the provider sends the
browser back to the gateway's callback at public_url (http://service.test, the client's base URL).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from typing import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from services.gateway import oidc
from services.gateway.main import create_app
from services.kit.stack import free_port
from tests.integration.gateway.conftest import gateway_settings
from tests.support.oidc_provider import OidcProvider, running_oidc_provider
from tests.support.services import RunningService, running_service

PUBLIC_URL = "http://service.test"
ROLE_MAP = {"avatar-admins": "admin", "ml-team": "researcher", "readers": "viewer"}
CLIENT_ID = "avatar-gateway"


@pytest.fixture(scope="module")
def provider() -> OidcProvider:
    with running_oidc_provider() as running:
        yield running


@contextlib.asynccontextmanager
async def oidc_gateway(infra, provider: OidcProvider, **overrides) -> AsyncIterator[RunningService]:
    settings = dict(oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID, oidc_client_secret="gateway-secret",
                    oidc_role_map=ROLE_MAP, public_url=PUBLIC_URL, oidc_display_name="Example SSO")
    settings.update(overrides)
    async with running_service(create_app, gateway_settings(infra, **settings)) as running:
        yield running


@pytest.fixture
async def gateway_with_sso(fresh, provider) -> AsyncIterator[RunningService]:
    async with oidc_gateway(fresh, provider) as running:
        yield running


def local(url: str) -> str:
    """The gateway-relative part of a URL the provider sent the browser to."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
    return urlunsplit(("", "", parts.path, parts.query, ""))


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def start(client: httpx.AsyncClient, next_path: str | None = None) -> str:
    answer = await client.get(oidc.LOGIN_PATH, params={"next": next_path} if next_path else None)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def log_in(gateway: RunningService, provider: OidcProvider, sub: str,
                 next_path: str | None = None) -> httpx.Response:
    """The whole browser flow: login → IdP picks `sub` → the gateway's callback; returns the callback's answer."""
    authorize_url = await start(gateway.client, next_path)
    back = await provider.authorize(authorize_url, sub)
    return await gateway.client.get(local(back))


async def me(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/api/auth/me")


async def user_row(gateway: RunningService, provider: OidcProvider, sub: str):
    return await gateway.platform.pool.fetchrow(
        "SELECT id, display_name, email, role, active FROM users WHERE idp_issuer = $1 AND idp_subject = $2",
        provider.issuer, sub)


async def login_records(gateway: RunningService, outcome: str) -> list[dict]:
    """The audit log's login.oidc decisions with `outcome` (written at once, not through the batch queue)."""
    rows = await gateway.platform.pool.fetch(
        "SELECT actor, target_type, target_id, after, comment, route, address FROM audit_log"
        " WHERE kind = 'decision' AND action = 'login.oidc' AND outcome = $1 ORDER BY id", outcome)
    return [dict(row) for row in rows]


# ------------------------------------------------------------------ discovery of the login options


async def test_providers_name_the_sso_login_when_an_issuer_is_set(gateway_with_sso):
    answer = await gateway_with_sso.client.get("/api/auth/providers")
    assert answer.status_code == 200
    assert answer.json() == {"local": True, "oidc": {"name": "Example SSO", "login_url": "/api/auth/oidc/login"}}


async def test_without_an_issuer_there_is_no_sso_login(gateway):
    assert gateway.app.state.oidc is None
    assert (await gateway.client.get("/api/auth/providers")).json() == {"local": True, "oidc": None}
    refused = await gateway.client.get(oidc.LOGIN_PATH)
    assert refused.status_code == 404
    assert "not configured" in refused.json()["detail"]


# ------------------------------------------------------------------ the authorization request


async def test_login_sends_the_browser_to_the_idp_with_state_nonce_and_a_pkce_challenge(gateway_with_sso, provider):
    answer = await gateway_with_sso.client.get(oidc.LOGIN_PATH, params={"next": "/models?tab=aliases"})
    assert answer.status_code == 302
    url = urlsplit(answer.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.issuer}/oauth2/authorize"  # from discovery
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{PUBLIC_URL}/api/auth/oidc/callback"
    assert query["scope"].split() == ["openid", "profile", "email"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32

    # the browser holds the state in a short-lived HttpOnly cookie scoped to the OIDC routes
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{oidc.STATE_COOKIE}={query['state']};")
    assert "HttpOnly" in cookie and "Path=/api/auth/oidc" in cookie and "samesite=lax" in cookie.lower()
    assert "Max-Age=600" in cookie

    # the nonce, PKCE verifier and next path wait server-side under the state, for ten minutes at most
    redis = gateway_with_sso.app.state.redis
    key = f"{gateway_with_sso.settings.redis_prefix}gateway:oidc:state:{query['state']}"
    pending = json.loads(await redis.get(key))
    assert pending["nonce"] == query["nonce"] and pending["next"] == "/models?tab=aliases"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(pending["verifier"].encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == challenge.decode()
    assert 0 < await redis.ttl(key) <= 600


async def test_two_logins_get_different_states_nonces_and_verifiers(gateway_with_sso):
    first = parse_qs(urlsplit(await start(gateway_with_sso.client)).query)
    second = parse_qs(urlsplit(await start(gateway_with_sso.client)).query)
    for field in ("state", "nonce", "code_challenge"):
        assert first[field] != second[field]


# ------------------------------------------------------------------ provisioning and roles from groups


async def test_first_login_provisions_the_user_with_the_role_of_their_group(gateway_with_sso, provider):
    provider.set_user("oidc-kim", email="kim@example.org", name="Kim Lee", groups=["ml-team", "unrelated"])
    assert await user_row(gateway_with_sso, provider, "oidc-kim") is None

    answer = await log_in(gateway_with_sso, provider, "oidc-kim", next_path="/models?tab=aliases")
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == "/models?tab=aliases"
    assert gateway_with_sso.settings.session_cookie in answer.cookies

    row = await user_row(gateway_with_sso, provider, "oidc-kim")
    assert dict(row) == {"id": "kim", "display_name": "Kim Lee", "email": "kim@example.org",
                         "role": "researcher", "active": True}

    # the session the login opened works, and the one-time state cookie is gone
    who = await me(gateway_with_sso.client)
    assert who.status_code == 200, who.text
    assert who.json()["user"] == "kim" and who.json()["role"] == "researcher" and who.json()["via"] == "session"
    assert oidc.STATE_COOKIE not in gateway_with_sso.client.cookies

    [ok] = await login_records(gateway_with_sso, "ok")
    assert ok["actor"] == "kim" and (ok["target_type"], ok["target_id"]) == ("user", "kim")
    assert ok["after"] == {"role": "researcher", "issuer": provider.issuer}
    assert ok["route"] == "/api/auth/oidc/callback"


async def test_a_member_of_the_admin_group_becomes_admin(gateway_with_sso, provider):
    provider.set_user("oidc-ada", email="ada@example.org", groups=["readers", "avatar-admins", "ml-team"])
    answer = await log_in(gateway_with_sso, provider, "oidc-ada")
    assert answer.status_code == 302 and answer.headers["location"] == "/"
    assert (await user_row(gateway_with_sso, provider, "oidc-ada"))["role"] == "admin"
    assert (await me(gateway_with_sso.client)).json()["role"] == "admin"


async def test_a_changed_group_changes_the_role_on_the_next_login(gateway_with_sso, provider):
    provider.set_user("oidc-lee", email="lee@example.org", groups=["readers"])
    assert (await log_in(gateway_with_sso, provider, "oidc-lee")).status_code == 302
    first = await user_row(gateway_with_sso, provider, "oidc-lee")
    assert first["role"] == "viewer"

    provider.set_user("oidc-lee", email="lee@example.org", groups=["readers", "avatar-admins"])
    assert (await log_in(gateway_with_sso, provider, "oidc-lee")).status_code == 302
    promoted = await user_row(gateway_with_sso, provider, "oidc-lee")
    assert promoted["id"] == first["id"] and promoted["role"] == "admin"
    assert (await me(gateway_with_sso.client)).json()["role"] == "admin"

    provider.set_user("oidc-lee", email="lee@example.org", groups=["ml-team"])
    assert (await log_in(gateway_with_sso, provider, "oidc-lee")).status_code == 302
    assert (await user_row(gateway_with_sso, provider, "oidc-lee"))["role"] == "researcher"
    count = await gateway_with_sso.platform.pool.fetchval(
        "SELECT count(*) FROM users WHERE idp_subject = 'oidc-lee'")
    assert count == 1


async def test_a_user_in_no_mapped_group_gets_the_default_role(fresh, provider):
    provider.set_user("oidc-sam", email="sam@example.org", groups=["somewhere-else"])
    async with oidc_gateway(fresh, provider, oidc_default_role="researcher") as gateway:
        assert (await log_in(gateway, provider, "oidc-sam")).status_code == 302
        assert (await user_row(gateway, provider, "oidc-sam"))["role"] == "researcher"
    provider.set_user("oidc-noa", email="noa@example.org")  # no groups claim at all
    async with oidc_gateway(fresh, provider) as gateway:  # default role: viewer
        assert (await log_in(gateway, provider, "oidc-noa")).status_code == 302
        assert (await user_row(gateway, provider, "oidc-noa"))["role"] == "viewer"


async def test_a_user_in_no_mapped_group_is_refused_without_a_default_role(fresh, provider):
    provider.set_user("oidc-out", email="out@example.org", groups=["somewhere-else"])
    provider.set_user("oidc-in", email="in@example.org", groups=["ml-team"])
    async with oidc_gateway(fresh, provider, oidc_default_role=None) as gateway:
        refused = await log_in(gateway, provider, "oidc-out")
        assert refused.status_code == 403
        assert "groups" in refused.json()["detail"]
        assert await user_row(gateway, provider, "oidc-out") is None
        assert gateway.settings.session_cookie not in refused.cookies
        assert (await me(gateway.client)).status_code == 401
        [audit] = await login_records(gateway, "refused")
        assert audit["actor"] == "out@example.org" and "groups" in audit["comment"]

        assert (await log_in(gateway, provider, "oidc-in")).status_code == 302  # a mapped user still may


async def test_a_deactivated_user_is_refused(gateway_with_sso, provider, fresh):
    provider.set_user("oidc-gone", email="gone@example.org", groups=["ml-team"])
    assert (await log_in(gateway_with_sso, provider, "oidc-gone")).status_code == 302
    row = await user_row(gateway_with_sso, provider, "oidc-gone")
    await gateway_with_sso.platform.pool.execute("UPDATE users SET active = false WHERE id = $1", row["id"])
    gateway_with_sso.client.cookies.clear()

    refused = await log_in(gateway_with_sso, provider, "oidc-gone")
    assert refused.status_code == 403
    assert "deactivated" in refused.json()["detail"]
    assert gateway_with_sso.settings.session_cookie not in refused.cookies
    [audit] = await login_records(gateway_with_sso, "refused")
    assert audit["actor"] == row["id"] and "deactivated" in audit["comment"]


# ------------------------------------------------------------------ state, cookie, nonce, redirects


async def test_a_replayed_callback_is_refused(gateway_with_sso, provider):
    provider.set_user("oidc-rey", email="rey@example.org", groups=["ml-team"])
    authorize_url = await start(gateway_with_sso.client)
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    callback = local(await provider.authorize(authorize_url, "oidc-rey"))
    assert (await gateway_with_sso.client.get(callback)).status_code == 302

    # even with the state cookie put back, the state was taken by the first callback
    gateway_with_sso.client.cookies.set(oidc.STATE_COOKIE, state, domain="service.test", path="/api/auth/oidc")
    replayed = await gateway_with_sso.client.get(callback)
    assert replayed.status_code == 400
    assert "already used" in replayed.json()["detail"]
    [audit] = await login_records(gateway_with_sso, "refused")
    assert "already used" in audit["comment"]


async def test_a_callback_from_another_browser_is_refused(gateway_with_sso, provider):
    provider.set_user("oidc-vic", email="vic@example.org", groups=["avatar-admins"])
    authorize_url = await start(gateway_with_sso.client)
    callback = local(await provider.authorize(authorize_url, "oidc-vic"))

    transport = httpx.ASGITransport(app=gateway_with_sso.app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as other_browser:
        refused = await other_browser.get(callback)
        assert refused.status_code == 400
        assert "not started in this browser" in refused.json()["detail"]
        assert gateway_with_sso.settings.session_cookie not in refused.cookies
        # a wrong cookie is no better than none
        other_browser.cookies.set(oidc.STATE_COOKIE, "x" * 43, domain="service.test", path="/api/auth/oidc")
        assert (await other_browser.get(callback)).status_code == 400

    # the browser that started the login can still finish it: the refusal did not use the state up
    assert (await gateway_with_sso.client.get(callback)).status_code == 302
    assert (await me(gateway_with_sso.client)).json()["role"] == "admin"


async def test_two_logins_under_way_in_one_browser_both_finish(gateway_with_sso, provider):
    """Two tabs (or a double click) start two logins: the state cookie holds both, each callback takes its own."""
    provider.set_user("oidc-two", email="two@example.org", groups=["ml-team"])
    first = await start(gateway_with_sso.client, "/first")
    second = await start(gateway_with_sso.client, "/second")
    states = [parse_qs(urlsplit(url).query)["state"][0] for url in (first, second)]
    assert oidc.states_in(gateway_with_sso.client.cookies[oidc.STATE_COOKIE]) == states[::-1]

    answer = await gateway_with_sso.client.get(local(await provider.authorize(first, "oidc-two")))
    assert answer.status_code == 302 and answer.headers["location"] == "/first"
    assert oidc.states_in(gateway_with_sso.client.cookies[oidc.STATE_COOKIE]) == [states[1]]
    answer = await gateway_with_sso.client.get(local(await provider.authorize(second, "oidc-two")))
    assert answer.status_code == 302 and answer.headers["location"] == "/second"
    assert oidc.STATE_COOKIE not in gateway_with_sso.client.cookies

    # only the newest few are kept: a browser cannot pile up states in its cookie
    for _ in range(oidc.MAX_PENDING_LOGINS + 2):
        await start(gateway_with_sso.client)
    assert len(oidc.states_in(gateway_with_sso.client.cookies[oidc.STATE_COOKIE])) == oidc.MAX_PENDING_LOGINS


async def test_a_callback_without_state_or_code_is_refused(gateway_with_sso):
    assert (await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={"code": "abc"})).status_code == 400
    await start(gateway_with_sso.client)
    state = gateway_with_sso.client.cookies[oidc.STATE_COOKIE]
    answer = await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={"state": state})
    assert answer.status_code == 400 and "no code" in answer.json()["detail"]


async def test_an_id_token_with_another_nonce_is_refused(gateway_with_sso, provider):
    """The provider puts into the ID token the nonce it was sent: an authorization request whose nonce was
    swapped on its way (a replayed or injected response) yields a token the gateway does not accept."""
    provider.set_user("oidc-nia", email="nia@example.org", groups=["ml-team"])
    authorize_url = with_query(await start(gateway_with_sso.client), nonce="a-nonce-this-login-never-made")
    refused = await gateway_with_sso.client.get(local(await provider.authorize(authorize_url, "oidc-nia")))
    assert refused.status_code == 401
    assert "nonce" in refused.json()["detail"]
    assert await user_row(gateway_with_sso, provider, "oidc-nia") is None


async def test_a_code_issued_to_another_client_is_refused(gateway_with_sso, provider):
    """A code the IdP gave another client (another audience) does not turn into a login here."""
    provider.set_user("oidc-oli", email="oli@example.org", groups=["ml-team"])
    authorize_url = with_query(await start(gateway_with_sso.client), client_id="some-other-app")
    refused = await gateway_with_sso.client.get(local(await provider.authorize(authorize_url, "oidc-oli")))
    assert refused.status_code == 401
    assert "did not accept the login code" in refused.json()["detail"]
    assert await user_row(gateway_with_sso, provider, "oidc-oli") is None


async def test_a_login_the_user_denied_at_the_idp_is_refused(gateway_with_sso, provider):
    authorize_url = await start(gateway_with_sso.client)
    back = await provider.deny(authorize_url)
    refused = await gateway_with_sso.client.get(local(back), headers={"Accept": "text/html"})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("text/html")
    assert "access_denied" in refused.text
    [audit] = await login_records(gateway_with_sso, "refused")
    assert "access_denied" in audit["comment"] and audit["actor"] is None


async def test_an_idp_error_link_from_elsewhere_shows_no_text_of_its_own(gateway_with_sso):
    """Anyone can craft a link to the callback with error=...: without this browser's login state the page
    names the error code only, never the link's own description."""
    crafted = await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={
        "error": "access_denied", "error_description": "Call +1 555 0100 to restore your account"})
    assert crafted.status_code == 401
    assert "access_denied" in crafted.json()["detail"] and "555" not in crafted.json()["detail"]
    weird = await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={"error": "<script>x</script>"})
    assert weird.status_code == 401 and "script" not in weird.json()["detail"]

    # from a login this browser started, the IdP's description is shown (and the login is used up)
    await start(gateway_with_sso.client)
    state = gateway_with_sso.client.cookies[oidc.STATE_COOKIE]
    answer = await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={
        "state": state, "error": "temporarily_unavailable", "error_description": "maintenance until noon"})
    assert answer.status_code == 401 and "maintenance until noon" in answer.json()["detail"]
    assert oidc.STATE_COOKIE not in gateway_with_sso.client.cookies  # the login it ended left the cookie
    gateway_with_sso.client.cookies.set(oidc.STATE_COOKIE, state, domain="service.test", path="/api/auth/oidc")
    again = await gateway_with_sso.client.get(oidc.CALLBACK_PATH, params={"state": state, "code": "x"})
    assert again.status_code == 400 and "already used" in again.json()["detail"]


async def test_keys_the_idp_rotated_are_read_again(gateway_with_sso, provider):
    """The gateway holds the IdP's JWKS; an ID token signed with a key it does not hold makes it read the
    JWKS again (once) rather than refuse the login."""
    from joserfc.jwk import KeySet, RSAKey

    provider.set_user("oidc-rot", email="rot@example.org", groups=["ml-team"])
    login = gateway_with_sso.app.state.oidc
    await login.metadata()
    login._keys = KeySet([RSAKey.generate_key(2048, parameters={"kid": "retired-key"})])
    answer = await log_in(gateway_with_sso, provider, "oidc-rot")
    assert answer.status_code == 302, answer.text
    assert [key.kid for key in login._keys.keys] != ["retired-key"]


async def test_next_never_leaves_the_gateway(gateway_with_sso, provider):
    provider.set_user("oidc-nex", email="nex@example.org", groups=["readers"])
    for next_path in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
                      "javascript:alert(1)", "models"):
        answer = await log_in(gateway_with_sso, provider, "oidc-nex", next_path=next_path)
        assert answer.status_code == 302 and answer.headers["location"] == "/", next_path


@pytest.mark.parametrize("value, expected", [
    (None, "/"), ("", "/"), ("/", "/"), ("/models", "/models"), ("/a/b?c=d#e", "/a/b?c=d#e"),
    ("//evil.example", "/"), ("///evil.example", "/"), ("/\\evil.example", "/"), ("\\\\evil.example", "/"),
    ("https://evil.example/x", "/"), ("http:/evil.example", "/"), ("javascript:alert(1)", "/"),
    ("/\t/evil.example", "/"), ("/\n/evil.example", "/"), ("/ok path", "/"), ("relative/path", "/"),
    ("/" + "a" * 3000, "/"),
])
def test_safe_next(value, expected):
    assert oidc.safe_next(value) == expected


async def test_an_idp_that_does_not_answer_is_a_clear_502(fresh):
    silent = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(fresh, oidc_issuer=silent, oidc_client_id=CLIENT_ID, public_url=PUBLIC_URL)
    async with running_service(create_app, settings) as gateway:
        answer = await gateway.client.get(oidc.LOGIN_PATH)
        assert answer.status_code == 502
        assert "did not answer" in answer.json()["detail"]
        assert oidc.STATE_COOKIE not in gateway.client.cookies
