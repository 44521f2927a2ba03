"""Resolving the caller: deactivation seen within seconds by sessions and tokens, the in-process cache (no
database round trip on a hit), JWT callers, and the functions the OIDC login uses."""
from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import Response
from starlette.requests import Request

from services.gateway import accounts, sessions
from services.kit.auth import mint_token
from tests.integration.gateway.test_accounts_support import bearer, browser, jwt_admin, login, make_user


async def _eventually_refused(gateway, call, limit: float) -> float:
    started = asyncio.get_running_loop().time()
    while (await call()).status_code != 401:
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < limit, f"still accepted {elapsed:.1f} s after the change"
        await asyncio.sleep(0.1)
    return asyncio.get_running_loop().time() - started


async def test_deactivation_refuses_open_session_and_token_within_seconds(gateway):
    """Deactivated elsewhere (the CLI, another gateway process): refused within identity_cache_seconds + 1."""
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        token = (await client.post("/api/tokens", json={"name": "script"})).json()["token"]
        assert (await client.get("/api/auth/me")).status_code == 200
        assert (await gateway.client.get("/api/auth/me", headers=bearer(token))).status_code == 200
        async with gateway.platform.pool.acquire() as conn, conn.transaction():
            await accounts.deactivate(conn, "kim", by="elsewhere")  # what the CLI runs; this process's cache is warm
        limit = gateway.settings.identity_cache_seconds + 1
        await _eventually_refused(gateway, lambda: client.get("/api/auth/me"), limit)
        await _eventually_refused(gateway, lambda: gateway.client.get("/api/auth/me", headers=bearer(token)), limit)

        # reactivated: the token works again (the session stays ended), a new login works
        on = await gateway.client.post("/api/users/kim/reactivate", headers=jwt_admin(gateway))
        assert on.status_code == 200
        assert (await gateway.client.get("/api/auth/me", headers=bearer(token))).status_code == 200
        assert (await client.get("/api/auth/me")).status_code == 401
        await login(client, "kim")
        assert (await client.get("/api/auth/me")).status_code == 200


async def test_deactivation_through_the_api_is_immediate_here(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        token = (await client.post("/api/tokens", json={"name": "script"})).json()["token"]
        assert (await gateway.client.get("/api/auth/me", headers=bearer(token))).status_code == 200
        assert (await gateway.client.post("/api/users/kim/deactivate", headers=jwt_admin(gateway))).status_code == 200
        assert (await client.get("/api/auth/me")).status_code == 401
        refused = await gateway.client.get("/api/auth/me", headers=bearer(token))
        assert refused.status_code == 401 and refused.json()["detail"] == "user 'kim' is deactivated"
        creating = await gateway.client.post("/api/tokens", json={"name": "x", "user": "kim"}, headers=jwt_admin(gateway))
        assert creating.status_code == 403  # a person's tokens are their own, even for an admin


class _Counting:
    """The pool, counting the queries made through it."""

    def __init__(self, pool) -> None:
        self.pool, self.queries = pool, 0

    def __getattr__(self, name):
        attribute = getattr(self.pool, name)
        if name in {"fetch", "fetchrow", "fetchval", "execute"}:
            async def counted(*args, **kwargs):
                self.queries += 1
                return await attribute(*args, **kwargs)
            return counted
        return attribute


def _request(headers: dict[str, str], method: str = "GET") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "path": "/api/trainer/x", "headers": raw, "query_string": b"",
                    "client": ("127.0.0.1", 1)})


async def test_cache_hit_needs_no_database_and_is_cheap(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        csrf = await login(client, "kim")
        token = (await client.post("/api/tokens", json={"name": "script"})).json()["token"]
        cookie = client.cookies["avatar_session"]
    identity: sessions.GatewayIdentity = gateway.app.state.identity
    counting = _Counting(identity.pool)
    identity.pool = counting
    try:
        cases = {"session": {"cookie": f"avatar_session={cookie}"}, "api_token": bearer(token),
                 "jwt": gateway.headers("viewer", "someone")}
        for via, headers in cases.items():
            first = await identity.resolve(_request(headers))
            assert first.via == via
            before = counting.queries
            n = 2000
            started = time.perf_counter()
            for _ in range(n):
                await identity.resolve(_request(headers))
            per_call = (time.perf_counter() - started) / n
            assert counting.queries == before, f"{via}: a cache hit went to the database"
            assert per_call < 0.0005, f"{via}: {per_call * 1e6:.0f} µs per resolve"
        # a state-changing session request: the CSRF check is made on the cached record too
        with pytest.raises(Exception) as refused:
            await identity.resolve(_request(cases["session"], "POST"))
        assert refused.value.status_code == 403
        caller = await identity.resolve(_request({**cases["session"], "X-CSRF-Token": csrf}, "POST"))
        assert caller.user == "kim" and caller.session_id is not None
    finally:
        identity.pool = counting.pool


async def test_jwt_callers(gateway):
    # a JWT of a user without an account is accepted as the token says (local CLI tokens)
    me = await gateway.client.get("/api/auth/me", headers=gateway.headers("researcher", "cli-user"))
    assert me.status_code == 200
    assert me.json() == {"user": "cli-user", "display_name": "cli-user", "email": None, "role": "researcher",
                         "via": "jwt", "kind": None}
    assert (await gateway.client.get("/api/auth/me", headers=bearer("not.a.jwt"))).status_code == 401
    assert (await gateway.client.get("/api/auth/me", headers={"Authorization": "Basic abc"})).status_code == 401
    assert (await gateway.client.get("/api/auth/me")).status_code == 401
    # a verified JWT is remembered, but never past its expiry
    short = bearer(mint_token(gateway.settings, "brief", "viewer", ttl_seconds=1))
    assert (await gateway.client.get("/api/auth/me", headers=short)).status_code == 200
    await asyncio.sleep(max(0.0, int(time.time()) + 1 - time.time()) + 1.05)
    expired = await gateway.client.get("/api/auth/me", headers=short)
    assert expired.status_code == 401 and expired.json()["detail"] == "token expired"


async def test_a_jwt_acts_with_at_most_its_users_current_role(gateway):
    await make_user(gateway, "root", "admin")
    await make_user(gateway, "kim", "admin")
    kim_admin_jwt = gateway.headers("admin", "kim")
    assert (await gateway.client.get("/api/auth/me", headers=kim_admin_jwt)).json()["role"] == "admin"
    assert (await gateway.client.get("/api/users", headers=kim_admin_jwt)).status_code == 200
    demoted = await gateway.client.put("/api/users/kim/role", json={"role": "viewer"}, headers=jwt_admin(gateway))
    assert demoted.status_code == 200, demoted.text
    # the admin JWT minted before the demotion acts as a viewer now
    me = await gateway.client.get("/api/auth/me", headers=kim_admin_jwt)
    assert me.status_code == 200 and me.json()["role"] == "viewer" and me.json()["via"] == "jwt"
    assert (await gateway.client.get("/api/users", headers=kim_admin_jwt)).status_code == 403
    # never above what the token itself says
    assert (await gateway.client.get("/api/auth/me", headers=gateway.headers("viewer", "root"))).json()["role"] == "viewer"
    # a demotion made elsewhere (another process) is seen within the cache time
    assert (await gateway.client.get("/api/auth/me", headers=gateway.headers("admin", "root"))).json()["role"] == "admin"
    await gateway.platform.pool.execute("UPDATE users SET role = 'researcher' WHERE id = 'root'")
    deadline = asyncio.get_running_loop().time() + gateway.settings.identity_cache_seconds + 1
    while (await gateway.client.get("/api/auth/me", headers=gateway.headers("admin", "root"))).json()["role"] != "researcher":
        assert asyncio.get_running_loop().time() < deadline, "still admin after identity_cache_seconds + 1"
        await asyncio.sleep(0.1)


async def test_oidc_helpers(gateway):
    pool = gateway.platform.pool
    await make_user(gateway, "ana", "viewer")  # a local user whose name an IdP user shares
    first = await accounts.upsert_oidc_user(pool, issuer="https://idp.example", subject="sub-1",
                                            email="Ana@example.org", display_name="Ana from SSO", role="researcher")
    assert first == accounts.User(id="ana-2", display_name="Ana from SSO", email="Ana@example.org", role="researcher",
                                  kind="person", active=True)
    again = await accounts.upsert_oidc_user(pool, issuer="https://idp.example", subject="sub-1",
                                            email="ana@example.org", display_name="Ana", role="viewer")
    assert again.id == "ana-2" and again.role == "viewer" and again.email == "ana@example.org"
    other_idp = await accounts.upsert_oidc_user(pool, issuer="https://other.example", subject="sub-1", email=None,
                                                display_name=None, role="viewer")
    assert other_idp.id == "sub-1" and other_idp.display_name == "sub-1"
    concurrent = await asyncio.gather(*(accounts.upsert_oidc_user(
        pool, issuer="https://idp.example", subject="sub-9", email="bo@example.org", display_name="Bo", role="viewer")
        for _ in range(5)))
    assert {user.id for user in concurrent} == {"bo"}
    assert (await gateway.client.post("/api/users/ana-2/deactivate", headers=jwt_admin(gateway))).status_code == 200
    with pytest.raises(accounts.Deactivated):
        await accounts.upsert_oidc_user(pool, issuer="https://idp.example", subject="sub-1", email="ana@example.org",
                                        display_name="Ana", role="admin")
    # an OIDC user has no password to set
    refused = await gateway.client.put("/api/users/bo/password", json={"password": "a long password"},
                                       headers=jwt_admin(gateway))
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "oidc_user"

    # open_session: what the OIDC callback calls once it has the user
    request = _request({"user-agent": "test-browser"}, "GET")
    request.scope["app"] = gateway.app
    response = Response()
    csrf = await sessions.open_session(request, response, concurrent[0])
    cookies = response.headers.getlist("set-cookie")
    assert any(c.startswith("avatar_session=") for c in cookies)
    assert any(c.startswith(f"avatar_csrf={csrf}") for c in cookies)
    secret = next(c for c in cookies if c.startswith("avatar_session=")).split(";")[0].split("=", 1)[1]
    async with browser(gateway) as client:
        client.cookies.set("avatar_session", secret)
        me = await client.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["user"] == "bo" and me.json()["via"] == "session"
    with pytest.raises(accounts.Deactivated):
        await sessions.open_session(request, Response(), accounts.User("ana-2", "Ana", None, "admin", "person", False))


async def test_an_oidc_login_audits_the_account_changes_it_applies(gateway):
    """The IdP's groups set the role on each login: a change made outside any admin's request, so it is a
    decision of its own (the callback records the login itself)."""
    pool, issuer = gateway.platform.pool, "https://idp.example"

    async def decisions() -> list:
        await gateway.app.state.audit.flush()
        return await pool.fetch("SELECT * FROM audit_log WHERE kind = 'decision' AND target_id = 'eve' ORDER BY id")

    await accounts.upsert_oidc_user(pool, issuer=issuer, subject="s-eve", email="eve@example.org",
                                    display_name="Eve", role="researcher")
    await accounts.upsert_oidc_user(pool, issuer=issuer, subject="s-eve", email="eve@example.org",
                                    display_name="Eve", role="researcher")  # nothing changed: nothing recorded
    await accounts.upsert_oidc_user(pool, issuer=issuer, subject="s-eve", email="eve@example.org",
                                    display_name="Eve", role="admin")
    await accounts.upsert_oidc_user(pool, issuer=issuer, subject="s-eve", email="eve@new.example",
                                    display_name="Eve", role="admin")
    recorded = await decisions()
    assert [(r["action"], r["actor"], r["target_type"]) for r in recorded] == [
        ("user.create", f"oidc:{issuer}", "user"), ("user.role", f"oidc:{issuer}", "user"),
        ("user.update", f"oidc:{issuer}", "user")]
    assert recorded[0]["before"] is None and recorded[0]["after"]["role"] == "researcher"
    assert recorded[1]["before"]["role"] == "researcher" and recorded[1]["after"]["role"] == "admin"
    assert recorded[2]["before"]["email"] == "eve@example.org" and recorded[2]["after"]["email"] == "eve@new.example"
